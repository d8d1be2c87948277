"""`farl inspect`: what is in a bag or a folder of bags, one line per episode, then totals.

The failure column is the paper's IR failure: something broke, or a person took over ("takeover").
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from farl_common.bags import Episode, read_episodes


def inspect_bags(root: Path, plot: Path | None = None) -> int:
    """Print the episodes under `root`; returns 2 if any bag was unreadable (after listing the rest)."""
    episodes: list[Episode] = []
    errors: list[str] = []
    print(f"{'episode bag':48s} {'kind':9s} {'task':18s} {'steps':>5s} {'return':>9s} {'outcome':8s} failure")
    for p, ep, err in read_episodes(root):
        if ep is None:
            errors.append(err)
            print(f"{p.name:48s} UNREADABLE")
            continue
        episodes.append(ep)
        print(
            f"{p.name[:48]:48s} {ep.kind:9s} {ep.task[:18]:18s} {len(ep):5d} {ep.episode_return:9.1f} "
            f"{ep.outcome:8s} {_failure(ep)}"
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
    for err in errors:
        print(f"unreadable: {err}")
    if plot is not None and episodes:
        _plot(episodes, plot)
        print(f"plot: {plot}")
    return 2 if errors else 0


def _failure(ep: Episode) -> str:
    if ep.failed:
        return "YES"
    took = int(ep.intervened.sum())
    return f"YES (takeover, {took} steps)" if took else "no"


def _plot(episodes: list[Episode], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"success": "tab:green", "failure": "tab:red", "timeout": "tab:gray", "aborted": "tab:orange"}
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for ax, values, label in (
        (axes[0], [e.episode_return for e in episodes], "return"),
        (axes[1], [len(e) for e in episodes], "steps"),
    ):
        ax.bar(range(len(episodes)), values, color=[colours.get(e.outcome, "tab:blue") for e in episodes])
        ax.set_xlabel("episode (bag order)")
        ax.set_ylabel(label)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in colours.values()]
    fig.legend(handles, list(colours), loc="upper center", ncol=4, frameon=False)
    fig.suptitle(f"{len(episodes)} episodes", y=0.02, fontsize=9)
    fig.tight_layout(rect=(0, 0.04, 1, 0.92))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
