"""The scene in a window, for a person recording demonstrations in simulation (`farl record --mode sim`).

The sim robot's MuJoCo scene, rendered from the camera perception uses, with the hand and the pushed
object marked, the hazard distance and the teleop node's status line drawn on it, refreshed with each
state. It is a view only: the keys still go to the terminal `farl record` runs in.

OpenCV's window (Qt) is the one GUI dependency; without a display, `farl record` says so and records
with the status line alone.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from farl_common import messages as M
from farl_common.obs_layout import HAND, OBJECT
from farl_common.runtime.node import Node
from farl_common.shared_inputs import STATE_INPUT

HAND_BGR = (255, 160, 0)
OBJECT_BGR = (0, 215, 255)
TEXT_BGR = (255, 255, 255)
WINDOW = "farl record"


def display_available() -> bool:
    """Whether an X or Wayland display is there to open a window on."""
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


@dataclass
class SimViewParams:
    width_px: int = field(default=480, metadata={"doc": "window width (the rendering's; 480x360 renders in ~60 ms)"})
    height_px: int = field(default=360, metadata={"doc": "window height"})


class SimViewNode(Node):
    """Draws each state's scene; in process only (it holds the sim driver's MuJoCo env)."""

    name = "sim_view"
    Params = SimViewParams
    inputs = (STATE_INPUT,)

    def __init__(
        self,
        params: Any,
        env: Any,
        status: Callable[[], str],
        show: Callable[[np.ndarray], None] | None = None,
    ) -> None:
        """`env`: the sim robot's FailureBench env; `status`: the teleop node's status line; `show` puts a
        BGR image on screen (default: an OpenCV window)."""
        super().__init__(params)
        self.env, self.status = env, status
        self._show = show
        self.frames = 0

    def on_start(self) -> None:
        from farl_perception.mujoco_source import MujocoCameraSource

        self.camera = MujocoCameraSource(self.env, self.params.width_px, self.params.height_px)
        self.T_camera_base = np.linalg.inv(self.camera.T_base_camera)
        self._show = self._show or _opencv_window()

    def on_state(self, msg: Any) -> None:
        self._show(self.draw(np.asarray(M.state_values(msg), dtype=np.float64)))
        self.frames += 1

    def draw(self, obs: np.ndarray) -> np.ndarray:
        """The scene as a BGR image, with the hand and object marked and the status written on it."""
        import cv2

        rgb = self.camera.read().color
        img = np.ascontiguousarray(rgb[:, :, ::-1])
        for where, colour, label in ((obs[HAND], HAND_BGR, "hand"), (obs[OBJECT], OBJECT_BGR, "object")):
            uv = self._pixel(where)
            if uv is not None:
                cv2.circle(img, uv, 9, colour, 2, cv2.LINE_AA)
                cv2.putText(img, label, (uv[0] + 11, uv[1] + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1, cv2.LINE_AA)
        cv2.rectangle(img, (0, 0), (img.shape[1], 44), (0, 0, 0), -1)
        for row, text in enumerate(_wrap(self.status(), 70)[:2]):
            cv2.putText(img, text, (6, 17 + 20 * row), cv2.FONT_HERSHEY_SIMPLEX, 0.45, TEXT_BGR, 1, cv2.LINE_AA)
        return img

    def _pixel(self, p_base: np.ndarray) -> tuple[int, int] | None:
        T = self.T_camera_base
        p_cam = T[:3, :3] @ np.asarray(p_base, dtype=np.float64)[:3] + T[:3, 3]
        if p_cam[2] <= 0:
            return None
        u, v = self.camera.intrinsics.project(p_cam)
        return round(float(u)), round(float(v))

    def on_shutdown(self) -> None:
        self.camera.close()
        if self._show is not None and hasattr(self._show, "close"):
            self._show.close()


def _wrap(text: str, width: int) -> list[str]:
    lines, line = [], ""
    for part in text.split(" | "):
        if line and len(line) + len(part) + 3 > width:
            lines.append(line)
            line = part
        else:
            line = f"{line} | {part}" if line else part
    return [*lines, line] if line else lines


class _opencv_window:
    """An OpenCV window (Qt) that shows one image at a time."""

    def __call__(self, bgr: np.ndarray) -> None:
        import cv2

        cv2.imshow(WINDOW, bgr)
        cv2.waitKey(1)  # lets Qt draw the window

    def close(self) -> None:
        import cv2

        cv2.destroyAllWindows()
        cv2.waitKey(1)
