"""FOSP on SafeReach: offline pre-training, then online fine-tuning with and without policy expansion.

Per seed: the paper's 200-demo mix (seeded), one offline pre-training, its evaluation (J_r, J_c,
success, over fixed episodes), then from that same checkpoint two online runs: FOSP (eq. 21's
expansion) and the ablation that fine-tunes the offline actor itself. Each online run records every
episode's return and cost and the cost regret rho_c, and is evaluated again at the end.

    python bench/bench_fosp_safe_reach.py --out bench/results/fosp_safe_reach --seeds 0 1 \
        --offline-steps 1500 --online-steps 3200

Results go to OUT/results.json (resumed: finished seeds are kept) and OUT/report.md with a plot.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from farl_common.bags import load_dataset
from farl_learning.fosp import FOSPAgent, FOSPConfig, evaluate, finetune_online, pretrain_offline
from farl_learning.fosp_data import SequenceBuffer
from farl_sim.safe_reach import SafeReachEnv
from farl_sim.safe_reach_demos import generate_safe_reach_demos

HORIZON = 80
EVAL_EPISODES = 30
EVAL_SEED = 10_000


def run_seed(out: Path, seed: int, offline_steps: int, online_steps: int, train_per_episode: int) -> dict:
    demos = out / "demos" / f"seed{seed}"
    generate_safe_reach_demos(demos, seed=seed, progress=False)
    buf = SequenceBuffer.from_dataset(load_dataset(demos))
    cfg = FOSPConfig(offline_steps=offline_steps, train_per_episode=train_per_episode)
    ckpt = out / f"seed{seed}" / "offline.pt"
    t0 = time.perf_counter()
    if ckpt.is_file():
        agent, _ = FOSPAgent.load(ckpt)
    else:
        agent = FOSPAgent(buf.obs_dim, buf.act_dim, cfg, seed=seed)
        pretrain_offline(agent, buf, offline_steps)
        agent.save(ckpt)
    offline_s = time.perf_counter() - t0
    result = {
        "seed": seed,
        "offline_steps": offline_steps,
        "offline_s": offline_s,
        "offline_eval": evaluate(agent, SafeReachEnv, EVAL_EPISODES, EVAL_SEED, HORIZON),
    }
    for name, expansion in (("fosp", True), ("fosp_no_expansion", False)):
        run, _ = FOSPAgent.load(ckpt)
        run.cfg.expansion = expansion
        run.cfg.train_per_episode = train_per_episode
        online_buf = SequenceBuffer.from_dataset(load_dataset(demos))
        t1 = time.perf_counter()
        records = finetune_online(
            run, online_buf, SafeReachEnv, online_steps, seed=100_000 * (seed + 1), horizon=HORIZON
        )
        wall = time.perf_counter() - t1
        result[name] = {
            "episodes": records,
            "final_eval": evaluate(run, SafeReachEnv, EVAL_EPISODES, EVAL_SEED, HORIZON),
            "cost_regret": records[-1]["cost_regret"],
            "steps_per_s": records[-1]["env_steps"] / wall,
        }
        print(f"seed {seed} {name}: {result[name]['final_eval']} rho_c {result[name]['cost_regret']:.4f}", flush=True)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("bench/results/fosp_safe_reach"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--offline-steps", type=int, default=1500)
    ap.add_argument("--online-steps", type=int, default=3200)
    ap.add_argument("--train-per-episode", type=int, default=10)
    args = ap.parse_args()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "results.json"
    results = json.loads(path.read_text()) if path.is_file() else {"runs": []}
    done = {r["seed"] for r in results["runs"]}
    for seed in args.seeds:
        if seed in done:
            continue
        results["runs"].append(run_seed(args.out, seed, args.offline_steps, args.online_steps, args.train_per_episode))
        results["machine"] = f"{platform.processor() or platform.machine()}, torch threads 1"
        results["command"] = (
            f"python bench/bench_fosp_safe_reach.py --out {args.out} --seeds {' '.join(map(str, args.seeds))} "
            f"--offline-steps {args.offline_steps} --online-steps {args.online_steps} "
            f"--train-per-episode {args.train_per_episode}"
        )
        path.write_text(json.dumps(results, indent=1))
    print(f"results: {path}")


if __name__ == "__main__":
    main()
