"""Figures for episode bags and the sim graph: write, read and simulate throughput on this machine.

    .venv/bin/python bench/bench_bags.py [--episodes 20]

Prints: demo generation (env steps/s including bag writing), dataset load (transitions/s) from the
bags and again from the parsed-episode cache (farl_common.bags.cache_dir), and the mocked sim graph
with the scripted policy (env steps/s through the in-process runtime, recording).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=20)
    args = ap.parse_args()
    from farl_bringup.sim_graph import run_sim
    from farl_common.bags import load_dataset
    from farl_common.config import task_config
    from farl_sim.demos import generate_demos

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        os.environ["FARL_CACHE_DIR"] = str(out / "cache")  # cold first: a cache of its own
        t0 = time.perf_counter()
        s = generate_demos("fragile_push_wall", "task", args.episodes, out / "demos", progress=False)
        t_gen = time.perf_counter() - t0
        t0 = time.perf_counter()
        ds = load_dataset(out / "demos")
        t_load = time.perf_counter() - t0
        print(
            f"demos:   {len(s.written)} episodes, {len(ds)} transitions written in {t_gen:.2f} s "
            f"({len(ds) / t_gen:.0f} steps/s, env + bag)"
        )
        print(
            f"load:    {len(ds)} transitions from {len(ds.episodes)} bags in {t_load:.2f} s "
            f"({len(ds) / t_load:.0f} transitions/s, parsing the bags and filling the cache)"
        )
        t0 = time.perf_counter()
        again = load_dataset(out / "demos")
        t_reload = time.perf_counter() - t0
        print(
            f"reload:  {len(again)} transitions in {t_reload:.3f} s ({len(again) / t_reload:.0f} transitions/s, "
            "from the cache; each bag's bytes hashed to check it is unchanged)"
        )
        cfg = task_config("fragile_push_wall")
        cfg.recorder.out_dir = str(out / "sim")
        cfg.policy.kind = "scripted"  # the graph's own cost, without the learning stack
        t0 = time.perf_counter()
        r = run_sim(cfg, episodes=max(1, args.episodes // 4), seed=0)
        t_sim = time.perf_counter() - t0
        steps = sum(e["steps"] for e in r.episodes)
        print(
            f"sim:     {len(r.episodes)} episodes, {steps} steps through the in-process graph in {t_sim:.2f} s "
            f"({steps / t_sim:.0f} steps/s, with recording)"
        )


if __name__ == "__main__":
    main()
