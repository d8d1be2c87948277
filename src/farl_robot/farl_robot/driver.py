"""The robot driver interface: what the robot node needs from an arm, sim or real.

A driver moves the hand in the robot's base frame and reports where it is. It does not decide
what is safe (the hard envelope does, in the robot node, before a driver sees a command) and it
does not know the task (a `Scene` turns hand and object positions into the policy's state,
reward and failure flag).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from farl_common.runtime.node import NodeError


@dataclass(frozen=True)
class HandState:
    pos_m: np.ndarray
    """Hand (end-effector) position in the base frame, metres."""
    gripper_open: float
    """Gripper opening, 0 (closed) to 1 (open)."""


class RobotError(NodeError):
    """The arm reported an error during a motion (a reflex, a collision, a rejected command).

    Recoverable: the node calls `recover()` and ends the episode."""


class RobotUnavailable(NodeError):
    """No robot at the configured address, or it stopped answering: nothing can move."""


class RobotFault(NodeError):
    """Recovery failed after the configured retries: the arm is stopped and stays stopped."""


class RobotDriver(ABC):
    """One arm. Every method may raise `RobotError`; `connect` and `home` may raise the other two."""

    @abstractmethod
    def connect(self) -> None:
        """Reach the robot; `RobotUnavailable` with the reason in one line if it cannot."""

    @abstractmethod
    def home(self, seed: int) -> HandState:
        """Move to the start pose of a new episode (the sim driver also resets its scene)."""

    @abstractmethod
    def read(self) -> HandState:
        """Where the hand is now."""

    @abstractmethod
    def execute(self, delta_m: np.ndarray, gripper: float) -> None:
        """Start one control tick's motion: a base-frame hand displacement and a gripper effort in [-1, 1]."""

    @abstractmethod
    def recover(self) -> None:
        """After a `RobotError`: clear the error and retreat to the home pose; `RobotFault` if that fails."""

    @abstractmethod
    def stop(self) -> None:
        """Stop any motion now (the arm holds where it is)."""

    def close(self) -> None:
        """Stop and release the robot; safe to call twice."""
        self.stop()
