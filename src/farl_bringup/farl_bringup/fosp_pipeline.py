"""`farl pretrain --method fosp` and `farl finetune --method fosp`: FOSP's offline and online stages on a
SafeReach variant or a FailureBench task, with run folders of their own.

A FOSP run folder holds `fosp.pt` (world model, critics, reachability function, actor(s), multipliers)
and `fosp_run.json` (task, seed, settings, demos, training log), written last: a folder without it is
an unfinished run and is refused in one line. Fine-tuning writes `fosp.pt` and `online.json` (every
episode's return, cost and cost regret, and the evaluation before and after) into its own folder.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tqdm import tqdm

from farl_common.bags import load_dataset
from farl_learning.fosp import (
    CHECKPOINT,
    RUN_FILE,
    FOSPAgent,
    FOSPConfig,
    check_fosp_run,
    evaluate,
    finetune_online,
    pretrain_offline,
)
from farl_learning.fosp_data import SequenceBuffer

EVAL_EPISODES = 20
EVAL_SEED = 10_000


def online_seed(seed: int) -> int:
    """The first online episode's seed for fine-tuning seed `seed` (episode k has this + k): apart from
    the evaluation's seeds and from every other fine-tuning seed's."""
    return 100_000 * (seed + 1)


def task_env_factory(task: str, image_size: int | None = None):
    """A no-argument factory of the task's environment and its episode length: a SafeReach variant or
    a FailureBench task, by name. With `image_size` the environment renders its camera at that size
    (`render()`), for a world model that reads images."""
    from farl_sim.safe_reach_tasks import SAFE_REACH

    camera: dict[str, Any] = {}
    if image_size is not None:
        camera = {"render_mode": "rgb_array", "image_width": image_size, "image_height": image_size}
    if task in SAFE_REACH:
        from farl_sim.safe_reach import IMAGE_CAMERA, SafeReachEnv

        if camera:
            camera |= {"camera_name": IMAGE_CAMERA, "plain_render": True}  # the demonstrations' images' view
        return (lambda: SafeReachEnv(task, **camera)), SAFE_REACH[task].horizon_steps
    from farl_sim import get_task, make_env

    spec = get_task(task)
    return (lambda: make_env(spec.name, **camera).unwrapped), spec.horizon_steps


def replay(demos: str | Path, image_size: int | None = None) -> tuple[SequenceBuffer, Any]:
    """Every readable bag in `demos` as FOSP's replay, with each state's camera image when `image_size`
    is set (`farl_perception.episode_images`); returns the replay and the dataset."""
    ds = load_dataset(demos)
    if image_size is None:
        return SequenceBuffer.from_dataset(ds), ds
    from farl_perception.episode_images import dataset_frames

    return SequenceBuffer.from_dataset(ds, dataset_frames(ds, image_size)), ds


def _write_json(path: Path, doc: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=1, default=str))
    os.replace(tmp, path)


def offline_agent(
    task: str, demos: str | Path, cfg: FOSPConfig, seed: int = 0
) -> tuple[FOSPAgent, SequenceBuffer, Any]:
    """A new FOSP agent for `task`'s demonstrations, before its first gradient step: every readable bag
    in `demos` as its replay, the reward head Bernoulli where every reward is 0 or 1, eq. 22's bounds
    from the demonstrations. Returns the agent, its replay and the dataset."""
    buf, ds = replay(demos, cfg.world_model.image_size)
    cfg.world_model.binary_reward = bool(((ds.reward == 0) | (ds.reward == 1)).all())
    agent = FOSPAgent(buf.obs_dim, buf.act_dim, cfg, seed=seed)
    agent.set_bounds(buf, task_env_factory(task)[1])
    return agent, buf, ds


def pretrain_fosp(
    task: str, demos: str | Path, out: str | Path, cfg: FOSPConfig, seed: int = 0, progress: bool = True
) -> dict[str, Any]:
    """Algorithm 1, lines 2-11, on every readable bag in `demos`; evaluates the offline policy."""
    out = Path(out)
    agent, buf, ds = offline_agent(task, demos, cfg, seed)
    make, horizon = task_env_factory(task, cfg.world_model.image_size)
    bar = tqdm(total=cfg.offline_steps, desc=f"FOSP offline ({task})", unit="step", disable=not progress)

    def tick(k: int, log: dict[str, float]) -> None:
        bar.update(1)
        if k % 50 == 0:
            bar.set_postfix(wm=f"{log['wm']:.3f}", critic=f"{log['critic']:.3f}", u=f"{log['u']:.3f}")

    t0 = time.perf_counter()
    try:
        logs = pretrain_offline(agent, buf, cfg.offline_steps, tick)
    finally:
        bar.close()
    agent.save(out / CHECKPOINT, task=task)
    doc = {
        "task": task,
        "method": "fosp",
        "seed": seed,
        "demos": str(Path(demos).resolve()),
        "episodes": buf.episodes,
        "transitions": len(ds),
        "unreadable_bags": ds.errors,
        "config": asdict(cfg),
        "train_s": time.perf_counter() - t0,
        "log": logs,
        "offline_eval": evaluate(agent, make, EVAL_EPISODES, EVAL_SEED, horizon),
    }
    _write_json(out / RUN_FILE, doc)
    return doc


def finetune_fosp(
    run: str | Path,
    steps: int,
    out: str | Path | None = None,
    seed: int = 0,
    expansion: bool = True,
    train_per_episode: int | None = None,
    progress: bool = True,
    eval_episodes: int = EVAL_EPISODES,
) -> dict[str, Any]:
    """Algorithm 1, lines 12-24, from a FOSP run, for `steps` environment steps; the policy is evaluated
    on `eval_episodes` fixed seeds before and after."""
    run = Path(run)
    meta = check_fosp_run(run)
    task = meta["task"]
    out = Path(out) if out else run / f"finetune_fosp{'' if expansion else '_no_expansion'}_s{seed}"
    agent, _ = FOSPAgent.load(run / CHECKPOINT)
    agent.cfg.expansion = expansion
    if train_per_episode is not None:
        agent.cfg.train_per_episode = train_per_episode
    image_size = agent.cfg.world_model.image_size
    buf, _ = replay(meta["demos"], image_size)
    make, horizon = task_env_factory(task, image_size)
    before = evaluate(agent, make, eval_episodes, EVAL_SEED, horizon)
    bar = tqdm(total=steps, desc=f"FOSP online ({task})", unit="step", disable=not progress)

    def on_episode(rec: dict[str, Any]) -> None:
        bar.update(rec["steps"])
        bar.set_postfix(ret=f"{rec['return']:.2f}", cost=f"{rec['cost']:.0f}", rho_c=f"{rec['cost_regret']:.4f}")

    t0 = time.perf_counter()
    try:
        records = finetune_online(agent, buf, make, steps, online_seed(seed), horizon, on_episode)
    finally:
        bar.close()
    wall = time.perf_counter() - t0
    agent.save(out / CHECKPOINT, task=task)
    doc = {
        "task": task,
        "run": str(run.resolve()),
        "seed": seed,
        "expansion": expansion,
        "steps": sum(r["steps"] for r in records),
        "steps_per_s": sum(r["steps"] for r in records) / wall,
        "cost_regret": records[-1]["cost_regret"] if records else 0.0,
        "before": before,
        "after": evaluate(agent, make, eval_episodes, EVAL_SEED, horizon),
        "episodes": records,
    }
    _write_json(out / "online.json", doc)
    return doc
