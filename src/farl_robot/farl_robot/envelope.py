"""The hard envelope (shared/design.md, principle 7): not learned, always on, below every policy.

Whatever the policy, shield or teleop sends, the driver passes it through here: non-finite or
mis-sized commands are refused, each step is limited in length, and the commanded hand position
is kept inside the workspace box.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


class UnsafeCommand(ValueError):
    """A command the robot must not execute."""


@dataclass(frozen=True)
class HardEnvelope:
    workspace_min_m: Sequence[float]
    workspace_max_m: Sequence[float]
    max_step_m: float
    action_scale_m: float = 0.01
    """Hand displacement in metres of one unit of action (MetaWorld: 1 cm)."""

    def __post_init__(self) -> None:
        lo, hi = np.asarray(self.workspace_min_m, float), np.asarray(self.workspace_max_m, float)
        if lo.shape != (3,) or hi.shape != (3,) or np.any(lo >= hi):
            raise ValueError(f"workspace box needs 3 values each with min < max, got {lo} and {hi}")
        if not self.max_step_m > 0:
            raise ValueError(f"max_step_m must be > 0, got {self.max_step_m}")

    def filter(self, hand_pos_m: np.ndarray, action: np.ndarray) -> np.ndarray:
        """The action to execute: same layout, finite, step-limited, staying inside the box."""
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.shape != (4,):
            raise UnsafeCommand(f"expected 4 action values (dx, dy, dz, gripper), got {a.shape[0]}")
        if not np.all(np.isfinite(a)):
            raise UnsafeCommand(f"non-finite action {a}")
        hand = np.asarray(hand_pos_m, dtype=np.float64)
        if hand.shape != (3,) or not np.all(np.isfinite(hand)):
            raise UnsafeCommand(f"hand position unknown or non-finite: {hand}")
        a = np.clip(a, -1.0, 1.0)
        delta = a[:3] * self.action_scale_m
        norm = float(np.linalg.norm(delta))
        if norm > self.max_step_m:
            delta *= self.max_step_m / norm
        target = np.clip(hand + delta, self.workspace_min_m, self.workspace_max_m)
        return np.append((target - hand) / self.action_scale_m, a[3])
