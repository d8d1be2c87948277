"""What turns hand and object positions into the policy's state, the reward and the failure flag.

In simulation the physics knows all of it (`farl_robot.sim_driver.SimDriver` is its own scene). On
the real arm, `PerceivedScene` assembles the state from the driver's hand pose and the object
positions perception publishes (robot base frame), and applies the task's rules
(`farl_robot.real_tasks`): reward, IR failure (paper Sec. VI.C.1) and success. A state it cannot
trust (an object not seen recently) raises `StaleState`, and the robot node holds.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
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


class PerceivedObjects:
    """The latest perceived position of each object (base frame) and when it was last seen."""

    def __init__(self) -> None:
        self.seen: dict[str, tuple[np.ndarray, int]] = {}

    def update(self, names: Sequence[str], positions_m: np.ndarray, stamp_ns: int, visible: Sequence[bool]) -> None:
        """One row per name; an object not visible (or not finite) keeps its last fix and its age grows."""
        pos = np.asarray(positions_m, dtype=np.float64).reshape(len(names), 3)
        for name, p, ok in zip(names, pos, visible, strict=True):
            if ok and np.all(np.isfinite(p)):
                self.seen[name] = (p.copy(), int(stamp_ns))

    def check_fresh(self, names: Sequence[str], timeout_s: float, now_ns: int) -> None:
        """`StaleState` naming the first object never seen or seen longer than `timeout_s` ago."""
        for name in names:
            if name not in self.seen:
                raise StaleState(f"no position of {name!r} from perception yet")
            age_s = (now_ns - self.seen[name][1]) / 1e9
            if age_s > timeout_s:
                raise StaleState(f"{name!r} last seen {age_s:.2f} s ago (limit {timeout_s} s)")

    def position(self, name: str) -> np.ndarray:
        return self.seen[name][0]
