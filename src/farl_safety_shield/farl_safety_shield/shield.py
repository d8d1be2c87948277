"""The safety shield (paper eq. 11): execute the task policy's action if its risk C_H <= eps_safe,
else the recovery action. Fails safe: a critic that errors or answers NaN counts as risky; a
state that is not finite gets no action at all from here (the robot holds still)."""

from __future__ import annotations

import numpy as np
import torch

from farl_learning.action_filter import FilterResult


class UntrustedState(ValueError):
    """The state is not finite: neither the critic nor a recovery policy can act on it."""


class Shield:
    def __init__(self, critic, recovery, eps_safe: float) -> None:
        if not eps_safe >= 0:
            raise ValueError(f"eps_safe must be >= 0, got {eps_safe}")
        self.critic, self.recovery, self.eps_safe = critic, recovery, float(eps_safe)
        self.name = critic.name
        self.errors = 0

    def risk(self, obs: np.ndarray, proposed: np.ndarray) -> np.ndarray:
        """C_H per row; NaN where the critic could not answer (it raised, or gave non-finite)."""
        try:
            r = (
                self.critic.risk(
                    torch.as_tensor(obs, dtype=torch.float32), torch.as_tensor(proposed, dtype=torch.float32)
                )
                .numpy()
                .astype(np.float64)
            )
        except Exception:  # noqa: BLE001 - any critic failure must fail safe, never crash the control loop
            self.errors += 1
            return np.full(len(obs), np.nan)
        return np.where(np.isfinite(r), r, np.nan)

    def filter(self, obs: np.ndarray, proposed: np.ndarray) -> FilterResult:
        obs = np.atleast_2d(np.asarray(obs, dtype=np.float64))
        proposed = np.atleast_2d(np.asarray(proposed, dtype=np.float64))
        if not np.all(np.isfinite(obs)):
            raise UntrustedState("state has non-finite values: no action is safe to send")
        bad_proposal = ~np.all(np.isfinite(proposed), axis=1)
        risk = self.risk(obs, np.where(bad_proposal[:, None], 0.0, proposed))
        risk[bad_proposal] = np.nan
        # Critics answer in float32: compare at that precision, so C_H == eps_safe counts as safe.
        swapped = ~(risk <= float(np.float32(self.eps_safe)))  # NaN compares False: unanswered means risky
        executed = proposed.copy()
        if swapped.any():
            rec = self.recovery.actions(torch.as_tensor(obs[swapped], dtype=torch.float32)).numpy()
            executed[swapped] = rec
        return FilterResult(np.clip(executed, -1.0, 1.0), risk, swapped)
