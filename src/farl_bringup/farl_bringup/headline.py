"""The README's headline FailureBench table: FARL against Uni-O4 on each task of the campaign, from the
campaign's folder alone (`farl bench --campaign`, each seed with a pre-training of its own), with how much
of the campaign it holds.

    python -m farl_bringup.headline

A test compares the README's table with this output.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from farl_bringup.bench import CAMPAIGN, _agg, failure_ratio_interval
from farl_bringup.campaign_criteria import failure_episodes, progress_line

CAMPAIGN_RESULTS = Path(__file__).resolve().parents[3] / CAMPAIGN["out"] / "results.json"


def headline_table(results_path: Path = CAMPAIGN_RESULTS) -> str:
    """One row per campaign task (a dash where FARL or Uni-O4 has no run yet), then the progress line."""
    results = json.loads(results_path.read_text())
    lines = [
        "| task | failure episodes, FARL | Uni-O4 | FARL / Uni-O4 (95% interval) | eval return, FARL | Uni-O4 "
        "| seeds |",
        "|---|---|---|---|---|---|---|",
    ]
    for task in CAMPAIGN["tasks"]:
        entry = results.get(task, {})
        farl, base = failure_episodes(results, task, "farl"), failure_episodes(results, task, "uni_o4")
        if not farl or not base:
            lines.append(f"| {task} | — | — | — | — | — | {len(farl)}, {len(base)} |")
            continue
        ratio, lo, hi = failure_ratio_interval(farl, base)
        ef = _agg(entry, "farl", lambda r: r["after"]["return"])
        eb = _agg(entry, "uni_o4", lambda r: r["after"]["return"])
        lines.append(
            f"| {task} | {np.mean(farl):.1f} ± {np.std(farl):.1f} | {np.mean(base):.1f} ± {np.std(base):.1f} | "
            f"{ratio:.2f} ({lo:.2f}-{hi:.2f}) | {ef[0]:.0f} ± {ef[1]:.0f} | {eb[0]:.0f} ± {eb[1]:.0f} | "
            f"{len(farl)}, {len(base)} |"
        )
    return "\n".join(lines) + "\n\n" + progress_line(results) + "\n"


if __name__ == "__main__":
    print(headline_table(), end="")
