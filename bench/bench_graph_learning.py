"""Online learning through the graph against `farl finetune`, from one pre-training.

    .venv/bin/python bench/bench_graph_learning.py --run runs/fragile_push_wall/run \
        [--episodes 500] [--every 50] [--eval-episodes 10] [--out bench/results/graph_learning]

The graph side is `farl sim --episodes N` as a user runs it: the learned graph (policy, shield, robot,
recorder and the learner node reading the recorder's bags) in the mocked sim mode. Every `--every`
episodes the policy the learner has written (`online_policy.pt`) is evaluated deterministically,
without the shield, on the same evaluation episodes as FailureBench's. Beside it, `farl finetune`
(FARL: the same shield, calibrated on the same run) trains on as many environment steps, evaluated at
the same points. Both start from a copy of RUN (in `--work`, a temporary folder by default), so RUN
itself is left as it was.

Prints one row per evaluation point (episodes, graph version and evaluation return, finetune update
count and evaluation return, failure episodes so far on each side) and writes OUT/results.json and
OUT/curves.png. The graph's curve should rise, or at least not fall below the pre-trained policy's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
warnings.filterwarnings("ignore")


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}"


def _copy_run(run: Path, dst: Path) -> Path:
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(run, dst, ignore=shutil.ignore_patterns("online_policy.pt", "finetune_*"))
    return dst


def graph_curve(
    run: Path, out: Path, episodes: int, every: int, eval_episodes: int, anchor: float = 0.0
) -> list[dict[str, Any]]:
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
    cfg.learner.anchor_coef = anchor
    cfg.recorder.out_dir = str(out / "graph" / "bags")
    shutil.rmtree(cfg.recorder.out_dir, ignore_errors=True)
    points: list[dict[str, Any]] = []
    played: list[dict[str, Any]] = []

    def point(n: int) -> None:
        path = run / "online_policy.pt"
        data = load(path if path.exists() else run / "task_policy.pt")
        ev = evaluate(task, policy_from_checkpoint(data), eval_episodes)
        fails = sum(e["outcome"] == "failure" for e in played)
        block = played[-every:] if n else []
        train = sum(e["return"] for e in block) / len(block) if block else None
        points.append(
            {"episodes": n, "version": int(data.get("version", 0)), "failures": fails, "train_return": train, **ev}
        )
        print(
            f"  graph     episodes {n:4d}  policy v{points[-1]['version']:<3d} train return {_num(train):>7s}  "
            f"eval return {ev['return']:7.1f}  success {ev['success_rate']:.0%}  failure episodes so far {fails}",
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


def finetune_curve(
    run: Path, out: Path, steps_per_point: int, points: int, eval_episodes: int, anchor: float = 0.0
) -> list[dict[str, Any]]:
    """`farl finetune` (FARL) on a copy of RUN for as many steps, evaluated at the same points."""
    from farl_bringup.pipeline import finetune
    from farl_common.shield_settings import ShieldSettings
    from farl_learning.checkpoint import load
    from farl_learning.finetune_rollouts import evaluate
    from farl_learning.ppo import PPOConfig
    from farl_learning.uni_o4 import policy_from_checkpoint

    run = _copy_run(run, out / "finetune" / "run")
    task = load(run / "task_policy.pt")["task"]
    shield = ShieldSettings().calibrated(run)
    ev = evaluate(task, policy_from_checkpoint(load(run / "task_policy.pt")), eval_episodes)
    curve = [{"steps": 0, "updates": 0, "failures": 0, "train_return": None, **ev}]
    t0 = time.perf_counter()
    for k in range(1, points + 1):  # each call resumes the last one's checkpoint and trains on
        trainer = finetune(
            run,
            k * steps_per_point,
            shield=shield,
            out=out / "finetune" / "ft",
            ppo=PPOConfig(anchor_coef=anchor),
            progress=False,
        )
        ev = evaluate(task, trainer.policy, eval_episodes)
        fails = sum(e["failure"] for e in trainer.episodes)
        block = [e["return"] for e in trainer.episodes if e["step"] > curve[-1]["steps"]]
        train = sum(block) / len(block) if block else None
        curve.append(
            {"steps": trainer.steps, "updates": trainer.updates, "failures": fails, "train_return": train, **ev}
        )
        trainer.close()
        print(
            f"  finetune  steps {trainer.steps:6d}  update {trainer.updates:<3d} train return {_num(train):>7s}  "
            f"eval return {ev['return']:7.1f}  success {ev['success_rate']:.0%}  failure episodes so far {fails}",
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


def report_page(result: dict[str, Any], out: Path) -> str:
    """OUT/report.md, which the docs include: protocol, command, table, plot, verdict."""
    g, f = result["graph"], result["finetune"]
    anchor = f" --anchor {result['anchor_coef']:g}" if result.get("anchor_coef") else ""
    rows = [
        "| online episodes | graph: policy version | graph: train return | graph: eval return | "
        "graph: failure episodes so far | finetune: steps | finetune: train return | finetune: eval return | "
        "finetune: failure episodes so far |",
        "|---|---|---|---|---|---|---|---|---|",
    ]

    def num(x: float | None) -> str:
        return "-" if x is None or x != x else f"{x:.0f}"

    for i, p in enumerate(g):
        q = f[i] if i < len(f) else None
        ft = "- | - | - | -"
        if q:
            ft = f"{q['steps']:,} | {num(q.get('train_return'))} | {q['return']:.0f} | {q['failures']}"
        rows.append(
            f"| {p['episodes']} | {p['version']} | {num(p.get('train_return'))} | {p['return']:.0f} | "
            f"{p['failures']} | {ft} |"
        )
    returns = [p["return"] for p in g]
    low = min(returns[1:], default=returns[0])
    lines = [
        f"**Protocol.** {result['task']}, one pre-training. The graph runs "
        f"{result['episodes']} online episodes of {result['horizon_steps']} steps as `farl sim --episodes "
        f"{result['episodes']}` runs them: policy, shield, robot, recorder and the learner node reading the "
        f"recorder's bags. Every {result['every']} episodes the learner's current policy is evaluated alone "
        f"(mean action, no shield) on {result['eval_episodes']} fixed evaluation episodes. Beside it, "
        f"`farl finetune` with the same shield trains for as many steps from the same pre-training, "
        f"evaluated at the same points. Both run one PPO schedule (`online_ppo_config`). The train return is "
        f"the mean return of the episodes played since the previous point (sampled actions, the shield on).",
        "",
        "**Reproduce:**",
        "",
        "```sh",
        f"python bench/bench_graph_learning.py --run RUN --episodes {result['episodes']} --every "
        f"{result['every']} --eval-episodes {result['eval_episodes']}{anchor} --out {out}",
        "```",
        "",
        *rows,
        "",
        f"The graph's evaluation return: pre-trained {returns[0]:.0f}, lowest after that {low:.0f}, "
        f"last {returns[-1]:.0f}, best {max(returns):.0f}; its curve "
        f"{'never falls below' if low >= returns[0] else 'falls below'} the pre-trained policy's.",
        "",
        "![evaluation return over online learning, graph and farl finetune](curves.png)",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default="", help="a pre-trained, calibrated run (farl pretrain, farl calibrate)")
    ap.add_argument("--episodes", type=int, default=500)
    ap.add_argument("--every", type=int, default=50, help="evaluate after every this many episodes")
    ap.add_argument("--eval-episodes", type=int, default=10)
    ap.add_argument("--out", default="bench/results/graph_learning")
    ap.add_argument("--anchor", type=float, default=0.0, help="PPOConfig.anchor_coef on both sides")
    ap.add_argument(
        "--work", default="", help="keep the runs' copies, checkpoints and bags here (default: a temporary folder)"
    )
    ap.add_argument("--skip-finetune", action="store_true", help="the graph's curve only")
    ap.add_argument("--report", action="store_true", help="run nothing: rebuild OUT's report.md and plot")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    from farl_common.config import task_config
    from farl_learning.checkpoint import load

    run, out = Path(args.run), Path(args.out)
    if args.report:
        result = json.loads((out / "results.json").read_text())
        plot(result, out / "curves.png")
        (out / "report.md").write_text(report_page(result, out))
        print((out / "report.md").read_text())
        return
    out.mkdir(parents=True, exist_ok=True)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="farl-graph-learning-"))
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
        "anchor_coef": args.anchor,
        "graph": graph_curve(run, work, args.episodes, args.every, args.eval_episodes, args.anchor),
        "finetune": []
        if args.skip_finetune
        else finetune_curve(
            run, work, args.every * horizon, args.episodes // args.every, args.eval_episodes, args.anchor
        ),
    }
    returns = [p["return"] for p in result["graph"]]
    result["graph_never_below_pretrained"] = min(returns[1:], default=returns[0]) >= returns[0]
    (out / "results.json").write_text(json.dumps(result, indent=1) + "\n")
    plot(result, out / "curves.png")
    (out / "report.md").write_text(report_page(result, out))
    verdict = "never falls below" if result["graph_never_below_pretrained"] else "falls below"
    print(
        f"graph: pre-trained {returns[0]:.1f} -> last {returns[-1]:.1f}, best {max(returns):.1f}; "
        f"its curve {verdict} the pre-trained policy's"
    )
    print(f"wrote {out / 'results.json'}, {out / 'report.md'} and {out / 'curves.png'}")
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
