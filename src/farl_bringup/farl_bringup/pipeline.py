"""The learning pipeline end to end, as the CLI and the benchmark run it:
demos -> pretrain (task policy, recovery policy, world model, alternative critics) -> fine-tune."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from farl_common.bags import BagError, Dataset, Episode, load_dataset
from farl_common.shield_settings import CALIBRATION_FILE, CalibrationSettings, ShieldSettings
from farl_learning.checkpoint import load, save_atomic
from farl_learning.data import Transitions
from farl_learning.finetune_rollouts import PPOTrainer
from farl_learning.ppo import PPOConfig, online_ppo_config
from farl_learning.run_manifest import MANIFEST, check_run, write_manifest
from farl_learning.uni_o4 import UniO4Config, policy_from_checkpoint, train_uni_o4, value_from_checkpoint
from farl_learning.world_model import WorldModelConfig, train_world_model, world_model_checkpoint
from farl_safety_shield.critics import QRiskCritic, ReachabilityCritic, RiskQConfig
from farl_safety_shield.loader import load_critic, load_shield
from farl_sim.demos import DemoConfig

HELDOUT_SEED_OFFSET = 1
"""Held-out calibration demos are seeded this far from the training demos' seed, so never the same episodes."""
POLICY_FAILURE_SEED_OFFSET = 7
"""Seed offset of the pre-trained policy's failure rollouts, apart from the demos' and the held-out seeds."""
CALIBRATION_ROLLOUT_SEED_OFFSET = 11
"""Seed offset of the pre-trained policy's calibration rollouts, apart from every other set's seeds."""
CALIBRATION_ROLLOUTS = "calibration_rollouts"
"""Folder in the run that holds those rollouts (they depend on the run's policy, not only the task)."""


@dataclass
class PretrainConfig:
    """Everything `farl pretrain` trains, with each part's own settings."""

    task_policy: UniO4Config = field(default_factory=UniO4Config)
    recovery_policy: UniO4Config = field(default_factory=UniO4Config)
    world_model: WorldModelConfig = field(default_factory=WorldModelConfig)
    risk_critics: RiskQConfig = field(default_factory=RiskQConfig)
    alternative_critics: bool = True
    """Also train the Recovery-RL Q_risk and FOSP reachability critics (for ablations)."""
    policy_failure_episodes: int = 40
    """Sim only (paper V.B.1): after the task policy is trained, roll it out with exploration noise
    and keep this many failing episodes (in RUN/policy_failures) for the world model and critics.
    These are the failures online fine-tuning will meet, which scripted failures do not cover
    (measured: most online failures of a shielded run met a critic trained on scripted failures
    alone with zero swaps). 0 turns it off, as on a real robot. The paper's failure sets hold
    20k-200k transitions; 20 of Disturbed Push's policy failures are about 1.5k, and pre-trained with
    200 instead (12.4k; `--policy-failures 200`) C_H missed 18% of held-out failures, not 25% (README,
    Disturbed Push). The default stays 40 because a good policy fails rarely: Fragile Push Wall's
    kept 8 of 200 attempts, so many more would cost minutes of rollouts for each one kept."""
    policy_failure_noise: float = 0.2
    """Gaussian noise added to the policy's own sampled actions for those rollouts."""

    def scaled(self, factor: float, policy_failures: int | None = None) -> PretrainConfig:
        """The same with every gradient-step budget, and the policy failures, multiplied by `factor`
        (tests, quick runs); `policy_failures`, where given, is the number of policy failures as it is."""
        c = PretrainConfig(**{k: v for k, v in self.__dict__.items()})
        for pol in ("task_policy", "recovery_policy"):
            p = UniO4Config(**asdict(getattr(c, pol)))
            p.bc_steps = max(1, int(p.bc_steps * factor))
            p.critic_steps = max(1, int(p.critic_steps * factor))
            p.improve_steps = max(1, int(p.improve_steps * factor))
            setattr(c, pol, p)
        c.world_model = WorldModelConfig(
            **{**asdict(c.world_model), "steps": max(1, int(c.world_model.steps * factor))}
        )
        c.risk_critics = RiskQConfig(**{**asdict(c.risk_critics), "steps": max(1, int(c.risk_critics.steps * factor))})
        c.policy_failure_episodes = max(1, int(c.policy_failure_episodes * factor)) if c.policy_failure_episodes else 0
        if policy_failures is not None:
            if policy_failures < 0:
                raise ValueError(f"policy_failures must be >= 0, got {policy_failures}")
            c.policy_failure_episodes = policy_failures
        return c


