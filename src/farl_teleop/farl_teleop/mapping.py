"""From a device's raw state to what the person means: a hand displacement and commands.

Axes: a deadband (the puck of a SpaceMouse never rests at exactly zero), rescaled so motion
starts smoothly at its edge, a gain, and a per-axis choice of device axis and sign (a SpaceMouse
on a desk beside the robot is rotated relative to the base frame). Buttons: a press shorter than
`long_press_s` and a long press are different presses ("b0", "b0_long"), read on release, so a
two-button SpaceMouse can start, stop, mark and toggle. Keys are presses by their character.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from farl_teleop.devices import AXES, DeviceState

COMMANDS = ("start_stop", "success", "failure", "gripper", "keep", "discard", "rerecord")
"""start_stop: start an episode, or end it with the scene's outcome; success/failure: end it with
that outcome (an IR failure for failure); gripper: toggle the hand; keep/discard/rerecord: the
answer to "keep this episode?" after each one."""

SPACEMOUSE_BINDINGS = {"b0": "start_stop", "b1": "gripper", "b0_long": "failure", "b1_long": "success"}
SPACEMOUSE_REVIEW = {"b0": "keep", "b1": "discard", "b0_long": "rerecord", "b1_long": "rerecord"}
KEYBOARD_BINDINGS = {"e": "start_stop", "g": "gripper", "s": "success", "f": "failure", " ": "gripper"}
KEYBOARD_REVIEW = {"a": "keep", "\n": "keep", "d": "discard", "r": "rerecord"}


def parse_axis_map(axis_map: list[str]) -> list[tuple[int, float]]:
    """['y', '-x', 'z'] -> base x from device y, base y from minus device x, base z from device z."""
    if len(axis_map) != 3:
        raise ValueError(f"axis_map: three entries (base x, y, z), got {axis_map}")
    out = []
    for entry in axis_map:
        name = entry.strip().lstrip("+-")
        if name not in AXES:
            raise ValueError(f"axis_map: {entry!r} is not a device axis ({', '.join(AXES)}, with an optional '-')")
        out.append((AXES.index(name), -1.0 if entry.strip().startswith("-") else 1.0))
    return out


@dataclass
class AxisMapping:
    axis_map: tuple[tuple[int, float], ...]
    deadband: float = 0.1
    gain: float = 1.0
    """Action units at full deflection (1.0 = the envelope's largest step per tick)."""

    @classmethod
    def from_names(cls, axis_map: list[str], deadband: float, gain: float) -> AxisMapping:
        if not 0.0 <= deadband < 1.0:
            raise ValueError(f"deadband must be in [0, 1), got {deadband}")
        return cls(tuple(parse_axis_map(axis_map)), deadband, gain)

    def displacement(self, axes: np.ndarray) -> np.ndarray:
        """dx, dy, dz in action units [-1, 1]; exactly zero inside the deadband."""
        raw = np.array([sign * float(axes[i]) for i, sign in self.axis_map])
        raw = np.nan_to_num(raw)
        mag = np.clip((np.abs(raw) - self.deadband) / (1.0 - self.deadband), 0.0, None)
        return np.clip(np.sign(raw) * mag * self.gain, -1.0, 1.0)

    def deflected(self, axes: np.ndarray) -> bool:
        """Beyond the deadband on any mapped axis: the person is moving the hand."""
        return bool(np.any(self.displacement(axes) != 0.0))


class ButtonPresses:
    """Button levels in, presses out: "bN" for a short press, "bN_long" for one held `long_press_s`,
    reported when the button is released."""

    def __init__(self, long_press_s: float = 0.8) -> None:
        self.long_press_s = long_press_s
        self._down_since: dict[int, float] = {}

    def update(self, buttons: tuple[int, ...], now_s: float) -> list[str]:
        out = []
        for i, level in enumerate(buttons):
            if level and i not in self._down_since:
                self._down_since[i] = now_s
            elif not level and i in self._down_since:
                held = now_s - self._down_since.pop(i)
                out.append(f"b{i}_long" if held >= self.long_press_s else f"b{i}")
        return out

    def presses(self, state: DeviceState, now_s: float) -> list[str]:
        return [*self.update(state.buttons, now_s), *state.keys]


def bindings_for(device: str) -> tuple[dict[str, str], dict[str, str]]:
    """(while recording, after an episode) press -> command tables of a device kind."""
    if device == "keyboard":
        return KEYBOARD_BINDINGS, KEYBOARD_REVIEW
    return SPACEMOUSE_BINDINGS, SPACEMOUSE_REVIEW


def help_line(device: str) -> str:
    """What the buttons do, for the live status line."""
    if device == "keyboard":
        return "i/k j/l u/o move, e start/stop, g gripper, s success, f failure; after: a keep, d discard, r redo"
    return "left start/stop (hold: failure), right gripper (hold: success); after: left keep, right discard, hold redo"


_PHASE_HELP = {
    "keyboard": {
        "idle": "e: start",
        "approach": "i/k j/l u/o move; e: record from here",
        "recording": "e stop, s success, f failure, g gripper",
        "review": "a keep, d discard, r redo",
    },
    "spacemouse": {
        "idle": "left: start",
        "approach": "move; left: record from here",
        "recording": "left stop, hold left failure, hold right success, right gripper",
        "review": "left keep, right discard, hold redo",
    },
}


def phase_help(device: str, phase: str) -> str:
    """The buttons that matter now, short enough for the live status line."""
    return _PHASE_HELP.get(device, _PHASE_HELP["spacemouse"]).get(phase, "")
