"""Online learning through the graph against `farl finetune`, from one pre-training.

    .venv/bin/python bench/bench_graph_learning.py --run runs/fragile_push_wall/run \
        [--episodes 500] [--every 50] [--eval-episodes 10] [--out bench/results/graph_learning]

The graph side is `farl sim --episodes N` as a user runs it: the learned graph (policy, shield, robot,
recorder and the learner node reading the recorder's bags) in the mocked sim mode. Every `--every`
episodes the policy the learner has written (`online_policy.pt`) is evaluated deterministically,
without the shield, on the same evaluation episodes as FailureBench's. Beside it, `farl finetune`
(FARL: the same shield, calibrated on the same run) trains on as many environment steps, evaluated at
the same points. Both start from a copy of RUN, so RUN itself is left as it was.

Prints one row per evaluation point (episodes, graph version and evaluation return, finetune update
count and evaluation return, failure episodes so far on each side) and writes OUT/results.json and
OUT/curves.png. The graph's curve should rise, or at least not fall below the pre-trained policy's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
import warnings
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
warnings.filterwarnings("ignore")


def _copy_run(run: Path, dst: Path) -> Path:
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(run, dst, ignore=shutil.ignore_patterns("online_policy.pt", "finetune_*"))
    return dst


def graph_curve(run: Path, out: Path, episodes: int, every: int, eval_episodes: int) -> list[dict[str, Any]]:
    """`farl sim --episodes N` on a copy of RUN, its learner's policy evaluated every `every` episodes."""
    from farl_bringup.sim_graph import run_sim
    from farl_common.config import task_config
    from farl_learning.checkpoint import load
    from farl_learning.finetune_rollouts import evaluate
    from farl_learning.uni_o4 import policy_from_checkpoint

    task = load(run / "task_policy.pt")["task"]
    run = _copy_run(run, out / "graph" / "run")
    cfg = task_config(task)
    cfg.policy.kind = "learned"
    cfg.learner.run_dir = str(run)
    cfg.recorder.out_dir = str(out / "graph" / "bags")
    shutil.rmtree(cfg.recorder.out_dir, ignore_errors=True)
    points: list[dict[str, Any]] = []
    played: list[dict[str, Any]] = []

    def point(n: int) -> None:
        path = run / "online_policy.pt"
        data = load(path if path.exists() else run / "task_policy.pt")
        ev = evaluate(task, policy_from_checkpoint(data), eval_episodes)
        fails = sum(e["outcome"] == "failure" for e in played)
        points.append({"episodes": n, "version": int(data.get("version", 0)), "failures": fails, **ev})
        print(
            f"  graph     episodes {n:4d}  policy v{points[-1]['version']:<3d} eval return {ev['return']:7.1f}  "
            f"success {ev['success_rate']:.0%}  failure episodes so far {fails}",
            flush=True,
        )

    def on_episode(ep: dict[str, Any]) -> None:
        played.append(ep)
        if len(played) % every == 0:
            point(len(played))

    point(0)
    t0 = time.perf_counter()
    run_sim(cfg, episodes=episodes, seed=0, on_episode=on_episode)
    print(f"  graph: {episodes} episodes in {time.perf_counter() - t0:.0f} s", flush=True)
    return points


def finetune_curve(run: Path, out: Path, steps_per_point: int, points: int, eval_episodes: int) -> list[dict[str, Any]]:
    """`farl finetune` (FARL) on a copy of RUN for as many steps, evaluated at the same points."""
    from farl_bringup.pipeline import finetune
    from farl_common.shield_settings import ShieldSettings
    from farl_learning.checkpoint import load
    from farl_learning.finetune_rollouts import evaluate
    from farl_learning.uni_o4 import policy_from_checkpoint

    run = _copy_run(run, out / "finetune" / "run")
    task = load(run / "task_policy.pt")["task"]
    shield = ShieldSettings().calibrated(run)
    ev = evaluate(task, policy_from_checkpoint(load(run / "task_policy.pt")), eval_episodes)
    curve = [{"steps": 0, "updates": 0, "failures": 0, **ev}]
    t0 = time.perf_counter()
    for k in range(1, points + 1):  # each call resumes the last one's checkpoint and trains on
        trainer = finetune(run, k * steps_per_point, shield=shield, out=out / "finetune" / "ft", progress=False)
        ev = evaluate(task, trainer.policy, eval_episodes)
        fails = sum(e["failure"] for e in trainer.episodes)
        curve.append({"steps": trainer.steps, "updates": trainer.updates, "failures": fails, **ev})
        trainer.close()
        print(
            f"  finetune  steps {trainer.steps:6d}  update {trainer.updates:<3d} eval return {ev['return']:7.1f}  "
            f"success {ev['success_rate']:.0%}  failure episodes so far {fails}",
            flush=True,
        )
    print(f"  finetune: {points * steps_per_point} steps in {time.perf_counter() - t0:.0f} s", flush=True)
    return curve


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.6), constrained_layout=True)
    g, f = result["graph"], result["finetune"]
    horizon = result["horizon_steps"]
    ax.plot([p["episodes"] for p in g], [p["return"] for p in g], "o-", label="graph (learner node)")
    ax.plot([p["steps"] / horizon for p in f], [p["return"] for p in f], "s-", label="farl finetune")
    ax.axhline(g[0]["return"], color="grey", ls=":", lw=1, label="pre-trained policy")
    ax.set_xlabel(f"online episodes ({horizon} steps each)")
    ax.set_ylabel(f"evaluation return ({result['eval_episodes']} episodes)")
    ax.set_title(f"{result['task']}: online learning in the graph and in farl finetune", fontsize=10)
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True, help="a pre-trained, calibrated run (farl pretrain, farl calibrate)")
    ap.add_argument("--episodes", type=int, default=500)
    ap.add_argument("--every", type=int, default=50, help="evaluate after every this many episodes")
    ap.add_argument("--eval-episodes", type=int, default=10)
    ap.add_argument("--out", default="bench/results/graph_learning")
    ap.add_argument("--skip-finetune", action="store_true", help="the graph's curve only")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    from farl_common.config import task_config
    from farl_learning.checkpoint import load

    run, out = Path(args.run), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    task = load(run / "task_policy.pt")["task"]
    horizon = task_config(task).robot.horizon_steps
    print(f"{task}: {args.episodes} online episodes, evaluated every {args.every} ({args.eval_episodes} episodes each)")
    result: dict[str, Any] = {
        "task": task,
        "run": str(run),
        "episodes": args.episodes,
        "every": args.every,
        "eval_episodes": args.eval_episodes,
        "horizon_steps": horizon,
        "graph": graph_curve(run, out, args.episodes, args.every, args.eval_episodes),
        "finetune": []
        if args.skip_finetune
        else finetune_curve(run, out, args.every * horizon, args.episodes // args.every, args.eval_episodes),
    }
    returns = [p["return"] for p in result["graph"]]
    result["graph_never_below_pretrained"] = min(returns[1:], default=returns[0]) >= returns[0]
    (out / "results.json").write_text(json.dumps(result, indent=1) + "\n")
    plot(result, out / "curves.png")
    verdict = "never falls below" if result["graph_never_below_pretrained"] else "falls below"
    print(
        f"graph: pre-trained {returns[0]:.1f} -> last {returns[-1]:.1f}, best {max(returns):.1f}; "
        f"its curve {verdict} the pre-trained policy's"
    )
    print(f"wrote {out / 'results.json'} and {out / 'curves.png'}")


if __name__ == "__main__":
    main()
