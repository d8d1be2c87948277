"""Teleoperation input devices: a 3Dconnexion SpaceMouse (pyspacemouse 2.x) and a keyboard.

A device reports its raw state (six axes, the buttons held, the keys typed since the last read);
`farl_teleop.mapping` turns that into a hand displacement and commands. Reading an unplugged
device raises `DeviceLost`, which the teleop node turns into a hold and an ended episode.
"""

from __future__ import annotations

import os
import select
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from farl_common.runtime.node import NodeError

AXES = ("x", "y", "z", "roll", "pitch", "yaw")
_MAX_REPORTS_PER_READ = 64
"""A SpaceMouse sends translation, rotation and buttons as separate HID reports: one read drains
up to this many, so a poll at the control rate sees the latest of each."""


class DeviceUnavailable(NodeError):
    """No such device (not plugged in, no permission on /dev/hidraw*, library missing)."""


class DeviceLost(NodeError):
    """The device stopped answering mid-run (unplugged)."""


@dataclass
class DeviceState:
    axes: np.ndarray = field(default_factory=lambda: np.zeros(6))
    """x, y, z, roll, pitch, yaw deflections, about [-1, 1] (SpaceMouse: pyspacemouse's HID_Z_UP frame)."""
    buttons: tuple[int, ...] = ()
    """1 for each button held down."""
    keys: str = ""
    """Keys typed since the last read (keyboard)."""


class TeleopDevice(ABC):
    name = "device"

    @abstractmethod
    def open(self) -> None:
        """`DeviceUnavailable` with the reason in one line when the device cannot be used."""

    @abstractmethod
    def read(self, now_s: float) -> DeviceState:
        """The state now; `DeviceLost` once the device is gone."""

    def close(self) -> None:  # noqa: B027 - most devices have nothing to release
        """Release the device; safe to call twice."""


class SpaceMouse(TeleopDevice):
    """A SpaceMouse through pyspacemouse 2.x, axes in its right-handed Z-up convention.

    `factory` opens the device (tests give one that wraps fake HID reports); by default the first
    supported device found, or the one named `device_name` (pyspacemouse's names, e.g. SpaceNavigator).
    """

    name = "spacemouse"

    def __init__(self, device_name: str = "", factory: Callable[[], Any] | None = None) -> None:
        self.device_name = device_name
        self._factory = factory or self._open_hid
        self._dev: Any = None

    def _open_hid(self) -> Any:
        try:
            import pyspacemouse
            from pyspacemouse.types import AxisConvention
        except ImportError as err:
            raise DeviceUnavailable(
                f"pyspacemouse is not installed ({err}): pip install -e .[spacemouse], "
                "apt install libhidapi-hidraw0 libhidapi-libusb0"
            ) from None
        return pyspacemouse.open(device=self.device_name or None, axis_convention=AxisConvention.HID_Z_UP)

    def open(self) -> None:
        if self._dev is not None:
            return
        try:
            self._dev = self._factory()
        except (RuntimeError, ValueError, OSError) as err:
            raise DeviceUnavailable(
                f"no SpaceMouse ({' '.join(str(err).split())}); is it plugged in, and may this user read "
                "/dev/hidraw* (udev rule)? --device keyboard works without one"
            ) from None

    def read(self, now_s: float) -> DeviceState:
        if self._dev is None:
            raise DeviceLost("SpaceMouse is not open")
        try:
            state = self._dev.read()
            for _ in range(_MAX_REPORTS_PER_READ - 1):
                stamp = state.t
                state = self._dev.read()
                if state.t == stamp:  # no report was waiting
                    break
        except Exception as err:  # noqa: BLE001 - easyhid/hidapi raise their own types when the device goes
            self.close()
            raise DeviceLost(f"SpaceMouse stopped answering ({type(err).__name__}: {err}): unplugged?") from None
        axes = np.array([float(getattr(state, a)) for a in AXES])
        return DeviceState(np.clip(np.nan_to_num(axes), -1.5, 1.5), tuple(int(b) for b in state.buttons))

    def close(self) -> None:
        dev, self._dev = self._dev, None
        if dev is not None:
            try:
                dev.close()
            except Exception:  # noqa: BLE001 - closing a device that is already gone
                pass


KEY_AXES = {"i": (0, 1.0), "k": (0, -1.0), "j": (1, 1.0), "l": (1, -1.0), "u": (2, 1.0), "o": (2, -1.0)}
"""teleop_twist_keyboard's layout: i/k forward/back (+x/-x), j/l left/right (+y/-y), u/o up/down."""


class Keyboard(TeleopDevice):
    """The keyboard fallback: an axis key deflects that axis fully for `hold_s` after each press
    (a terminal's key repeat keeps a held key deflected); every other key is passed on as typed.

    `keys` returns the characters typed since the last call: a terminal by default, a script in tests.
    """

    name = "keyboard"

    def __init__(self, hold_s: float = 0.3, keys: Callable[[], str] | None = None) -> None:
        self.hold_s = hold_s
        self._keys = keys
        self._terminal: _Terminal | None = None
        self._until = np.full(6, -np.inf)
        self._sign = np.zeros(6)

    def open(self) -> None:
        if self._keys is None:
            self._terminal = _Terminal()
            self._keys = self._terminal.read

    def read(self, now_s: float) -> DeviceState:
        if self._keys is None:
            raise DeviceLost("keyboard is not open")
        try:
            typed = self._keys()
        except EOFError:
            raise DeviceLost("keyboard input closed") from None
        other = []
        for ch in typed:
            if ch.lower() in KEY_AXES:
                axis, sign = KEY_AXES[ch.lower()]
                self._until[axis], self._sign[axis] = now_s + self.hold_s, sign
            else:
                other.append(ch)
        axes = np.where(self._until > now_s, self._sign, 0.0)
        return DeviceState(axes, (), "".join(other))

    def close(self) -> None:
        if self._terminal is not None:
            self._terminal.restore()
            self._terminal = None


class _Terminal:
    """stdin in cbreak mode (keys arrive unbuffered, without echo), restored on close."""

    def __init__(self) -> None:
        import termios
        import tty

        if not sys.stdin.isatty():
            raise DeviceUnavailable("--device keyboard needs an interactive terminal (stdin is not a tty)")
        self.fd = sys.stdin.fileno()
        self._saved = termios.tcgetattr(self.fd)
        tty.setcbreak(self.fd)

    def read(self) -> str:
        out = []
        while select.select([self.fd], [], [], 0)[0]:
            data = os.read(self.fd, 64)
            if not data:
                raise EOFError
            out.append(data.decode(errors="ignore"))
        return "".join(out)

    def restore(self) -> None:
        import termios

        termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)