def pretrain(
    task: str,
    demos: str | Path,
    out: str | Path,
    cfg: PretrainConfig | None = None,
    progress: bool = True,
    seed: int = 0,
) -> dict[str, Any]:
    from torch.utils.tensorboard import SummaryWriter

    cfg = cfg or PretrainConfig()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    # Until the new checkpoints are all written the run is not complete, and the old calibration
    # belongs to the old critics.
    (out / MANIFEST).unlink(missing_ok=True)
    (out / CALIBRATION_FILE).unlink(missing_ok=True)
    ds, counts = _demos_of(task, demos)
    log = SummaryWriter(str(out / "tb"))
    t0 = time.perf_counter()
    metrics: dict[str, Any] = {"task": task, "demos": str(demos), "episodes": counts, "transitions": len(ds)}
    torch.manual_seed(seed)

    task_data = Transitions.from_dataset(ds.select(["task"]))
    task_pol = train_uni_o4(
        task_data, UniO4Config(**{**asdict(cfg.task_policy), "seed": seed}), progress, log, "task_policy"
    )
    save_atomic(out / "task_policy.pt", {**task_pol.checkpoint("task_policy"), "task": task})
    rec_data = Transitions.from_dataset(ds.select(["recovery"]))
    rec_pol = train_uni_o4(
        rec_data, UniO4Config(**{**asdict(cfg.recovery_policy), "seed": seed}), progress, log, "recovery_policy"
    )
    save_atomic(out / "recovery_policy.pt", {**rec_pol.checkpoint("recovery_policy"), "task": task})

    if cfg.policy_failure_episodes:
        kept, errors = policy_failures(task, task_pol.policy, out / "policy_failures", cfg, seed, progress)
        if kept:
            ds = Dataset.from_episodes(ds.episodes + kept, ds.errors + errors)
        metrics["policy_failures"] = len(kept)
    metrics["world_model"] = _world_model(task, ds, cfg.world_model, seed, out, progress, log)
    if cfg.alternative_critics:
        all_data = Transitions.from_dataset(ds)
        for cls in (QRiskCritic, ReachabilityCritic):
            critic = cls.train(
                all_data, task_pol.policy, RiskQConfig(**{**asdict(cfg.risk_critics), "seed": seed}), progress, log
            )
            save_atomic(out / f"{cls.name}.pt", {**critic.checkpoint(), "task": task})
    metrics["task_policy_ope"] = task_pol.history
    metrics["seconds"] = time.perf_counter() - t0
    (out / "pretrain.json").write_text(json.dumps(metrics, indent=2, default=float))
    log.close()
    write_manifest(out, task, {"demos": str(demos), "episodes": counts, "seed": seed, "pretrain": asdict(cfg)})
    return metrics


def retrain_world_model(
    run: str | Path, demos: str | Path, world_model: WorldModelConfig, progress: bool = True
) -> dict[str, Any]:
    """Train only RUN's world model again, with `world_model`'s settings (its seed is the run's), on the
    data pre-training gave it (the same demos and the run's own policy failures); the policies and
    critics are kept, so a world-model variant is compared on everything else equal. The calibration
    is dropped (it belongs to the old model) and the manifest records the new settings."""
    from torch.utils.tensorboard import SummaryWriter

    run = Path(run)
    manifest = check_run(run)
    task, seed = manifest["task"], int(manifest.get("seed", 0))
    cfg = replace(run_config(manifest), world_model=world_model)
    ds = run_demos(run, manifest, demos)
    (run / MANIFEST).unlink()
    (run / CALIBRATION_FILE).unlink(missing_ok=True)
    ds = with_policy_failures(ds, run, task, cfg, seed, progress)
    log = SummaryWriter(str(run / "tb" / "world_model_retrained"))
    metrics = _world_model(task, ds, world_model, seed, run, progress, log)
    log.close()
    write_manifest(run, task, {**{k: manifest[k] for k in ("demos", "episodes", "seed")}, "pretrain": asdict(cfg)})
    return metrics


def run_config(manifest: dict[str, Any]) -> PretrainConfig:
    """The pre-training settings a run's manifest recorded."""
    made = manifest["pretrain"]
    return PretrainConfig(
        task_policy=UniO4Config(**made["task_policy"]),
        recovery_policy=UniO4Config(**made["recovery_policy"]),
        world_model=WorldModelConfig(**made["world_model"]),
        risk_critics=RiskQConfig(**made["risk_critics"]),
        alternative_critics=made["alternative_critics"],
        policy_failure_episodes=made["policy_failure_episodes"],
        policy_failure_noise=made["policy_failure_noise"],
    )


def run_demos(run: Path, manifest: dict[str, Any], demos: str | Path) -> Dataset:
    """DEMOS, checked to be the demos RUN (whose manifest this is) was pre-trained on, as far as their
    task and counts tell."""
    ds, counts = _demos_of(manifest["task"], demos)
    if counts != manifest.get("episodes"):
        raise BagError(f"{demos}: {counts} demos, but {run} was pre-trained on {manifest.get('episodes')}")
    return ds


