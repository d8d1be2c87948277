"""The real Franka tasks' rules on perceived object positions (paper Sec. VI.C.1), in the base frame.

- Franka Fragile Push Wall: push the object to the goal behind a wall; touching the wall is an
  IR failure (`hazard: wall`, the wall a box `hazard_min_m`..`hazard_max_m`).
- Franka Disturbed Push: push the object to the goal while a person moves an obstacle around;
  the object or the low hand touching the obstacle is an IR failure (`hazard: obstacle`, the
  obstacle is the second perceived object).
- Franka Bounded Soccer: kick the ball to the goal; the ball leaving the xy rectangle
  `hazard_min_m`..`hazard_max_m` is an IR failure (`hazard: boundary`).
- SafeReach (FOSP Appendix D.1): reach a perceived target without touching two perceived obstacles
  (`hazard: obstacles`; objects: the two obstacles, then the target). The hand within
  `obstacle_radius_m` + its own radius of an obstacle costs 1 on that step (the episode goes on, as the
  paper labels contact); the hand within `success_radius_m` (xy) of the target ends the episode with
  reward 1. The target fills the state's goal slot.

A person can also mark the episode a failure (or a success) from teleop: `mark()`.

The state has FailureBench's layout (`farl_common.obs_layout.OBS_LAYOUT`), so the same networks,
shield and learner serve real and simulated tasks. The reward is dense and in [0, 10] like
MetaWorld's: ``2 exp(-|hand - object| / 5 cm) + 6 exp(-|object - goal|_xy / 10 cm) + 2`` on success.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from farl_common.obs_layout import GOAL_XY, HAND, HAND_XY, HAND_Z, OBJECT, OBJECT_XY, OBS_LAYOUT, OBSTACLE_XY
from farl_robot.driver import HandState
from farl_robot.scene import PerceivedObjects, Scene, StepOutcome

UNIT_QUAT = np.array([0.0, 0.0, 0.0, 1.0])


@dataclass(frozen=True)
class RealTaskRules:
    objects: Sequence[str]
    """Perceived object names for the state's object slots: the pushed object, then the obstacle."""
    goal_m: Sequence[float]
    success_radius_m: float
    object_timeout_s: float
    hazard: str
    """wall | boundary | obstacle | none"""
    hazard_min_m: Sequence[float]
    hazard_max_m: Sequence[float]
    object_radius_m: float = 0.025
    obstacle_radius_m: float = 0.04
    hand_radius_m: float = 0.03
    low_hand_z_m: float = 0.12
    """The hand counts against the obstacle only when lower than this (it can pass above it)."""

    def __post_init__(self) -> None:
        if not self.objects:
            raise ValueError("scene.objects: name at least the pushed object")
        if self.hazard == "obstacle" and len(self.objects) < 2:
            raise ValueError("scene.objects: hazard 'obstacle' needs a second object (the obstacle)")
        if self.hazard == "obstacles" and len(self.objects) != 3:
            raise ValueError("scene.objects: hazard 'obstacles' (SafeReach) needs two obstacles, then the target")
        if self.hazard in ("wall", "boundary"):
            lo, hi = np.asarray(self.hazard_min_m, float), np.asarray(self.hazard_max_m, float)
            if lo.shape != (3,) or hi.shape != (3,) or np.any(lo[:2] >= hi[:2]):
                raise ValueError(f"scene.hazard_min_m/max_m: a {self.hazard} needs 3 values each with min < max")

    def hazard_distance_m(self, obs: np.ndarray) -> float:
        """Clearance to what would break; negative when touched or crossed."""
        obj = obs[OBJECT]
        lo, hi = np.asarray(self.hazard_min_m, float), np.asarray(self.hazard_max_m, float)
        if self.hazard == "wall":
            return float(np.linalg.norm(obj - np.clip(obj, lo, hi)) - self.object_radius_m)
        if self.hazard == "boundary":
            return float(min(obj[0] - lo[0], hi[0] - obj[0], obj[1] - lo[1], hi[1] - obj[1]))
        if self.hazard == "obstacle":
            obstacle = obs[OBSTACLE_XY]
            d = float(np.linalg.norm(obj[:2] - obstacle) - self.obstacle_radius_m - self.object_radius_m)
            if obs[HAND_Z] < self.low_hand_z_m:
                d = min(d, float(np.linalg.norm(obs[HAND_XY] - obstacle) - self.obstacle_radius_m - self.hand_radius_m))
            return d
        if self.hazard == "obstacles":
            gaps = [np.linalg.norm(obs[HAND_XY] - obs[s]) for s in (OBJECT_XY, OBSTACLE_XY)]
            return float(min(gaps) - self.obstacle_radius_m - self.hand_radius_m)
        return float("inf")

    @property
    def reach_target(self) -> str:
        """The perceived object the hand must reach (SafeReach's target); empty for the pushing tasks."""
        return self.objects[2] if self.hazard == "obstacles" else ""


