"""`farl inspect`: what is in a bag or a folder of bags, one line per episode, then totals.

The failure column is the paper's IR failure: something broke, or a person took over ("takeover").
"""

from __future__ import annotations

import itertools
import shutil
from collections import defaultdict
from pathlib import Path

from farl_common.bags import PARTIAL_DIR, BagError, Episode, read_episodes
from farl_sim.safe_reach_tasks import PAPER_MIX, label_of


def partial_bags(root: Path) -> list[Path]:
    """Unfinished bags under `root`: what a crash (or a recording in progress) left in `.farl-partial`."""
    if not root.is_dir():
        return []
    return sorted(b for d in root.rglob(PARTIAL_DIR) if d.is_dir() for b in d.iterdir())


def inspect_bags(root: Path, plot: Path | None = None, clean: bool = False) -> int:
    """Print the episodes under `root`; returns 2 if any bag was unreadable (after listing the rest).
    Unfinished bags are never read; they are counted, and removed with `clean`."""
    episodes: list[Episode] = []
    errors: list[str] = []
    print(
        f"{'episode bag':48s} {'kind':9s} {'task':18s} {'steps':>5s} {'return':>9s} {'outcome':8s} "
        f"{'failure':7s} played by"
    )
    stream = read_episodes(root)
    try:
        first = next(stream)  # a folder with no finished bag raises here
    except BagError:
        if (partial := partial_bags(root)) and clean:
            _remove(partial)
        elif partial:
            _report(partial)
        raise
    for p, ep, err in itertools.chain([first], stream):
        if ep is None:
            errors.append(err)
            print(f"{p.name:48s} UNREADABLE")
            continue
        episodes.append(ep)
        print(
            f"{p.name[:48]:48s} {ep.kind:9s} {ep.task[:18]:18s} {len(ep):5d} {ep.episode_return:9.1f} "
            f"{ep.outcome:8s} {_failure(ep):7s} {_played_by(ep)}"
        )
    by_kind: dict[str, list[Episode]] = defaultdict(list)
    for ep in episodes:
        by_kind[ep.kind].append(ep)
    print()
    for kind, eps in sorted(by_kind.items()):
        n = len(eps)
        steps = sum(len(e) for e in eps)
        mean_ret = sum(e.episode_return for e in eps) / n
        fails = sum(e.ir_failure for e in eps)
        took = sum(bool(e.intervened.any()) for e in eps)
        succ = sum(e.outcome == "success" for e in eps)
        print(
            f"{kind:9s} {n:4d} episodes  {steps:6d} transitions  mean return {mean_ret:8.1f}  "
            f"successes {succ}  failure episodes {fails}{f' ({took} takeovers)' if took else ''}"
        )
    if mix := safe_reach_labels(episodes):
        paper = "/".join(str(v) for v in PAPER_MIX.values())
        print(
            "SafeReach demonstrations as FOSP's four kinds: "
            + ", ".join(f"{k} {v}" for k, v in mix.items())
            + f" (the paper's mix: {paper})"
        )
    for err in errors:
        print(f"unreadable: {err}")
    partial = partial_bags(root)
    if partial and clean:
        _remove(partial)
    elif partial:
        _report(partial)
    if plot is not None and episodes:
        tasks = sorted({e.task for e in episodes if e.task})
        _plot(episodes, plot, title=", ".join(tasks) or root.name)
        print(f"plot: {plot}")
    return 2 if errors else 0


def safe_reach_labels(episodes: list[Episode]) -> dict[str, int]:
    """FOSP's four kinds (Appendix D.1) of the SafeReach task and failure demonstrations: touched is any
    cost (or an episode marked failure), reached is a reward; empty where there are none."""
    counts = dict.fromkeys(PAPER_MIX, 0)
    for ep in episodes:
        if "safe_reach" in ep.task and ep.kind in ("task", "failure"):
            counts[label_of(ep.failed, bool((ep.reward > 0).any()))] += 1
    return counts if any(counts.values()) else {}


def _remove(partial: list[Path]) -> None:
    for b in partial:
        if b.is_dir():
            shutil.rmtree(b, ignore_errors=True)
        else:
            b.unlink(missing_ok=True)
        if not any(b.parent.iterdir()):
            b.parent.rmdir()
    print(f"removed {len(partial)} unfinished bag(s) from {PARTIAL_DIR} folders")


