"""Who is at the controls: a person with a device, or a scripted person for tests and benchmarks.

An operator is polled with the time and the latest state and answers with a hand action (None
when hands are off: inside the deadband) and the presses since the last poll.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

from farl_teleop.devices import DeviceState, TeleopDevice
from farl_teleop.mapping import AxisMapping, ButtonPresses


@dataclass
class OperatorInput:
    action: np.ndarray | None
    """dx, dy, dz, gripper in action units; None while hands are off."""
    presses: list[str] = field(default_factory=list)
    gripper: float = -1.0
    """The gripper effort the person holds (toggled by presses), also while hands are off."""

    def command(self) -> np.ndarray:
        """What to execute: the person's action, or, hands off, a hold with the gripper as they left it."""
        if self.action is None:
            return np.array([0.0, 0.0, 0.0, self.gripper])
        return np.asarray(self.action, dtype=np.float64)


class Operator(ABC):
    name = "operator"

    def open(self) -> None:  # noqa: B027 - a scripted person needs nothing opened
        """`DeviceUnavailable` when there is no device."""

    @abstractmethod
    def poll(self, now_s: float, obs: np.ndarray | None) -> OperatorInput:
        """`DeviceLost` when the device went away."""

    def toggle_gripper(self) -> None:  # noqa: B027
        """The gripper command was pressed."""

    def new_episode(self) -> None:  # noqa: B027
        """An episode begins: nothing carries over from the last one."""

    def close(self) -> None:  # noqa: B027
        """Release the device."""


class DeviceOperator(Operator):
    """A person with a SpaceMouse or a keyboard."""

    def __init__(self, device: TeleopDevice, mapping: AxisMapping, long_press_s: float = 0.8) -> None:
        self.device, self.mapping = device, mapping
        self.name = device.name
        self.buttons = ButtonPresses(long_press_s)
        self.gripper = -1.0  # open
        self.last: DeviceState | None = None

    def open(self) -> None:
        self.device.open()

    def poll(self, now_s: float, obs: np.ndarray | None) -> OperatorInput:
        state = self.device.read(now_s)
        self.last = state
        presses = self.buttons.presses(state, now_s)
        if not self.mapping.deflected(state.axes):
            return OperatorInput(None, presses, self.gripper)
        return OperatorInput(np.append(self.mapping.displacement(state.axes), self.gripper), presses, self.gripper)

    def toggle_gripper(self) -> None:
        self.gripper = -self.gripper

    def close(self) -> None:
        self.device.close()


class ScriptedPerson(Operator):
    """A person who watches the FailureBench scene and grabs the controls when the object comes
    within `takeover_m` of its hazard, moves it (or the hand) away as the recovery demos do for
    `carry_s`, then lets go and watches for `carry_s` before grabbing again. Used by the sim graph
    and `farl finetune --person`."""

    name = "scripted person"

    def __init__(self, task: str, takeover_m: float = 0.03, carry_s: float = 2.0) -> None:
        from farl_sim.experts import recovery_mover
        from farl_sim.tasks import get_task

        self.spec = get_task(task)
        self.takeover_m, self.carry_s = takeover_m, carry_s
        self.mover = recovery_mover(self.spec)
        self.grabbed_at: float | None = None
        self.let_go_at = -np.inf

    def new_episode(self) -> None:
        self.grabbed_at, self.let_go_at = None, -np.inf

    def hazard_distance_m(self, obs: np.ndarray) -> float:
        from farl_sim.hazards import hazard_distance_m

        return hazard_distance_m(self.spec, obs)

    def poll(self, now_s: float, obs: np.ndarray | None) -> OperatorInput:
        if obs is None:
            return OperatorInput(None)
        if self.grabbed_at is not None and now_s - self.grabbed_at >= self.carry_s:
            self.grabbed_at, self.let_go_at = None, now_s
            return OperatorInput(None)
        if self.grabbed_at is None:
            if now_s - self.let_go_at < self.carry_s or self.hazard_distance_m(obs) >= self.takeover_m:
                return OperatorInput(None)
            self.grabbed_at = now_s
        action = np.asarray(self.mover(obs), dtype=np.float64)
        return OperatorInput(action, [], float(action[3]))
