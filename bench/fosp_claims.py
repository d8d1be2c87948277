"""FOSP's two online claims, checked on a `farl bench` results folder that holds fosp and
fosp_no_expansion runs (SafeReach by default), written as OUT/claims.md beside the report.

- Expansion: no initial drop when online learning starts. The first 10 online episodes' mean return
  against the offline policy's evaluation, for FOSP and for the ablation without expansion. Where
  OUT/offline_on_online_episodes.json is there (`fosp_offline_on_online_episodes.py`), the claim is
  judged against the offline policy acting alone on those episodes' own layouts, as they act
  (stochastic): the evaluation is deterministic and on other layouts, and differs from them without
  any learning.
- Safety: online cost falls toward zero. Mean cost per episode over the first and the last 10 online
  episodes (the paper's Table 1: 1.4 -> 0.2 on PointGoal1).

    python bench/fosp_claims.py bench/results/safe_reach
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

WINDOW = 10


def paired_drop(runs: list[dict], offline: dict) -> tuple[float, float, float, float]:
    """Online minus offline return over the first `WINDOW` episodes, paired by seed and layout: the online
    mean, the offline mean, the mean difference and its 95% half-interval (normal, over the pairs)."""
    online, alone = [], []
    for r in runs:
        base = offline["seeds"].get(str(r["seed"]))
        if base is None:
            continue
        n = min(WINDOW, len(r["curve"]), len(base["stochastic_return"]))
        online += [c[1] for c in r["curve"][:n]]
        alone += base["stochastic_return"][:n]
    d = np.asarray(online) - np.asarray(alone)
    half = 1.96 * float(d.std(ddof=1)) / np.sqrt(len(d)) if len(d) > 1 else float("nan")
    return float(np.mean(online)), float(np.mean(alone)), float(d.mean()), half


def claims(results: dict, task: str, offline: dict | None = None) -> tuple[str, dict]:
    entry = results[task]["methods"]
    rows, figures = [], {}
    for method in ("fosp", "fosp_no_expansion"):
        runs = [r for r in entry.values() if r["method"] == method]
        if not runs:
            continue
        before = [r["before"]["return"] for r in runs]
        first_ret, last_ret, first_cost, last_cost = [], [], [], []
        for r in runs:
            curve = r["curve"]  # [step, return, failure, cost] per episode (older results: no cost)
            costs = r.get("online_cost_per_episode") or [c[2] for c in curve]
            first_ret.append(np.mean([c[1] for c in curve[:WINDOW]]))
            last_ret.append(np.mean([c[1] for c in curve[-WINDOW:]]))
            first_cost.append(np.mean(costs[:WINDOW]))
            last_cost.append(np.mean(costs[-WINDOW:]))
        figures[method] = {
            "before": float(np.mean(before)),
            "first_return": float(np.mean(first_ret)),
            "last_return": float(np.mean(last_ret)),
            "first_cost": float(np.mean(first_cost)),
            "last_cost": float(np.mean(last_cost)),
            "seeds": len(runs),
        }
        f = figures[method]
        rows.append(
            f"| {method} | {f['seeds']} | {f['before']:.2f} | {f['first_return']:.2f} | "
            f"{f['first_cost']:.2f} -> {f['last_cost']:.2f} |"
        )
    lines = [
        f"| method | seeds | offline policy's eval return | return, first {WINDOW} online episodes | "
        f"cost per episode, first -> last {WINDOW} online episodes |",
        "|---|---|---|---|---|",
        *rows,
        "",
    ]
    fosp, ablation = figures.get("fosp"), figures.get("fosp_no_expansion")
    if fosp and offline:
        lines += [
            f"The offline policy alone on the first {WINDOW} online episodes' layouts, drawing its actions as "
            "online learning does (the same generator seed; the evaluation above is deterministic and on "
            "other layouts):",
            "",
            "| method | return, first online episodes | offline policy alone, same layouts "
            "| difference (95% interval) |",
            "|---|---|---|---|",
        ]
        paired = {}
        for method in ("fosp", "fosp_no_expansion"):
            runs = [r for r in entry.values() if r["method"] == method]
            if runs:
                on, off, diff, half = paired[method] = paired_drop(runs, offline)
                lines.append(
                    f"| {method} | {on:.2f} | {off:.2f} | {diff:+.2f} ({diff - half:+.2f} to {diff + half:+.2f}) |"
                )
        figures["paired"] = paired
        on, off, diff, half = paired["fosp"]
        if diff + half < 0:
            verdict = "did not hold"
        elif diff - half < -0.05:
            verdict = f"not settled by these runs (the interval holds no drop, and a drop of {half - diff:.2f})"
        else:
            verdict = "held"
        compare = ""
        if "fosp_no_expansion" in paired:
            a_diff, a_half = paired["fosp_no_expansion"][2:]
            compare = (
                f" Without expansion the difference is {a_diff:+.2f} ({a_diff - a_half:+.2f} to {a_diff + a_half:+.2f})"
            )
            if abs(diff - a_diff) < max(half, a_half):
                compare += ": these runs show no protection that expansion adds"
            compare += "."
        lines += [
            "",
            f"**Expansion** (no initial drop): {verdict}. FOSP's first {WINDOW} online episodes returned {on:.2f} "
            f"against {off:.2f} for its offline policy alone on the same layouts ({diff:+.2f}).{compare} Of the "
            f"{fosp['before'] - on:.2f} between those episodes and the offline evaluation's {fosp['before']:.2f}, "
            f"{fosp['before'] - off:.2f} is there before any online learning: the evaluation acts "
            "deterministically, on other layouts.",
        ]
    elif fosp:
        drop = fosp["first_return"] < fosp["before"] - 0.1
        verdict = "held" if not drop else "did not hold"
        compare = ""
        if ablation:
            compare = (
                f"; without expansion the first {WINDOW} episodes returned {ablation['first_return']:.2f} "
                f"against {ablation['before']:.2f}"
            )
        lines.append(
            f"**Expansion** (no initial drop): {verdict}. FOSP's first {WINDOW} online episodes returned "
            f"{fosp['first_return']:.2f} against its offline policy's {fosp['before']:.2f}{compare}."
        )
        falls = fosp["last_cost"] < fosp["first_cost"]
        near_zero = fosp["last_cost"] <= 0.2 * max(fosp["first_cost"], 1e-9) or fosp["last_cost"] < 0.1
        verdict = (
            "held" if falls and near_zero else ("partly held (it fell, not toward zero)" if falls else "did not hold")
        )
        lines.append("")
        lines.append(
            f"**Safety** (online cost falls toward zero): {verdict}. Cost per episode "
            f"{fosp['first_cost']:.2f} over the first {WINDOW} online episodes, {fosp['last_cost']:.2f} over the last; "
            f"the return per episode went from {fosp['first_return']:.2f} to {fosp['last_return']:.2f} meanwhile."
        )
    return "\n".join(lines) + "\n", figures


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "bench/results/safe_reach")
    task = sys.argv[2] if len(sys.argv) > 2 else "safe_reach"
    extra = out / "offline_on_online_episodes.json"
    offline = json.loads(extra.read_text()) if extra.is_file() else None
    text, _ = claims(json.loads((out / "results.json").read_text()), task, offline)
    (out / "claims.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
