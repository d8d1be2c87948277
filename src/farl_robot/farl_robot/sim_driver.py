"""The FailureBench sim driver: the robot driver interface over a FailureBench scene in MuJoCo.

The hand is MetaWorld's mocap-driven gripper; a base-frame displacement becomes MetaWorld's action
(1 cm per unit). The same object is the scene (`SimScene`), because in simulation the physics
that moves the hand also moves the objects and knows the reward and the failure.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from farl_common.obs_layout import GRIPPER, HAND
from farl_robot.driver import HandState, RobotDriver
from farl_robot.scene import Scene, StepOutcome

ACTION_SCALE_M = 0.01
"""MetaWorld moves the hand's mocap by 1 cm per unit of action."""


class SimDriver(RobotDriver, Scene):
    def __init__(self, task: str, horizon_steps: int) -> None:
        from farl_common.obs_layout import OBS_LAYOUT
        from farl_sim import make_env

        self.task, self.horizon_steps = task, horizon_steps
        self.layout = OBS_LAYOUT
        self._make = lambda: make_env(task, horizon_steps=horizon_steps)
        self.env: Any = None
        self.obs: np.ndarray | None = None
        self._last: StepOutcome | None = None

    # RobotDriver --------------------------------------------------------------------------------
    def connect(self) -> None:
        self.env = self._make()

    def home(self, seed: int) -> HandState:
        self.obs, _ = self.env.reset(seed=seed)
        self._last = None
        return self.read()

    def read(self) -> HandState:
        assert self.obs is not None, "home() first"
        return HandState(self.obs[HAND].copy(), float(self.obs[GRIPPER]))

    def execute(self, delta_m: np.ndarray, gripper: float) -> None:
        action = np.append(np.asarray(delta_m, dtype=np.float64) / ACTION_SCALE_M, gripper)
        obs, reward, terminated, _, info = self.env.step(action)
        self.obs = obs
        self._last = StepOutcome(
            reward=float(reward),
            cost=float(info["cost"]),
            failure=bool(info["failure"]),
            success=bool(info["success"]),
            terminated=bool(terminated),
            hazard_distance_m=float(info["hazard_distance_m"]),
        )

    def recover(self) -> None:
        """The simulated arm raises no errors."""

    def stop(self) -> None:
        """A simulated arm moves only when stepped."""

    def close(self) -> None:
        if self.env is not None:
            self.env.close()
            self.env = None

    # Scene ------------------------------------------------------------------------------------
    def observe(self, hand: HandState, now_ns: int) -> np.ndarray:
        assert self.obs is not None
        return self.obs.copy()

    def evaluate(self, obs: np.ndarray) -> StepOutcome:
        assert self._last is not None, "evaluate() after a step"
        return self._last
