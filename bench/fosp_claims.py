"""FOSP's two online claims, checked on a `farl bench` results folder that holds fosp and
fosp_no_expansion runs (SafeReach by default), written as OUT/claims.md beside the report.

- Expansion: no initial drop when online learning starts. The first 10 online episodes' mean return
  against the offline policy's evaluation, for FOSP and for the ablation without expansion.
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


def claims(results: dict, task: str) -> tuple[str, dict]:
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
    if fosp:
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
    text, _ = claims(json.loads((out / "results.json").read_text()), task)
    (out / "claims.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