def _report(partial: list[Path]) -> None:
    print(
        f"unfinished: {len(partial)} bag(s) in {partial[0].parent} (left by a crash, or being recorded now); "
        "never read; `farl inspect --clean` removes them"
    )


def _played_by(ep: Episode) -> str:
    label = ep.policy or "unlabelled"
    return f"{label} v{ep.policy_version}" if label.startswith("learned:") else label


def _failure(ep: Episode) -> str:
    if ep.failed:
        return "YES"
    took = int(ep.intervened.sum())
    return f"YES (takeover, {took} steps)" if took else "no"


KIND_COLOURS = {"task": "tab:cyan", "recovery": "tab:olive", "failure": "tab:brown", "online": "tab:purple"}
"""Kinds and outcomes must never share a colour: the strip shows kinds, the bars outcomes."""
OUTCOME_COLOURS = {"success": "tab:green", "failure": "tab:red", "timeout": "tab:gray", "aborted": "tab:orange"}


def _plot(episodes: list[Episode], out: Path, title: str = "") -> None:
    """Per episode in bag order: its kind (the strip on top), return and steps coloured by outcome,
    with the shield's swaps and a person's takeover steps on the steps panel and the policy version
    that played each online episode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch
    from matplotlib.ticker import MaxNLocator

    x = list(range(len(episodes)))
    online = [e for e in episodes if e.kind == "online"]
    rows = 4 if online else 3
    fig, axes = plt.subplots(
        rows,
        1,
        figsize=(11, 1.6 + 2.0 * (rows - 1)),
        sharex=True,
        gridspec_kw={"height_ratios": [0.35] + [1.0] * (rows - 1)},
    )
    strip = axes[0]
    strip.bar(x, [1] * len(x), width=1.0, color=[KIND_COLOURS.get(e.kind, "tab:gray") for e in episodes])
    strip.set_yticks([])
    start = 0
    for k in range(1, len(episodes) + 1):  # name each run of one kind on the strip
        if k == len(episodes) or episodes[k].kind != episodes[start].kind:
            strip.text((start + k - 1) / 2, 0.5, episodes[start].kind, ha="center", va="center", color="white")
            start = k
    strip.set_ylabel("kind", rotation=0, ha="right", va="center")
    outcome_colours = [OUTCOME_COLOURS.get(e.outcome, "tab:blue") for e in episodes]
    axes[1].bar(x, [e.episode_return for e in episodes], color=outcome_colours)
    axes[1].set_ylabel("return")
    axes[2].bar(x, [len(e) for e in episodes], color=outcome_colours)
    swaps = [int(e.swapped.sum()) for e in episodes]
    took = [int(e.intervened.sum()) for e in episodes]
    if any(swaps):
        axes[2].plot(x, swaps, "kD", markersize=4, label="of which the shield swapped")
    if any(took):
        axes[2].plot(x, took, "m^", label="of which a person took over")
    axes[2].set_ylabel("steps")
    axes[2].yaxis.set_major_locator(MaxNLocator(integer=True))
    if any(swaps) or any(took):
        axes[2].legend(loc="upper left", fontsize=8, frameon=False)
    if online:
        versions = [e.policy_version if e.kind == "online" else float("nan") for e in episodes]
        axes[3].plot(x, versions, "o-", color=KIND_COLOURS["online"], markersize=4)
        axes[3].set_ylabel("policy version")
        top = max(e.policy_version for e in online)
        axes[3].set_ylim(-0.5, top + 0.5)
        axes[3].set_yticks(range(0, top + 1, max(1, -(-top // 5))))
    axes[-1].set_xlabel("episode (bag order)")
    axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))
    kinds = [k for k in KIND_COLOURS if any(e.kind == k for e in episodes)]
    occurring = {e.outcome for e in episodes}
    handles = [Patch(color=c, label=f"outcome: {o}") for o, c in OUTCOME_COLOURS.items() if o in occurring]
    fig.legend(handles=handles, loc="lower center", ncol=4, frameon=False, fontsize=8)
    counts = ", ".join(f"{sum(e.kind == k for e in episodes)} {k}" for k in kinds)
    fails = sum(e.ir_failure for e in episodes)
    fig.suptitle(
        f"{title}{': ' if title else ''}{len(episodes)} episodes ({counts}), {fails} failure episodes", fontsize=10
    )
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
