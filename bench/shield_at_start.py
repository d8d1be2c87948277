"""What each shield does to the pre-trained policy before any learning: a diagnosis, not a benchmark.

    .venv/bin/python bench/shield_at_start.py --run RUN [--episodes 40] [--seed 20000]

The same episodes (same seeds, same Gaussian draws of the task policy, as online fine-tuning acts)
run without a shield and with each critic at its calibrated eps_safe (RUN/shield.json). Printed per
shield: failure episodes, mean return, swaps per episode, and where the swaps fall: the share of
swaps in episodes that failed anyway, the share of failures with a swap in the 10 steps before, and
the share of failures whose failing step executed a recovery action. A shield that adds failures
here (before PPO changed anything) does so through its swaps, not through what learning made of them.
"""

from __future__ import annotations

import argparse
import os
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
warnings.filterwarnings("ignore")

LEAD_STEPS = 10
"""A swap this many steps or fewer before a failure counts as one that came in time to matter."""


def run_episodes(task: str, policy, shield, episodes: int, seed: int) -> list[dict]:
    import numpy as np
    import torch

    from farl_sim import make_env

    env = make_env(task)
    gen = torch.Generator().manual_seed(seed)
    out = []
    for e in range(episodes):
        obs, _ = env.reset(seed=seed + e)
        ret, swaps, failed_at, recovery_at_failure = 0.0, [], None, False
        for t in range(10_000):
            draw = policy.act(torch.as_tensor(obs[None], dtype=torch.float32), generator=gen)
            proposed = draw.clamp(-1, 1).numpy().astype(np.float64)
            swapped = False
            if shield is not None:
                res = shield.filter(obs[None], proposed)
                proposed, swapped = res.executed, bool(res.swapped[0])
            if swapped:
                swaps.append(t)
            obs, r, term, trunc, info = env.step(proposed[0])
            ret += r
            if info["failure"] and failed_at is None:
                failed_at, recovery_at_failure = t, swapped
            if term or trunc:
                break
        out.append({"return": ret, "swaps": swaps, "failed_at": failed_at, "recovery_at_failure": recovery_at_failure})
    env.close()
    return out


def summarise(name: str, eps: list[dict]) -> str:
    import numpy as np

    fails = [e for e in eps if e["failed_at"] is not None]
    swaps = sum(len(e["swaps"]) for e in eps)
    in_failed = sum(len(e["swaps"]) for e in fails)
    warned = sum(any(e["failed_at"] - LEAD_STEPS <= s <= e["failed_at"] for s in e["swaps"]) for e in fails)
    rec = sum(e["recovery_at_failure"] for e in fails)
    share = lambda a, b: f"{a / b:.0%}" if b else "-"
    return (
        f"{name:13s} failures {len(fails):3d}/{len(eps)}  return {np.mean([e['return'] for e in eps]):7.1f}  "
        f"swaps/episode {swaps / len(eps):5.1f}  swaps in failing episodes {share(in_failed, swaps):>4s}  "
        f"failures warned <= {LEAD_STEPS} steps before {share(warned, len(fails)):>4s}  "
        f"failing step a recovery action {share(rec, len(fails)):>4s}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True, help="a pre-trained, calibrated run (farl pretrain, calibrate-shield)")
    ap.add_argument("--episodes", type=int, default=40)
    ap.add_argument("--seed", type=int, default=20_000, help="first episode seed (held apart from training's)")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    from farl_common.shield_settings import CRITICS, ShieldSettings
    from farl_learning.checkpoint import load
    from farl_learning.uni_o4 import policy_from_checkpoint
    from farl_safety_shield.loader import load_shield

    run = Path(args.run)
    data = load(run / "task_policy.pt")
    policy = policy_from_checkpoint(data)
    task = data["task"]
    print(f"{task}: {args.episodes} episodes of the pre-trained policy, sampled as in fine-tuning, seeds {args.seed}+")
    print(summarise("no shield", run_episodes(task, policy, None, args.episodes, args.seed)))
    for critic in CRITICS:
        settings = ShieldSettings(critic=critic).calibrated(run)
        shield = load_shield(run, settings, policy)
        name = f"{critic} ({settings.eps_safe:.4f})"
        print(summarise(name, run_episodes(task, policy, shield, args.episodes, args.seed)))


if __name__ == "__main__":
    main()