def with_policy_failures(ds: Dataset, run: Path, task: str, cfg: PretrainConfig, seed: int, progress: bool) -> Dataset:
    """`ds` and RUN's own policy failures (`policy_failures`), as pre-training gave them to the world
    model and critics."""
    if not cfg.policy_failure_episodes:
        return ds
    policy = policy_from_checkpoint(load(run / "task_policy.pt", "task_policy"))
    kept, errors = policy_failures(task, policy, run / "policy_failures", cfg, seed, progress)
    return Dataset.from_episodes(ds.episodes + kept, ds.errors + errors) if kept else ds


def _demos_of(task: str, demos: str | Path) -> tuple[Dataset, dict[str, int]]:
    """The demos, checked to be `task`'s and of all three kinds, and how many of each kind."""
    ds = load_dataset(demos)
    tasks = {e.task for e in ds.episodes}
    if tasks != {task}:
        raise BagError(f"{demos}: demos are for {sorted(tasks)}, not {task!r}")
    counts = {k: sum(e.kind == k for e in ds.episodes) for k in ("task", "recovery", "failure")}
    missing = [k for k, n in counts.items() if n == 0]
    if missing:
        raise BagError(f"{demos}: no {' or '.join(missing)} demos (make them with farl demos --kind ...)")
    return ds, counts


def _world_model(
    task: str, ds: Dataset, cfg: WorldModelConfig, seed: int, out: Path, progress: bool, log
) -> dict[str, Any]:
    """Train the world model on the task and failure episodes of `ds` and write it to OUT/world_model.pt;
    its first and last losses."""
    wm_data = Transitions.from_dataset(ds.select(["task", "failure"]))
    wm, hist = train_world_model(wm_data, WorldModelConfig(**{**asdict(cfg), "seed": seed}), progress, log)
    save_atomic(out / "world_model.pt", {**world_model_checkpoint(wm, hist), "task": task})
    return {"first": hist[0], "last": hist[-1]}


def policy_failures(
    task: str, policy, out: Path, cfg: PretrainConfig, seed: int, progress: bool
) -> tuple[list[Episode], list[str]]:
    """`cfg.policy_failure_episodes` failing noisy rollouts of `policy` (paper V.B.1), made in `out` or
    taken from it, and the bags there that could not be read. Fewer where the policy failed less often
    within the attempt budget (none: an empty list)."""
    import shutil

    from farl_common.bags import read_episode
    from farl_sim.demos import generate_demos

    label = policy_label(policy)
    bags = sorted(out.glob("failure_policy_*")) if out.is_dir() else []
    if bags and read_episode(bags[0]).policy != label:
        # Another policy's failures (an earlier pre-training in this folder) are not this one's.
        shutil.rmtree(out)
    # resume: a set cut short, or a smaller one from a pre-training that asked for fewer, is extended
    # with the episodes an uninterrupted run would have written.
    generate_demos(
        task,
        "failure",
        cfg.policy_failure_episodes,
        out,
        seed=seed + POLICY_FAILURE_SEED_OFFSET,
        progress=progress,
        policy=policy_actor(policy, cfg.policy_failure_noise),
        policy_label=label,
        allow_fewer=True,
        resume=True,
        config=DemoConfig(max_attempts_factor=20),
    )
    try:
        found = load_dataset(out)
    except BagError:  # the policy never failed within the attempt budget: nothing to add
        return [], []
    # A set made for a pre-training that asked for more holds more than this one asks for.
    return sorted(found.episodes, key=lambda e: e.path.name)[: cfg.policy_failure_episodes], found.errors


