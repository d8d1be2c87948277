"""The hard envelope (shared/design.md, principle 7): not learned, always on, below every policy.

Whatever the policy, shield or teleop sends, the robot node passes it through here before any
driver sees it. Its guarantees, for every hand position and action (proved by the fuzz test in
tests/test_envelope.py and bench/bench_envelope.py over 10^6 random pairs):

- a non-finite or mis-sized action, or a hand position that is non-finite or implausibly far from
  the robot (`max_hand_offset_m`), is refused with `UnsafeCommand`: the robot holds;
- every executed step is at most `max_step_m` long;
- a hand inside the workspace box stays inside it;
- a hand outside the box (after a collision, a manual push, a mis-set box) moves strictly
  towards the box, whatever the action says, and never by more than `max_step_m`.

The step is the move from the hand towards the point of the box nearest the proposed target,
shortened to `max_step_m`. Clamping the target first and limiting the length second (not the
other way round) is what keeps the step bounded when the hand starts outside the box.
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
    max_hand_offset_m: float = 10.0
    """A reported hand position farther than this from the base on any axis is a sensor fault."""

    def __post_init__(self) -> None:
        lo, hi = np.asarray(self.workspace_min_m, float), np.asarray(self.workspace_max_m, float)
        if lo.shape != (3,) or hi.shape != (3,) or not np.all(np.isfinite(lo)) or not np.all(np.isfinite(hi)):
            raise ValueError(f"workspace box needs 3 finite values per corner, got {lo} and {hi}")
        if np.any(lo >= hi):
            raise ValueError(f"workspace box needs min < max on every axis, got {lo} and {hi}")
        for name in ("max_step_m", "action_scale_m", "max_hand_offset_m"):
            v = getattr(self, name)
            if not (np.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {v}")
        object.__setattr__(self, "_lo", lo)
        object.__setattr__(self, "_hi", hi)

    @property
    def box(self) -> tuple[np.ndarray, np.ndarray]:
        return self._lo.copy(), self._hi.copy()  # type: ignore[attr-defined]

    def contains(self, hand_pos_m: np.ndarray, tol_m: float = 0.0) -> bool:
        h = np.asarray(hand_pos_m, dtype=np.float64)
        return bool(np.all(h >= self._lo - tol_m) and np.all(h <= self._hi + tol_m))  # type: ignore[attr-defined]

    def distance_to_box_m(self, hand_pos_m: np.ndarray) -> np.ndarray:
        """Euclidean distance from each hand position (..., 3) to the box; 0 inside."""
        h = np.asarray(hand_pos_m, dtype=np.float64)
        return np.linalg.norm(h - np.clip(h, self._lo, self._hi), axis=-1)  # type: ignore[attr-defined]

    def filter_batch(self, hand_pos_m: np.ndarray, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Executed actions (N, 4) and a mask of the rows that may run; refused rows are all zeros.

        The single-command `filter` calls this with N = 1, so the fuzz test exercises the same code.
        """
        a = np.asarray(actions, dtype=np.float64)
        hand = np.asarray(hand_pos_m, dtype=np.float64)
        if a.ndim != 2 or a.shape[1] != 4 or hand.shape != (a.shape[0], 3):
            raise UnsafeCommand(f"expected (N, 4) actions and (N, 3) hand positions, got {a.shape} and {hand.shape}")
        with np.errstate(invalid="ignore", over="ignore"):
            ok = np.all(np.isfinite(a), axis=1) & np.all(np.isfinite(hand), axis=1)
            ok &= np.all(np.abs(hand) <= self.max_hand_offset_m, axis=1)
        a = np.where(ok[:, None], a, 0.0)
        hand = np.where(ok[:, None], hand, 0.0)
        a = np.clip(a, -1.0, 1.0)
        target = np.clip(hand + a[:, :3] * self.action_scale_m, self._lo, self._hi)  # type: ignore[attr-defined]
        step = target - hand
        norm = np.linalg.norm(step, axis=1, keepdims=True)
        step *= np.minimum(1.0, self.max_step_m / np.maximum(norm, 1e-300))
        out = np.concatenate([step / self.action_scale_m, a[:, 3:4]], axis=1)
        out[~ok] = 0.0
        return out, ok

    def filter(self, hand_pos_m: np.ndarray, action: np.ndarray) -> np.ndarray:
        """The action to execute (dx, dy, dz in action units, gripper), or `UnsafeCommand`."""
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.shape != (4,):
            raise UnsafeCommand(f"expected 4 action values (dx, dy, dz, gripper), got {a.shape[0]}")
        if not np.all(np.isfinite(a)):
            raise UnsafeCommand(f"non-finite action {a}")
        hand = np.asarray(hand_pos_m, dtype=np.float64).reshape(-1)
        if hand.shape != (3,) or not np.all(np.isfinite(hand)):
            raise UnsafeCommand(f"hand position unknown or non-finite: {hand}")
        out, ok = self.filter_batch(hand[None], a[None])
        if not ok[0]:
            raise UnsafeCommand(
                f"hand position {np.array2string(hand, precision=3)} m is more than "
                f"{self.max_hand_offset_m} m from the base: not trusted"
            )
        return out[0]

    def step_m(self, executed_action: np.ndarray) -> np.ndarray:
        """The base-frame hand displacement in metres an executed action stands for."""
        return np.asarray(executed_action, dtype=np.float64)[..., :3] * self.action_scale_m
