"""What the campaign (`farl bench --campaign`) must show, checked on its results.json and stated plainly:
each criterion held, did not hold, or cannot be judged yet because runs are missing.

The criteria are the campaign's bar: FARL fails at least 50% less often than Uni-O4 over the paper's four
FailureBench tasks and at least 35% less on each, returns no less than Uni-O4 minus one standard
deviation, never collapses (no seed's evaluation return more than 20% below its own pre-trained
policy's), and its world model earns its place (C_H misses no more held-out failures than Q_risk at the
calibrated false-alarm rate; FARL fails no more than its Recovery-RL-critic ablation on average). The
paper's ordering (FARL below the Q_risk and MPPI ablations) is reported per task with intervals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from farl_bringup.bench import CAMPAIGN, COLLAPSE_FRACTION, failure_ratio_interval, own_before

PAPER_TASKS = ("bounded_push", "bounded_soccer", "fragile_push_wall", "obstructed_push")
"""The paper's FailureBench tasks (the campaign adds Disturbed Push)."""
MEAN_REDUCTION = 0.50
"""Fewer failure episodes than Uni-O4, averaged over PAPER_TASKS."""
EACH_REDUCTION = 0.35
"""Fewer failure episodes than Uni-O4 on each of PAPER_TASKS."""


@dataclass
class Verdict:
    claim: str
    verdict: str
    """"held", "did not hold", or "not judged yet" (a claim on a partial campaign says "so far")."""
    detail: str


def _runs(results: dict[str, Any], task: str, method: str) -> list[dict[str, Any]]:
    entry = results.get(task) or {}
    return [r for r in entry.get("methods", {}).values() if r["method"] == method]


def failure_episodes(results: dict[str, Any], task: str, method: str) -> list[float]:
    return [float(r["failure_episodes"]) for r in _runs(results, task, method)]


def missing_runs(results: dict[str, Any], campaign: dict[str, Any] = CAMPAIGN) -> dict[str, list[str]]:
    """Per task, the `method/seed` runs the campaign asks for that results.json does not hold."""
    out = {}
    for task in campaign["tasks"]:
        have = set((results.get(task) or {}).get("methods", {}))
        want = [f"{m}/{s}" for s in range(campaign["seeds"]) for m in campaign["methods"]]
        out[task] = [k for k in want if k not in have]
    return out


def mixed_pretrainings(results: dict[str, Any]) -> list[str]:
    """`task seed S` for each seed whose runs (or its recorded pre-training) name more than one
    pre-training: a folder lost and made again, not bit-identical. Runs that record none are not judged."""
    out = []
    for task, entry in results.items():
        if task == "config":
            continue
        ids: dict[int, set[str]] = {}
        for r in entry.get("methods", {}).values():
            pid = (r.get("pretraining") or {}).get("id")
            if pid:
                ids.setdefault(r["seed"], set()).add(pid)
        for folder, pre in entry.get("pretrainings", {}).items():
            seed = int(folder.rsplit("seed", 1)[-1]) if "seed" in folder else None
            if seed in ids and pre.get("id"):
                ids[seed].add(pre["id"])
        out += [f"{task} seed {s}" for s, found in sorted(ids.items()) if len(found) > 1]
    return out


def _so_far(ok: bool, complete: bool) -> str:
    if complete:
        return "held" if ok else "did not hold"
    return "holds so far" if ok else "misses so far"


