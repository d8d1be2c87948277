"""FOSP's offline policy against its offline budget: Algorithm 1's lines 2-11 on one folder of
demonstrations, the policy evaluated alone (deterministic, fixed seeds) after every CHECK gradient
steps, up to STEPS. It answers whether a task FOSP does not learn at the benchmark's budget is a
matter of budget. Prints a table and writes OUT/offline_budget.json and OUT/offline_budget.md.

    python bench/fosp_offline_budget.py TASK DEMOS OUT [STEPS] [CHECK]
    python bench/fosp_offline_budget.py fragile_push_wall runs/fpw/demos bench/results/failurebench_fosp 12000 3000
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

from farl_bringup.fosp_pipeline import EVAL_EPISODES, EVAL_SEED, offline_agent, task_env_factory
from farl_learning.fosp import FOSPConfig, evaluate
from farl_learning.fosp_data import SequenceBuffer


def main() -> None:
    task, demos, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    steps = int(sys.argv[4]) if len(sys.argv) > 4 else 6000
    check = int(sys.argv[5]) if len(sys.argv) > 5 else 1500
    torch.set_num_threads(1)
    agent, buf, ds = offline_agent(task, demos, FOSPConfig(offline_steps=steps), seed=0)
    make, horizon = task_env_factory(task)
    rows, t0 = [], time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    for k in range(1, steps + 1):
        agent.train_step(buf)
        if k % check == 0:
            ev = evaluate(agent, make, EVAL_EPISODES, EVAL_SEED, horizon)
            rows.append({"offline_steps": k, "train_s": round(time.perf_counter() - t0), **ev})
            r = rows[-1]
            print(
                f"{k:6d} steps ({r['train_s']} s): return {r['return']:.1f}, cost {r['cost']:.2f}, "
                f"success {r['success_rate']:.2f}",
                flush=True,
            )
            _write(out, task, buf, len(ds), rows)  # after every check: a long run can be read, or stopped
    print((out / "offline_budget.md").read_text())


def _write(out: Path, task: str, buf: SequenceBuffer, transitions: int, rows: list[dict]) -> None:
    doc = {
        "task": task,
        "demos": buf.episodes,
        "transitions": transitions,
        "eval_episodes": EVAL_EPISODES,
        "rows": rows,
    }
    (out / "offline_budget.json").write_text(json.dumps(doc, indent=1))
    lines = [
        f"FOSP's offline policy on {task} ({buf.episodes} demonstrations, {transitions} transitions), evaluated "
        f"alone on {EVAL_EPISODES} fixed seeds:",
        "",
        "| offline gradient steps | eval return | eval cost J_c | success rate | training time (s) |",
        "|---|---|---|---|---|",
        *(
            f"| {r['offline_steps']} | {r['return']:.1f} | {r['cost']:.2f} | {r['success_rate']:.2f} | {r['train_s']} |"
            for r in rows
        ),
        "",
    ]
    (out / "offline_budget.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
