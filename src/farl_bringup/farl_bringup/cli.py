"""The `farl` command: one entry point for demos, the mocked sim graph and bag inspection."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")


def _cmd_demos(args: argparse.Namespace) -> int:
    from farl_sim.demos import DEFAULT_EPISODES, generate_demos

    kinds = ["task", "recovery", "failure"] if args.kind == "all" else [args.kind]
    for kind in kinds:
        n = args.episodes or DEFAULT_EPISODES[kind]
        t0 = time.perf_counter()
        summary = generate_demos(args.task, kind, n, args.out, seed=args.seed, storage=args.storage)
        dt = time.perf_counter() - t0
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(summary.outcomes.items()))
        print(
            f"{kind}: {len(summary.written)} episode bags in {args.out} ({outcomes}; "
            f"{summary.attempts} attempts, {dt:.1f} s)"
        )
    return 0


def _cmd_sim(args: argparse.Namespace) -> int:
    from farl_bringup.sim_graph import run_sim
    from farl_common.config import load_config, task_config

    cfg = load_config(args.config) if args.config else task_config(args.task)
    if args.config and cfg.task != args.task:
        raise SystemExit(f"farl sim: {args.config} is for task {cfg.task!r}, not {args.task!r}")
    if args.out:
        cfg.recorder.out_dir = args.out
    n = args.episodes or cfg.episodes.count
    print(
        f"farl sim {cfg.task}: {n} episodes, seed {args.seed if args.seed is not None else cfg.episodes.seed}, "
        f"{cfg.rate_hz:g} Hz simulated, bags -> {cfg.recorder.out_dir.replace('{task}', cfg.task)}"
    )
    t0 = time.perf_counter()

    def report(ep: dict) -> None:
        print(
            f"  episode {ep['episode']:3d}: return {ep['return']:8.1f}  steps {ep['steps']:3d}  "
            f"success {'yes' if ep['outcome'] == 'success' else 'no ':3s}  "
            f"failure {'YES' if ep['outcome'] == 'failure' else 'no'}",
            flush=True,
        )

    result = run_sim(cfg, episodes=n, seed=args.seed, on_episode=report)
    dt = time.perf_counter() - t0
    eps = result.episodes
    succ = sum(e["outcome"] == "success" for e in eps)
    fail = sum(e["outcome"] == "failure" for e in eps)
    steps = sum(e["steps"] for e in eps)
    print(
        f"done: {len(eps)} episodes, {succ} successes, {fail} failures, {steps} steps in {dt:.1f} s "
        f"({steps / max(dt, 1e-9):.0f} steps/s); {len(result.bags)} bags in {result.out_dir}"
    )
    if result.refused:
        print(f"note: {result.refused} actions or states were refused (see the log)")
    return 0


def _cmd_inspect(args: argparse.Namespace) -> int:
    from farl_bringup.inspect_bags import inspect_bags

    return inspect_bags(Path(args.path), plot=Path(args.plot) if args.plot else None)


def build_parser() -> argparse.ArgumentParser:
    from farl_sim.tasks import TASKS

    p = argparse.ArgumentParser(prog="farl", description="Failure-aware robot learning on ROS 2 (FARL).")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demos", help="generate scripted demonstrations (task, recovery, failure) as episode bags")
    d.add_argument("--task", required=True, choices=sorted(TASKS))
    d.add_argument("--kind", required=True, choices=["task", "recovery", "failure", "all"])
    d.add_argument(
        "--episodes", type=int, default=None, help="episodes per kind (default: task 20, recovery 120, failure 40)"
    )
    d.add_argument("--out", required=True, help="folder for the bags")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--storage", choices=["mcap", "sqlite3"], default="mcap")
    d.set_defaults(fn=_cmd_demos)

    s = sub.add_parser("sim", help="run the mocked sim graph of a task in process")
    s.add_argument("task", choices=sorted(TASKS))
    s.add_argument("--episodes", type=int, default=None, help="default: the config's episodes.count")
    s.add_argument("--seed", type=int, default=None)
    s.add_argument("--config", default=None, help="config file (default: config/<task>.yaml)")
    s.add_argument("--out", default=None, help="bag folder (default: the config's recorder.out_dir)")
    s.set_defaults(fn=_cmd_sim)

    i = sub.add_parser("inspect", help="list the episodes in a bag or a folder of bags")
    i.add_argument("path")
    i.add_argument("--plot", default=None, help="also save a PNG of returns and lengths per episode")
    i.set_defaults(fn=_cmd_inspect)
    return p


def main(argv: list[str] | None = None) -> int:
    import logging
    import warnings

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    warnings.filterwarnings("ignore", module="metaworld")
    args = build_parser().parse_args(argv)
    from farl_common.bags import BagError
    from farl_common.config import ConfigError

    try:
        return int(args.fn(args) or 0)
    except (ConfigError, BagError, FileExistsError, FileNotFoundError, ValueError, RuntimeError) as err:
        print(f"farl {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"farl {args.command}: interrupted; finished episode bags are kept, the one in progress is dropped",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
