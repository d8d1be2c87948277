"""The shield's settings and the calibration's: the one place their defaults live.

The task config's `shield:` section, the shield node's parameters, RUN/shield.json (written by
`farl calibrate-shield`), `farl finetune`, `farl replay`, `farl bench` and the benchmarks all start
from these dataclasses and pass one object on; nothing else writes a default for them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

CRITICS = ("world_model", "q_risk", "reachability")
RECOVERIES = ("policy", "mppi")
CALIBRATION_FILE = "shield.json"


@dataclass(frozen=True)
class ShieldSettings:
    critic: str = "world_model"
    """Risk critic: world_model (C_H, eq. 10), q_risk (Recovery-RL, eq. 15-16) or reachability (FOSP)."""
    recovery: str = "policy"
    """Where a replacement action comes from: the recovery policy (eq. 11) or MPPI over the world model."""
    eps_safe: float = 0.3
    """Swap when the risk exceeds this (eq. 11); a run calibrated for the critic overrides it."""
    horizon_steps: int = 5
    """H of eq. 10: steps the world model rolls ahead."""
    gamma_risk: float = 0.9
    """Discount of future failure risk in C_H."""
    eps_source: str = "default"
    """Where eps_safe came from: default, config, RUN/shield.json, --eps-safe."""

    def __post_init__(self) -> None:
        if self.critic not in CRITICS:
            raise ValueError(f"critic must be one of {CRITICS}, got {self.critic!r}")
        if self.recovery not in RECOVERIES:
            raise ValueError(f"recovery must be one of {RECOVERIES}, got {self.recovery!r}")

    def calibrated(self, run: str | Path) -> ShieldSettings:
        """These settings with the run's calibration for this critic (eps_safe, and the H and gamma_risk
        it was calibrated with), when RUN/shield.json has one."""
        path = Path(run) / CALIBRATION_FILE
        if not path.exists():
            return self
        entry = json.loads(path.read_text()).get(self.critic)
        if not entry:
            return self
        return replace(
            self,
            eps_safe=float(entry["eps_safe"]),
            horizon_steps=int(entry.get("horizon", self.horizon_steps)),
            gamma_risk=float(entry.get("gamma_risk", self.gamma_risk)),
            eps_source=str(path),
        )

    def with_eps(self, eps_safe: float | None, source: str = "--eps-safe") -> ShieldSettings:
        return self if eps_safe is None else replace(self, eps_safe=float(eps_safe), eps_source=source)


@dataclass(frozen=True)
class CalibrationSettings:
    lookahead_steps: int = 5
    """Steps before a failure that the shield should flag: how held-out failure episodes are labelled.
    A setting of its own, not H: how far ahead the shield must warn is not how far the model rolls."""
    max_false_alarm: float = 0.05
    """Largest share of steps of safe task episodes that may be flagged."""
    heldout_task_episodes: int = 10
    """Held-out task demonstrations (negatives) generated for calibration in simulation."""
    heldout_failure_episodes: int = 20
    """Held-out failure demonstrations (positives) generated for calibration in simulation."""
    policy_rollouts: int = 0
    """Rollouts of the run's pre-trained task policy (its own Gaussian draws, no shield) added to the
    held-out demos, in simulation: the states online fine-tuning starts from, which scripted demos do
    not cover. Failure-free ones are negatives, the steps before a failure positives. 0: demos only."""
