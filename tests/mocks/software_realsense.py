"""A RealSense D435 at the USB boundary: librealsense's own `rs.software_device`, fed with frames.

The device has a Depth (z16) and a Color (rgb8) sensor with given intrinsics, exactly what
`farl_perception.realsense_source.RealSenseSource` opens on a real camera; `push` injects one
aligned colour + depth pair.
"""

from __future__ import annotations

import numpy as np
import pyrealsense2 as rs


class SoftwareD435:
    def __init__(self, width: int = 640, height: int = 480, fx: float = 615.0, fy: float = 615.0, fps: int = 30):
        self.width, self.height = width, height
        self.device = rs.software_device()
        self.depth_sensor = self.device.add_sensor("Depth")
        self.color_sensor = self.device.add_sensor("Color")
        intr = rs.intrinsics()
        intr.width, intr.height, intr.fx, intr.fy = width, height, fx, fy
        intr.ppx, intr.ppy = (width - 1) / 2, (height - 1) / 2
        intr.model, intr.coeffs = rs.distortion.none, [0.0] * 5
        self.intrinsics = intr

        def stream(kind, fmt, bpp, uid):
            v = rs.video_stream()
            v.type, v.index, v.uid, v.width, v.height, v.fps, v.bpp, v.fmt = kind, 0, uid, width, height, fps, bpp, fmt
            v.intrinsics = intr
            return v

        self.depth_profile = self.depth_sensor.add_video_stream(stream(rs.stream.depth, rs.format.z16, 2, 0))
        self.color_profile = self.color_sensor.add_video_stream(stream(rs.stream.color, rs.format.rgb8, 3, 1))
        self.depth_sensor.add_read_only_option(rs.option.depth_units, 0.001)
        same = rs.extrinsics()
        same.rotation, same.translation = [1, 0, 0, 0, 1, 0, 0, 0, 1], [0, 0, 0]
        self.depth_profile.register_extrinsics_to(self.color_profile, same)
        self.device.create_matcher(rs.matchers.default)
        self.n = 0

    def push(self, color: np.ndarray, depth_m: np.ndarray) -> None:
        t = 1000.0 + 33.0 * self.n
        z = np.clip(np.round(depth_m * 1000.0), 0, 65535).astype(np.uint16)
        for sensor, profile, pixels, bpp in (
            (self.depth_sensor, self.depth_profile, z, 2),
            (self.color_sensor, self.color_profile, np.ascontiguousarray(color, dtype=np.uint8), 3),
        ):
            f = rs.software_video_frame()
            f.pixels, f.bpp, f.stride = pixels.tobytes(), bpp, self.width * bpp
            f.timestamp, f.domain, f.frame_number = t, rs.timestamp_domain.hardware_clock, self.n
            f.profile = profile.as_video_stream_profile()
            if bpp == 2:
                f.depth_units = 0.001
            sensor.on_video_frame(f)
        self.n += 1


def render_discs(width, height, fx, fy, discs, table_depth_m=0.9):
    """Colour and depth of flat coloured discs facing the camera in front of a grey table.

    `discs`: (camera-frame centre xyz, radius m, RGB); returns (color, depth_m)."""
    color = np.full((height, width, 3), 90, np.uint8)
    depth = np.full((height, width), table_depth_m, np.float32)
    v, u = np.mgrid[0:height, 0:width]
    cx, cy = (width - 1) / 2, (height - 1) / 2
    for centre, radius, rgb in discs:
        x, y, z = centre
        pu, pv = fx * x / z + cx, fy * y / z + cy
        r_px = fx * radius / z
        inside = (u - pu) ** 2 + (v - pv) ** 2 <= r_px**2
        color[inside] = rgb
        depth[inside] = z
    return color, depth


class Streaming:
    """Pushes the same colour + depth pair at `hz` from a thread, as a plugged-in camera streams."""

    def __init__(self, cam: SoftwareD435, color: np.ndarray, depth_m: np.ndarray, hz: float = 30.0) -> None:
        import threading

        self.cam, self.color, self.depth, self.period = cam, color, depth_m, 1.0 / hz
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            self.cam.push(self.color, self.depth)

    def stop(self) -> None:
        """Unplugged: no more frames."""
        self._stop.set()
        self._thread.join()
