"""Builds a shield from a pre-training run folder (`farl pretrain --out RUN_DIR`)."""

from __future__ import annotations

from pathlib import Path

from farl_common.shield_settings import CRITICS, RECOVERIES, ShieldSettings
from farl_learning.checkpoint import CheckpointError, load
from farl_learning.uni_o4 import policy_from_checkpoint
from farl_learning.world_model import world_model_from_checkpoint
from farl_safety_shield.critics import QRiskCritic, ReachabilityCritic, WorldModelRisk
from farl_safety_shield.recovery import MPPIRecovery, PolicyRecovery
from farl_safety_shield.shield import Shield

__all__ = ["CRITICS", "RECOVERIES", "load_critic", "load_shield"]


def load_critic(run_dir: str | Path, settings: ShieldSettings, task_policy=None):
    """The settings' critic from the run. The world-model critic rolls out `task_policy` (eq. 10: the
    policy being fine-tuned), or the run's pre-trained task policy when none is given."""
    run = Path(run_dir)
    if settings.critic == "world_model":
        policy = task_policy if task_policy is not None else policy_from_checkpoint(load(run / "task_policy.pt"))
        wm = world_model_from_checkpoint(load(run / "world_model.pt", "world_model"))
        return WorldModelRisk(wm, policy, settings.horizon_steps, settings.gamma_risk)
    cls = QRiskCritic if settings.critic == "q_risk" else ReachabilityCritic
    return cls.from_checkpoint(load(run / f"{settings.critic}.pt", f"risk_{settings.critic}"))


def load_shield(run_dir: str | Path, settings: ShieldSettings, task_policy=None) -> Shield:
    """The shield of a run with `settings` (eq. 11); `task_policy` as for `load_critic`."""
    run = Path(run_dir)
    if not run.is_dir():
        raise CheckpointError(f"{run}: no such run folder (make one with farl pretrain)")
    crit = load_critic(run, settings, task_policy)
    if settings.recovery == "mppi":  # the ablation plans without the recovery policy
        wm = world_model_from_checkpoint(load(run / "world_model.pt", "world_model"))
        rec = MPPIRecovery(wm, settings.eps_safe, settings.horizon_steps, settings.gamma_risk)
    else:
        rec = PolicyRecovery(policy_from_checkpoint(load(run / "recovery_policy.pt", "recovery_policy")))
    return Shield(crit, rec, settings.eps_safe)
