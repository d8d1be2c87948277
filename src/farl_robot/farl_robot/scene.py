"""What turns hand and object positions into the policy's state, the reward and the failure flag.

In simulation the physics knows all of it (`farl_robot.sim_driver.SimDriver` is its own scene). On
the real arm, `PerceivedScene` assembles the state from the driver's hand pose and the object
positions perception publishes (robot base frame), and applies the task's rules
(`farl_robot.real_tasks`): reward, IR failure (paper Sec. VI.C.1) and success. A state it cannot
trust (an object not seen recently) raises `StaleState`, and the robot node holds.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from farl_robot.driver import HandState


class StaleState(RuntimeError):
    """The state cannot be assembled from fresh data (an object unseen for too long); the arm holds."""


@dataclass(frozen=True)
class StepOutcome:
    reward: float
    cost: float
    """Binary constraint cost C(s, a) of the paper: 1 on an IR failure."""
    failure: bool
    success: bool
    terminated: bool
    """The episode cannot go on (an IR failure: a person must reset the scene)."""
    hazard_distance_m: float


class Scene(ABC):
    layout: tuple[tuple[str, int], ...]

    def check_fresh(self, now_ns: int) -> None:  # noqa: B027 - a scene with ground truth is always fresh
        """`StaleState` when the state could not be trusted now; checked before the arm moves."""

    @abstractmethod
    def observe(self, hand: HandState, now_ns: int) -> np.ndarray:
        """The state vector in `layout`; `StaleState` when it cannot be trusted."""

    @abstractmethod
    def evaluate(self, obs: np.ndarray) -> StepOutcome:
        """Reward, cost and flags of the transition that led to `obs`."""
