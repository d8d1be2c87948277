"""The frozen offline FOSP policy on the first online episodes' own layouts, acting as the first online
episodes act (stochastic draws, the same generator seed) and deterministically: the baseline FOSP's
expansion claim is judged against in `fosp_claims.py`. The offline policy's evaluation return is
deterministic and on other layouts, so a gap between it and the first online episodes is not by itself
a drop caused by online learning.

    python bench/fosp_offline_on_online_episodes.py BENCH_OUT RESULTS_DIR [TASK]

BENCH_OUT is the `farl bench --out` folder that holds TASK/pretrain/seed*/fosp_run (TASK: safe_reach).
Writes RESULTS_DIR/offline_on_online_episodes.json: per seed, the return and cost of each of the first
`fosp_claims.WINDOW` online episodes' seeds, in both modes. The first stochastic episode is the same
episode as the first online one without expansion (same policy, draws and layout).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from fosp_claims import WINDOW

from farl_bringup.fosp_pipeline import online_seed, task_env_factory
from farl_learning.fosp import CHECKPOINT, FOSPAgent, run_episode


def offline_on_online_episodes(run: Path, task: str, seed: int) -> dict[str, list[float]]:
    """Each of the first `WINDOW` online episodes' layouts played by the offline policy alone: returns and
    costs, episode by episode, in both modes."""
    agent, _ = FOSPAgent.load(run / CHECKPOINT)
    make, horizon = task_env_factory(task, agent.cfg.world_model.image_size)
    env = make()
    out: dict[str, list[float]] = {}
    try:
        for mode, deterministic in (("stochastic", False), ("deterministic", True)):
            pol = agent.policy(horizon, deterministic=deterministic, seed=online_seed(seed))
            eps = [run_episode(env, pol, online_seed(seed) + k) for k in range(WINDOW)]
            out[f"{mode}_return"] = [e["return"] for e in eps]
            out[f"{mode}_cost"] = [e["cost"] for e in eps]
    finally:
        env.close()
    return out


def main() -> None:
    bench_out, results = Path(sys.argv[1]), Path(sys.argv[2])
    task = sys.argv[3] if len(sys.argv) > 3 else "safe_reach"
    runs = sorted((bench_out / task / "pretrain").glob("seed*/fosp_run"))
    if not runs:
        sys.exit(f"no {task}/pretrain/seed*/fosp_run under {bench_out}")
    doc = {"task": task, "window": WINDOW, "seeds": {}}
    for run in runs:
        seed = int(run.parent.name.removeprefix("seed"))
        doc["seeds"][str(seed)] = got = offline_on_online_episodes(run, task, seed)
        print(f"seed {seed}: " + ", ".join(f"{k} {np.mean(v):.2f}" for k, v in got.items()), flush=True)
    (results / "offline_on_online_episodes.json").write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main()
