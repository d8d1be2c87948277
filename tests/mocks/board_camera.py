"""A camera at the hardware edge that sees a calibration board on the hand, and a hand that reports its pose.

The board is OpenCV's own printable image, warped into the camera by the homography of its pose
(a plane seen by a pinhole), so detection and solvePnP run on pixels as they would on a RealSense
frame. Poses follow the eye-to-hand chain: T_camera_board = T_base_camera^-1 T_base_hand T_hand_board.
"""

from __future__ import annotations

import numpy as np

from farl_perception.board_calibration import BoardSpec, camera_matrix
from farl_perception.frames import Frame, Intrinsics
from farl_perception.mujoco_source import look_at

INTRINSICS = Intrinsics(640, 480, 600.0, 600.0, 319.5, 239.5)
T_BASE_CAMERA = look_at(np.array([0.5, 0.9, 0.6]), np.array([0.5, 0.0, 0.1]))
"""A camera on a tripod across the table, looking down at the workspace."""


def rotation(deg_xyz) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.from_euler("xyz", deg_xyz, degrees=True).as_matrix()


def T_HAND_BOARD() -> np.ndarray:
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = rotation([0, 0, 90]), [0.02, -0.03, 0.08]
    return T


def render_board(spec: BoardSpec, T_camera_board: np.ndarray, k: Intrinsics = INTRINSICS) -> np.ndarray:
    import cv2

    px_per_m, margin = 3000.0, 60
    img = spec.image(px_per_m, margin)
    to_board = np.array([[1 / px_per_m, 0, -margin / px_per_m], [0, 1 / px_per_m, -margin / px_per_m], [0, 0, 1]])
    T = T_camera_board
    H = camera_matrix(k) @ np.column_stack([T[:3, 0], T[:3, 1], T[:3, 3]]) @ to_board
    out = cv2.warpPerspective(img, H, (k.width, k.height), flags=cv2.INTER_LINEAR, borderValue=160)
    return np.repeat(out[..., None], 3, axis=2)


def hand_poses(n: int, seed: int = 0) -> list[np.ndarray]:
    """Hand poses that show the board to the camera, spread and tilted as a person would move it."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        B = np.eye(4)
        B[:3, :3] = rotation(rng.uniform(-30, 30, 3))
        B[:3, 3] = [rng.uniform(-0.15, 0.05), rng.uniform(-0.15, 0.05), rng.uniform(0.45, 0.8)]
        out.append(T_BASE_CAMERA @ B @ np.linalg.inv(T_HAND_BOARD()))
    return out


class BoardOnHand:
    """The robot and the camera of a calibration session: `move()` goes to the next pose."""

    def __init__(self, spec: BoardSpec, poses: list[np.ndarray], hidden: tuple[int, ...] = ()) -> None:
        self.spec, self.poses, self.hidden = spec, poses, set(hidden)
        self.i = 0
        self.connected = self.opened = False

    # robot side
    def connect(self) -> None:
        self.connected = True

    def hand_pose(self) -> np.ndarray:
        return self.poses[self.i].copy()

    # camera side
    def open(self) -> None:
        self.opened = True

    def read(self, stamp_ns: int | None = None) -> Frame:
        if self.i in self.hidden:  # the person held the board out of view
            rgb = np.full((INTRINSICS.height, INTRINSICS.width, 3), 160, np.uint8)
        else:
            B = np.linalg.inv(T_BASE_CAMERA) @ self.poses[self.i] @ T_HAND_BOARD()
            rgb = render_board(self.spec, B)
        return Frame(rgb, np.zeros(rgb.shape[:2], np.float32), INTRINSICS, stamp_ns or 0)

    def close(self) -> None:
        pass

    def move(self) -> None:
        self.i = min(self.i + 1, len(self.poses) - 1)