def criteria(results: dict[str, Any], campaign: dict[str, Any] = CAMPAIGN) -> list[Verdict]:
    """Every criterion's verdict on `results` (results.json's shape)."""
    missing = missing_runs(results, campaign)
    seeds = campaign["seeds"]

    def complete(tasks, methods) -> bool:
        return all(not any(k.split("/")[0] in methods for k in missing.get(t, [])) for t in tasks)

    out: list[Verdict] = []
    # Fewer failures than Uni-O4: on each paper task, then on average.
    reductions, each = {}, []
    for t in PAPER_TASKS:
        f, b = failure_episodes(results, t, "farl"), failure_episodes(results, t, "uni_o4")
        if not f or not b or np.mean(b) == 0:
            each.append(f"{t}: not run yet")
            continue
        ratio, lo, hi = failure_ratio_interval(f, b)
        reductions[t] = 1 - ratio
        each.append(f"{t} {1 - ratio:.0%} ({len(f)} and {len(b)} seeds; FARL / Uni-O4 {ratio:.2f}, {lo:.2f}-{hi:.2f})")
    done = complete(PAPER_TASKS, ("farl", "uni_o4"))
    if reductions:
        out.append(
            Verdict(
                f"at least {EACH_REDUCTION:.0%} fewer failure episodes than Uni-O4 on each paper task",
                _so_far(all(r >= EACH_REDUCTION for r in reductions.values()), done),
                "; ".join(each),
            )
        )
        mean = float(np.mean(list(reductions.values())))
        out.append(
            Verdict(
                f"at least {MEAN_REDUCTION:.0%} fewer failure episodes than Uni-O4, averaged over the paper's tasks",
                _so_far(mean >= MEAN_REDUCTION, done) if len(reductions) == len(PAPER_TASKS) else "not judged yet",
                f"{mean:.1%} over {len(reductions)} of {len(PAPER_TASKS)} tasks",
            )
        )
    else:
        out.append(Verdict("fewer failure episodes than Uni-O4", "not judged yet", "no task has both methods yet"))

    # Return no lower than Uni-O4's minus one standard deviation, on every campaign task.
    rows, ok, any_row = [], True, False
    for t in campaign["tasks"]:
        f = [r["after"]["return"] for r in _runs(results, t, "farl")]
        b = [r["after"]["return"] for r in _runs(results, t, "uni_o4")]
        if not f or not b:
            continue
        any_row = True
        bar = float(np.mean(b) - np.std(b))
        ok &= float(np.mean(f)) >= bar
        rows.append(f"{t} {np.mean(f):.0f} against {bar:.0f}")
    out.append(
        Verdict(
            "evaluation return at least Uni-O4's minus one standard deviation, on each task",
            _so_far(ok, complete(campaign["tasks"], ("farl", "uni_o4"))) if any_row else "not judged yet",
            "; ".join(rows) or "no task has both methods yet",
        )
    )

    # No collapse: each FARL seed against its own pre-trained policy.
    collapsed, counted = [], 0
    for t in campaign["tasks"]:
        for r in _runs(results, t, "farl"):
            counted += 1
            b = own_before(results[t], r)
            if r["after"]["return"] < COLLAPSE_FRACTION * b:
                collapsed.append(f"{t} seed {r['seed']} ({b:.0f} -> {r['after']['return']:.0f})")
    out.append(
        Verdict(
            f"no FARL seed's evaluation return below {COLLAPSE_FRACTION:.0%} of its own pre-trained policy's",
            _so_far(not collapsed, complete(campaign["tasks"], ("farl",))) if counted else "not judged yet",
            f"{len(collapsed)} of {counted} runs collapsed" + (": " + "; ".join(collapsed) if collapsed else ""),
        )
    )

    # The world model earns its place: C_H's misses at the calibrated false-alarm rate, per task.
    rows, ok, any_row = [], True, False
    for t in campaign["tasks"]:
        cals = [p["calibration"] for p in (results.get(t) or {}).get("pretrainings", {}).values()]
        if not cals and (results.get(t) or {}).get("calibration"):
            cals = [results[t]["calibration"]]
        pairs = [(c["world_model"]["missed"], c["q_risk"]["missed"]) for c in cals if "q_risk" in c]
        if not pairs:
            continue
        any_row = True
        wm, qr = (float(np.mean(x)) for x in zip(*pairs, strict=True))
        ok &= wm <= qr
        rows.append(f"{t} {wm:.1%} against {qr:.1%} ({len(pairs)} pre-training{'' if len(pairs) == 1 else 's'})")
    pretrained = all(len((results.get(t) or {}).get("pretrainings", {})) >= seeds for t in campaign["tasks"])
    out.append(
        Verdict(
            "C_H misses no more held-out failures than Q_risk at the calibrated false-alarm rate, on each task",
            _so_far(ok, pretrained) if any_row else "not judged yet",
            "; ".join(rows) or "no pre-training calibrated yet",
        )
    )

    # FARL against its ablations: Q_risk on average; the paper's ordering per task.
    ratios, rows = [], []
    for t in campaign["tasks"]:
        f = failure_episodes(results, t, "farl")
        parts = []
        for m in ("farl_qrisk", "farl_mppi"):
            a = failure_episodes(results, t, m)
            if not f or not a or np.mean(a) == 0:
                continue
            ratio, lo, hi = failure_ratio_interval(f, a)
            parts.append(f"/ {m} {ratio:.2f} ({lo:.2f}-{hi:.2f})")
            if m == "farl_qrisk":
                ratios.append(ratio)
        if parts:
            rows.append(f"{t}: farl " + ", ".join(parts))
    out.append(
        Verdict(
            "FARL fails no more than farl_qrisk on average",
            _so_far(float(np.mean(ratios)) <= 1, complete(campaign["tasks"], ("farl", "farl_qrisk")))
            if ratios
            else "not judged yet",
            f"mean FARL / farl_qrisk ratio {np.mean(ratios):.2f} over {len(ratios)} task(s)"
            if ratios
            else "no task has both methods yet",
        )
    )
    out.append(
        Verdict(
            "the paper's ordering: FARL below the Q_risk and MPPI ablations (failure-episode ratios, 95% intervals)",
            "reported",
            "; ".join(rows) or "no task has the ablations yet",
        )
    )
    return out


def progress_line(results: dict[str, Any], campaign: dict[str, Any] = CAMPAIGN) -> str:
    """How much of the campaign results.json holds, and what is missing, per task."""
    missing = missing_runs(results, campaign)
    total = len(campaign["tasks"]) * len(campaign["methods"]) * campaign["seeds"]
    left = sum(len(v) for v in missing.values())
    per_task = []
    for t, keys in missing.items():
        have = len(campaign["methods"]) * campaign["seeds"] - len(keys)
        per_task.append(f"{t} {have}")
    mixed = mixed_pretrainings(results)
    return (
        f"The campaign holds {total - left} of its {total} runs "
        f"({len(campaign['tasks'])} tasks x {len(campaign['methods'])} methods x {campaign['seeds']} seeds); "
        f"runs per task: {', '.join(per_task)}."
        + (
            f" Runs from more than one pre-training at one seed (delete that seed's results to run it again): "
            f"{'; '.join(mixed)}."
            if mixed
            else ""
        )
    )


def criteria_section(results: dict[str, Any], campaign: dict[str, Any] = CAMPAIGN) -> str:
    """The report's criteria: progress, then one row per criterion."""
    lines = [
        "## Criteria",
        "",
        progress_line(results, campaign) + ' A claim on a partial campaign says "so far".',
        "",
        "| criterion | verdict | figures |",
        "|---|---|---|",
    ]
    lines += [f"| {v.claim} | **{v.verdict}** | {v.detail} |" for v in criteria(results, campaign)]
    return "\n".join(lines) + "\n"
