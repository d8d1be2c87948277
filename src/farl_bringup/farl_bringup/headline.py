"""The README's headline FailureBench table: FARL against Uni-O4 on each task, from the results
folders the documentation's results pages show (one pre-training per task in each folder).

    python -m farl_bringup.headline

A test compares the README's table with this output.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from farl_bringup.bench import _agg, failure_ratio_interval

RESULTS = Path(__file__).resolve().parents[3] / "bench" / "results"
HEADLINE = {
    "fragile_push_wall": "fragile_push_wall",
    "bounded_push": "failurebench_bounded_push",
    "bounded_soccer": "failurebench_bounded_soccer",
    "obstructed_push": "failurebench_obstructed_push",
    "disturbed_push": "failurebench_disturbed_push",
}
"""Task -> the results folder its headline row comes from."""


def _entry(task: str, results_root: Path) -> dict:
    return json.loads((results_root / HEADLINE[task] / "results.json").read_text())[task]


def _failure_episodes(entry: dict, method: str) -> list[float]:
    return [r["failure_episodes"] for r in entry["methods"].values() if r["method"] == method]


def headline_table(results_root: Path = RESULTS) -> str:
    lines = [
        "| task | failure episodes, FARL | Uni-O4 | FARL / Uni-O4 (95% interval) | eval return, FARL | Uni-O4 "
        "| seeds |",
        "|---|---|---|---|---|---|---|",
    ]
    for task, folder in HEADLINE.items():
        entry = _entry(task, results_root)
        farl, base = _failure_episodes(entry, "farl"), _failure_episodes(entry, "uni_o4")
        ratio, lo, hi = failure_ratio_interval(farl, base)
        ef = _agg(entry, "farl", lambda r: r["after"]["return"])
        eb = _agg(entry, "uni_o4", lambda r: r["after"]["return"])
        lines.append(
            f"| [{task}](docs/results/{folder}.md) | {np.mean(farl):.1f} ± {np.std(farl):.1f} | "
            f"{np.mean(base):.1f} ± {np.std(base):.1f} | {ratio:.2f} ({lo:.2f}-{hi:.2f}) | "
            f"{ef[0]:.0f} ± {ef[1]:.0f} | {eb[0]:.0f} ± {eb[1]:.0f} | {len(farl)}, {len(base)} |"
        )
    return "\n".join(lines) + "\n"


def mean_reduction(results_root: Path = RESULTS, tasks: tuple[str, ...] = tuple(HEADLINE)) -> float:
    """1 - FARL / Uni-O4 failure episodes, averaged over `tasks`."""
    entries = [_entry(task, results_root) for task in tasks]
    return float(
        np.mean([1 - np.mean(_failure_episodes(e, "farl")) / np.mean(_failure_episodes(e, "uni_o4")) for e in entries])
    )


if __name__ == "__main__":
    print(headline_table(), end="")
    paper = ("bounded_push", "bounded_soccer", "fragile_push_wall", "obstructed_push")
    print(f"\nmean over the paper's four tasks: {mean_reduction(tasks=paper):.1%} fewer failure episodes")