class PerceivedScene(Scene):
    """State, reward and failure of a real task from the hand pose and the latest perceived objects."""

    def __init__(self, rules: RealTaskRules) -> None:
        self.rules = rules
        self.layout = OBS_LAYOUT
        self.objects = PerceivedObjects()
        self.previous: np.ndarray | None = None
        self.operator_mark = ""

    def new_episode(self) -> None:
        self.previous = None
        self.operator_mark = ""

    def update(self, names: Sequence[str], positions_m: np.ndarray, stamp_ns: int, visible: Sequence[bool]) -> None:
        """Positions from perception (base frame, one row per name); unseen ones keep their last fix."""
        self.objects.update(names, positions_m, stamp_ns, visible)

    def mark(self, outcome: str) -> None:
        if outcome not in ("failure", "success"):
            raise ValueError(f"operator mark must be 'failure' or 'success', got {outcome!r}")
        self.operator_mark = outcome

    def check_fresh(self, now_ns: int) -> None:
        self.objects.check_fresh(self.rules.objects[:3], self.rules.object_timeout_s, now_ns)

    def observe(self, hand: HandState, now_ns: int) -> np.ndarray:
        self.check_fresh(now_ns)
        slots = [np.concatenate([self.objects.position(name), UNIT_QUAT]) for name in self.rules.objects[:2]]
        second = slots[1] if len(slots) > 1 else np.zeros(7)
        current = np.concatenate([hand.pos_m, [hand.gripper_open], slots[0], second])
        prev = self.previous if self.previous is not None else current
        self.previous = current
        target = self.rules.reach_target
        goal = self.objects.position(target) if target else np.asarray(self.rules.goal_m, dtype=np.float64)
        return np.concatenate([current, prev, goal])

    def evaluate(self, obs: np.ndarray) -> StepOutcome:
        r = self.rules
        if r.reach_target:
            return self._reach(obs)
        d_hand = float(np.linalg.norm(obs[HAND] - obs[OBJECT]))
        d_goal = float(np.linalg.norm(obs[OBJECT_XY] - obs[GOAL_XY]))
        clearance = r.hazard_distance_m(obs)
        failure = clearance < 0.0 or self.operator_mark == "failure"
        success = not failure and (d_goal <= r.success_radius_m or self.operator_mark == "success")
        reward = 2.0 * np.exp(-d_hand / 0.05) + 6.0 * np.exp(-d_goal / 0.1) + (2.0 if success else 0.0)
        return StepOutcome(
            reward=float(reward),
            cost=float(failure),
            failure=failure,
            success=success,
            terminated=failure,
            hazard_distance_m=clearance,
        )

    def _reach(self, obs: np.ndarray) -> StepOutcome:
        """SafeReach: cost 1 while the hand is at an obstacle; reward 1, and the end, on reaching the target."""
        r = self.rules
        clearance = r.hazard_distance_m(obs)
        touching = clearance < 0.0 or self.operator_mark == "failure"
        reached = float(np.linalg.norm(obs[HAND_XY] - obs[GOAL_XY])) <= r.success_radius_m
        success = (reached or self.operator_mark == "success") and not touching
        return StepOutcome(
            reward=float(reached or self.operator_mark == "success"),
            cost=float(touching),
            failure=touching,
            success=success,
            terminated=reached or self.operator_mark != "",
            hazard_distance_m=clearance,
        )
