"""A SpaceMouse at the HID boundary: scripted HID reports decoded by the real pyspacemouse code.

`FakeHID` stands where easyhid's device would: `read(n)` returns the next report whose time has
come (by the given clock) or b"" (a non-blocking read with nothing waiting), and raises as hidapi
does once the device is unplugged. `encode_*` build reports from the device spec, so the bytes are
what a SpaceNavigator sends and pyspacemouse's own decoding turns them back into axes and buttons.
"""

from __future__ import annotations

from collections.abc import Callable

from pyspacemouse import SpaceMouseDevice
from pyspacemouse.config_helpers import apply_axis_convention
from pyspacemouse.loader import get_device_specs
from pyspacemouse.types import AxisConvention

SPEC = apply_axis_convention(get_device_specs()["SpaceNavigator"], AxisConvention.HID_Z_UP)


def encode_axes(**values: float) -> list[bytes]:
    """Reports setting the named axes (x, y, z, roll, pitch, yaw in [-1, 1]); the rest of each channel 0."""
    channels: dict[int, bytearray] = {}
    for name, spec in SPEC.mappings.items():
        report = channels.setdefault(spec.channel, bytearray([spec.channel] + [0] * 6))
        raw = round(values.get(name, 0.0) * SPEC.axis_scale / spec.scale) & 0xFFFF
        report[spec.byte1], report[spec.byte2] = raw & 0xFF, raw >> 8
    return [bytes(r) for r in channels.values()]


def encode_buttons(*held: int) -> bytes:
    bits = 0
    for i in held:
        bits |= 1 << SPEC.button_specs[i].bit
    return bytes([SPEC.button_specs[0].channel, bits, 0, 0, 0, 0, 0])


class Unplugged(OSError):
    """What hidapi's read raises once the device is gone."""


class FakeHID:
    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.script: list[tuple[float, bytes]] = []
        self.unplug_at: float | None = None
        self.replug_at: float | None = None
        self.opened = self.closed = 0

    def at(self, t_s: float, *reports: bytes) -> FakeHID:
        self.script += [(t_s, r) for r in reports]
        self.script.sort(key=lambda x: x[0])
        return self

    def move(self, t_s: float, **axes: float) -> FakeHID:
        return self.at(t_s, *encode_axes(**axes))

    def press(self, t_s: float, button: int, hold_s: float = 0.1) -> FakeHID:
        return self.at(t_s, encode_buttons(button)).at(t_s + hold_s, encode_buttons())

    # what easyhid's Device offers --------------------------------------------------------------
    def plugged(self) -> bool:
        t = self.clock()
        gone = self.unplug_at is not None and t >= self.unplug_at
        return not gone or (self.replug_at is not None and t >= self.replug_at)

    def read(self, size: int = 64) -> bytes:
        if not self.plugged() or self.closed:
            raise Unplugged(5, "Input/output error")
        if self.script and self.script[0][0] <= self.clock():
            return self.script.pop(0)[1]
        return b""

    def open(self) -> None:
        self.opened += 1

    def close(self) -> None:
        self.closed += 1

    def set_nonblocking(self, flag: bool) -> None:
        pass

    product_string = "SpaceNavigator (fake)"
    manufacturer_string = "3Dconnexion"
    release_number = 1
    serial_number = ""


def fake_spacemouse(hid: FakeHID) -> SpaceMouseDevice:
    """pyspacemouse's device object over the fake HID, opened as `pyspacemouse.open()` does."""
    if not hid.plugged():
        raise RuntimeError("No connected or supported devices found.")  # pyspacemouse.open's words
    hid.closed = 0
    dev = SpaceMouseDevice(SPEC, hid)
    dev.open()
    return dev