def policy_actor(policy, extra_noise: float = 0.0):
    """The policy acting as online fine-tuning makes it act (its own Gaussian draw, clipped to the action
    box), with `extra_noise` more on top; for `generate_demos(policy=...)`. The one sampler besides
    `GaussianPolicy.act`: its draws come from the demo episode's numpy generator, so that a set of
    demos is reproducible episode by episode (`generate_demos` seeds each from (seed, index))."""
    import numpy as np

    def act(obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        with torch.no_grad():
            mean, log_std = policy(torch.as_tensor(obs[None], dtype=torch.float32))
        a = mean[0].numpy() + np.exp(log_std[0].numpy()) * rng.normal(size=mean.shape[-1])
        return np.clip(a + rng.normal(0.0, extra_noise, size=a.shape) if extra_noise else a, -1.0, 1.0)

    return act


def policy_label(policy) -> str:
    from farl_learning.checkpoint import policy_label as label  # torch is imported only when needed

    return label(policy)


def generate_heldout(task: str, held: Path, demo_seed: int, calib: CalibrationSettings, progress: bool = True) -> None:
    """The held-out task and failure demos that calibration labels, resumed where they stopped; seeded
    apart from the training demos (`demo_seed`)."""
    from farl_sim.demos import generate_demos

    seed = demo_seed + HELDOUT_SEED_OFFSET

    for kind, n in (("task", calib.heldout_task_episodes), ("failure", calib.heldout_failure_episodes)):
        generate_demos(task, kind, n, held, seed=seed, progress=progress, resume=True)


def calibrate_shield(
    run: Path,
    held: Path,
    settings: ShieldSettings,
    calib: CalibrationSettings | None = None,
    verbose: bool = True,
):
    """Choose eps_safe for the settings' critic on held-out demos and record it, with H, gamma_risk and
    how it was labelled, in RUN/shield.json (what `ShieldSettings.calibrated` reads; one entry per
    critic, rewritten atomically)."""
    from farl_safety_shield.calibrate import calibrate

    calib = calib or CalibrationSettings()
    manifest = check_run(run)
    labelled = load_dataset(held)
    if calib.policy_rollouts:
        seed = int(manifest.get("seed", 0))
        rollouts = calibration_rollouts(run, calib.policy_rollouts, seed, progress=verbose)
        labelled = Dataset.from_episodes(labelled.episodes + rollouts.episodes, labelled.errors + rollouts.errors)
    c = calibrate(load_critic(run, settings), labelled, calib.lookahead_steps, calib.max_false_alarm)
    path = run / CALIBRATION_FILE
    data = json.loads(path.read_text()) if path.exists() else {}
    data[settings.critic] = {
        "eps_safe": c.eps_safe,
        "false_alarm": c.false_alarm,
        "missed": c.missed,
        "horizon": settings.horizon_steps,
        "gamma_risk": settings.gamma_risk,
        "lookahead": calib.lookahead_steps,
        "max_false_alarm": calib.max_false_alarm,
        "policy_rollouts": calib.policy_rollouts,
    }
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(path)
    if verbose:
        print(
            f"calibrated {settings.critic}: eps_safe {c.eps_safe:.3f} (false alarms {c.false_alarm:.1%}, "
            f"missed failures {c.missed:.1%} on held-out demos"
            f"{f' and {calib.policy_rollouts} policy rollouts' if calib.policy_rollouts else ''}) -> {path}"
        )
    return c


def calibration_rollouts(run: Path, episodes: int, run_seed: int, progress: bool = True) -> Dataset:
    """`episodes` rollouts of the run's pre-trained task policy, kept whatever their outcome, in
    RUN/calibration_rollouts (resumed where they stopped); seeded apart from the run's own `run_seed`.
    The caller has checked the run (`check_run`)."""
    from farl_sim.demos import generate_demos

    data = load(run / "task_policy.pt", "task_policy")
    policy = policy_from_checkpoint(data)
    out = run / CALIBRATION_ROLLOUTS
    generate_demos(
        data["task"],
        "task",
        episodes,
        out,
        seed=run_seed + CALIBRATION_ROLLOUT_SEED_OFFSET,
        progress=progress,
        policy=policy_actor(policy),
        policy_label=policy_label(policy),
        resume=True,
    )
    return load_dataset(out)


def finetune(
    run: str | Path,
    steps: int,
    shield: ShieldSettings | None = None,
    lagrangian: bool = False,
    out: str | Path | None = None,
    seed: int = 0,
    ppo: PPOConfig | None = None,
    progress: bool = True,
    resume: bool = True,
    person: Any = None,
) -> PPOTrainer:
    """Fine-tune the run's task policy online behind `shield` (FARL); without one it is the Uni-O4
    baseline (or PPO-Lagrangian with `lagrangian`).

    `person` (`farl_teleop.takeover.PersonSettings`): a scripted person who may take over."""
    from torch.utils.tensorboard import SummaryWriter

    run = Path(run)
    check_run(run)
    data = load(run / "task_policy.pt", "task_policy")
    task = data["task"]
    policy, value = policy_from_checkpoint(data).train(), value_from_checkpoint(data)
    cfg = online_ppo_config(
        data["config"], **{**asdict(ppo or PPOConfig()), "total_steps": steps, "seed": seed, "lagrangian": lagrangian}
    )
    filt = load_shield(run, shield, task_policy=policy) if shield is not None else None
    name = shield.critic if shield is not None else "none"
    out_dir = Path(out) if out else run / f"finetune_{name}{'_lag' if lagrangian else ''}_s{seed}"
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    trainer = PPOTrainer(task, policy, value, cfg, filt, out_dir, SummaryWriter(str(out_dir / "tb")), person=person)
    if resume and trainer.resume_if_possible() and progress:
        print(f"resuming {out_dir} at step {trainer.steps} (update {trainer.updates})")
    trainer.train(progress)
    save_atomic(
        out_dir / "policy.pt",
        {
            **data,
            "policy": policy.state_dict(),
            "value": value.state_dict(),
            "version": trainer.updates,
            "kind": "task_policy",
        },
    )
    return trainer
