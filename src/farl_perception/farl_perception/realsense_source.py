"""Intel RealSense (D435) frames through pyrealsense2: colour and depth aligned to colour.

The sensors are opened one by one into a `rs.syncer` (not `rs.pipeline`), which is the path a
`rs.software_device` also takes, so tests drive the very code a camera does. A stalled or
unplugged camera raises `StaleFrame` after `timeout_s`; after three in a row it is opened afresh.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from farl_perception.frames import CameraUnavailable, Frame, Intrinsics, StaleFrame

_REOPEN_AFTER = 3
"""Stale reads in a row before the camera is closed and opened again (found anew if it was unplugged)."""
_QUEUE = 4
"""Framesets the syncer keeps: a read drains them and takes the newest with both colour and depth
(the matcher also lets single frames through, and a queue of one may hold only such a one)."""


class RealSenseSource:
    def __init__(
        self,
        width_px: int = 640,
        height_px: int = 480,
        fps_hz: int = 30,
        timeout_s: float = 1.0,
        serial: str = "",
        device: Callable[[], Any] | None = None,
    ) -> None:
        """`device` returns the `rs.device` to open, called at each (re)open (tests: a software device;
        a replugged camera is a new device); default the first camera found, or the one with `serial`."""
        self.width, self.height, self.fps = width_px, height_px, fps_hz
        self.timeout_s, self.serial = timeout_s, serial
        self._given = device
        self._sensors: list[Any] = []
        self._sync: Any = None
        self._align: Any = None
        self._stale_reads = 0

    def _rs(self):
        try:
            import pyrealsense2 as rs
        except ImportError as err:
            raise CameraUnavailable(f"pyrealsense2 is not installed ({err}): pip install -e .[camera]") from None
        return rs

    def _device(self, rs) -> Any:
        if self._given is not None:
            return self._given()
        devices = list(rs.context().query_devices())
        if self.serial:
            devices = [d for d in devices if d.get_info(rs.camera_info.serial_number) == self.serial]
        if not devices:
            which = f"with serial {self.serial}" if self.serial else "at all"
            raise CameraUnavailable(
                f"no RealSense camera {which}: is it plugged into a USB 3 port, and are librealsense's "
                "udev rules installed?"
            )
        return devices[0]

    def _profile(self, rs, sensor: Any, stream: Any, fmt: Any) -> Any:
        for p in sensor.get_stream_profiles():
            if p.stream_type() != stream or p.format() != fmt or p.fps() != self.fps:
                continue
            v = p.as_video_stream_profile()
            if v.width() == self.width and v.height() == self.height:
                return p
        return None

    def open(self) -> None:
        if self._sync is not None:
            return
        rs = self._rs()
        dev = self._device(rs)
        wanted = {rs.stream.color: rs.format.rgb8, rs.stream.depth: rs.format.z16}
        chosen: dict[Any, tuple[Any, Any]] = {}
        for sensor in dev.query_sensors():
            for stream, fmt in wanted.items():
                if stream not in chosen and (p := self._profile(rs, sensor, stream, fmt)) is not None:
                    chosen[stream] = (sensor, p)
        missing = [str(s).split(".")[-1] for s in wanted if s not in chosen]
        if missing:
            raise CameraUnavailable(
                f"the RealSense offers no {'/'.join(missing)} stream at {self.width}x{self.height} {self.fps} Hz"
            )
        self._sync = rs.syncer(_QUEUE)
        self._sensors = []
        for sensor, profile in chosen.values():
            sensor.open(profile)
            sensor.start(self._sync)
            self._sensors.append(sensor)
        self._color_profile = chosen[rs.stream.color][1]
        i = self._color_profile.as_video_stream_profile().get_intrinsics()
        self.intrinsics = Intrinsics(i.width, i.height, i.fx, i.fy, i.ppx, i.ppy)
        self._align = rs.align(rs.stream.color)
        self._depth_scale = self._depth_units(rs, chosen[rs.stream.depth][0])

    @staticmethod
    def _depth_units(rs, sensor: Any) -> float:
        try:
            return float(sensor.get_option(rs.option.depth_units))
        except RuntimeError:
            return 0.001

    def read(self, stamp_ns: int | None = None) -> Frame:
        """The next aligned colour+depth frame, stamped `stamp_ns` (default: the wall clock now);
        `StaleFrame` if none came within the timeout."""
        if self._sync is None:
            try:
                self.open()
            except CameraUnavailable:
                raise
            except RuntimeError as err:
                raise CameraUnavailable(f"RealSense: {err}") from None
        deadline = time.monotonic() + self.timeout_s
        frames = None
        while frames is None:
            left_ms = int(max(0.0, deadline - time.monotonic()) * 1000)
            ok, got = self._sync.try_wait_for_frames(max(1, left_ms))
            while ok:  # drain: the newest complete frameset wins
                if got.size() >= 2:
                    frames = got
                ok, got = self._sync.try_wait_for_frames(0) if frames is not None else (False, None)
            if frames is None and time.monotonic() >= deadline:
                self._stale_reads += 1
                if self._stale_reads >= _REOPEN_AFTER:
                    self.close()  # the next read opens it afresh: an unplugged camera comes back this way
                raise StaleFrame(f"RealSense: no colour+depth frame for {self.timeout_s:.1f} s (unplugged?)")
        self._stale_reads = 0
        aligned = self._align.process(frames)
        color, depth = aligned.get_color_frame(), aligned.get_depth_frame()
        rgb = np.asarray(color.get_data()).reshape(self.height, self.width, 3).copy()
        z = np.asarray(depth.get_data(), dtype=np.float32).reshape(self.height, self.width) * self._depth_scale
        return Frame(rgb, z, self.intrinsics, time.time_ns() if stamp_ns is None else stamp_ns)

    def close(self) -> None:
        for s in self._sensors:
            try:
                s.stop()
                s.close()
            except RuntimeError:
                pass
        self._sensors, self._sync = [], None
