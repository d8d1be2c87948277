"""What a camera gives perception: an aligned colour and depth frame, its intrinsics and time.

Pixels follow the OpenCV convention (u right, v down; camera z forward, y down). Depth is metres
along the camera's z axis, 0 where the sensor has no reading.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


class CameraUnavailable(RuntimeError):
    """No camera (not plugged in, no permission, library missing); the message says which and why."""


class StaleFrame(RuntimeError):
    """No new frame within the timeout: the camera stalled or was unplugged."""


@dataclass(frozen=True)
class Intrinsics:
    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float

    def deproject(self, u: float, v: float, depth_m: float) -> np.ndarray:
        """Pixel (u, v) at `depth_m` to a point in the camera frame (pinhole; the D435's colour
        stream reports zero distortion, and MuJoCo renders an ideal pinhole)."""
        return np.array([(u - self.cx) / self.fx * depth_m, (v - self.cy) / self.fy * depth_m, depth_m])

    def project(self, p_cam: np.ndarray) -> np.ndarray:
        p = np.asarray(p_cam, dtype=np.float64)
        return np.array([self.fx * p[0] / p[2] + self.cx, self.fy * p[1] / p[2] + self.cy])


@dataclass
class Frame:
    color: np.ndarray
    """H x W x 3, uint8, RGB."""
    depth_m: np.ndarray
    """H x W, float32 metres, aligned to the colour image."""
    intrinsics: Intrinsics
    stamp_ns: int
    truth: dict[str, np.ndarray] = field(default_factory=dict)
    """Where each object really is (base frame), when the source knows: rendered scenes, tests."""
