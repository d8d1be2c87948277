"""Builds a shield from a pre-training run folder (`farl pretrain --out RUN_DIR`)."""

from __future__ import annotations

from pathlib import Path

from farl_learning.checkpoint import CheckpointError, load
from farl_learning.uni_o4 import policy_from_checkpoint
from farl_learning.world_model import world_model_from_checkpoint
from farl_safety_shield.critics import QRiskCritic, ReachabilityCritic, WorldModelRisk
from farl_safety_shield.recovery import MPPIRecovery, PolicyRecovery
from farl_safety_shield.shield import Shield

CRITICS = ("world_model", "q_risk", "reachability")
RECOVERIES = ("policy", "mppi")


def load_critic(run_dir: str | Path, critic: str, horizon: int = 5, gamma_risk: float = 0.9, task_policy=None):
    run = Path(run_dir)
    if critic not in CRITICS:
        raise ValueError(f"critic must be one of {CRITICS}, got {critic!r}")
    if critic == "world_model":
        policy = task_policy if task_policy is not None else policy_from_checkpoint(load(run / "task_policy.pt"))
        wm = world_model_from_checkpoint(load(run / "world_model.pt", "world_model"))
        return WorldModelRisk(wm, policy, horizon, gamma_risk)
    cls = QRiskCritic if critic == "q_risk" else ReachabilityCritic
    return cls.from_checkpoint(load(run / f"{critic}.pt", f"risk_{critic}"))


def load_shield(
    run_dir: str | Path,
    critic: str = "world_model",
    recovery: str = "policy",
    eps_safe: float = 0.3,
    horizon: int = 5,
    gamma_risk: float = 0.9,
    task_policy=None,
) -> Shield:
    """The shield of a run. `task_policy` lets the world-model critic follow the policy being fine-tuned
    (eq. 10 rolls out pi_task); without it the pre-trained one is used."""
    run = Path(run_dir)
    if not run.is_dir():
        raise CheckpointError(f"{run}: no such run folder (make one with farl pretrain)")
    if recovery not in RECOVERIES:
        raise ValueError(f"recovery must be one of {RECOVERIES}, got {recovery!r}")
    rec_policy = policy_from_checkpoint(load(run / "recovery_policy.pt", "recovery_policy"))
    crit = load_critic(run, critic, horizon, gamma_risk, task_policy)
    if recovery == "mppi":
        wm = world_model_from_checkpoint(load(run / "world_model.pt", "world_model"))
        rec = MPPIRecovery(wm, rec_policy, eps_safe, horizon=horizon, gamma_risk=gamma_risk)
    else:
        rec = PolicyRecovery(rec_policy)
    return Shield(crit, rec, eps_safe)
