"""Fuzz the hard envelope: N random (hand position, action) pairs, count violations of each guarantee.

    .venv/bin/python bench/bench_envelope.py [--pairs 1000000] [--seed 0]

Prints the count per guarantee (all must be 0) and the time per pair of the batched filter.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from farl_common.config import task_config
from farl_robot.envelope import HardEnvelope
from farl_robot.envelope_fuzz import random_pairs, violations


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=1_000_000, help="random pairs to check (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    ap.add_argument("--config", default="fragile_push_wall", help="task whose box is used (default: %(default)s)")
    args = ap.parse_args()
    r = task_config(args.config).robot
    env = HardEnvelope(r.workspace_min_m, r.workspace_max_m, r.max_step_m)
    rng = np.random.default_rng(args.seed)
    chunk = 100_000
    total: dict[str, int] = {}
    elapsed = 0.0
    done = 0
    while done < args.pairs:
        n = min(chunk, args.pairs - done)
        hands, actions = random_pairs(env, n, rng)
        t0 = time.perf_counter()
        env.filter_batch(hands, actions)
        elapsed += time.perf_counter() - t0
        for k, v in violations(env, hands, actions).items():
            total[k] = total.get(k, 0) + v
        done += n
    t0 = time.perf_counter()
    for h, a in zip(hands[:2000], actions[:2000], strict=True):
        try:
            env.filter(h, a)
        except ValueError:
            pass
    single_us = (time.perf_counter() - t0) / 2000 * 1e6
    print(f"envelope fuzz: {done:,} pairs, box {r.workspace_min_m}..{r.workspace_max_m} m, max step {r.max_step_m} m")
    for k, v in total.items():
        print(f"  {k:<40s} {v}")
    bad = sum(total.values())
    print(f"violations: {bad}; batched filter {elapsed / done * 1e9:.0f} ns/pair, single command {single_us:.1f} us")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
