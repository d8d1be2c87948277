"""Camera-to-base extrinsics: the file `farl perception calibrate` writes and perception reads.

YAML with `T_base_camera` (4 x 4, metres; maps camera-frame points, OpenCV axes, into the robot
base frame), plus where it came from and its residual. A file that does not parse or does not hold
a rigid transform is refused with one line naming the file.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import yaml

from farl_common.config import read_yaml_mapping


class CalibrationError(ValueError):
    """A calibration file that cannot be used; the message starts with its path."""


def check_rigid(T: np.ndarray, where: str) -> np.ndarray:
    T = np.asarray(T, dtype=np.float64)
    if T.shape != (4, 4) or not np.all(np.isfinite(T)):
        raise CalibrationError(f"{where}: T_base_camera must be 4 x 4 finite numbers, got shape {T.shape}")
    R = T[:3, :3]
    if np.abs(R @ R.T - np.eye(3)).max() > 1e-3 or abs(np.linalg.det(R) - 1.0) > 1e-3:
        raise CalibrationError(f"{where}: T_base_camera's rotation is not a rotation (R R^T != I or det != 1)")
    if np.abs(T[3] - [0, 0, 0, 1]).max() > 1e-9:
        raise CalibrationError(f"{where}: T_base_camera's last row must be 0 0 0 1")
    return T


def load_calibration(path: str | Path) -> np.ndarray:
    path = Path(path)
    data = read_yaml_mapping(path, CalibrationError, "calibration file not found (farl perception calibrate writes it)")
    if "T_base_camera" not in data:
        raise CalibrationError(f"{path}: no T_base_camera key")
    try:
        T = np.array(data["T_base_camera"], dtype=np.float64)
    except (TypeError, ValueError):
        raise CalibrationError(f"{path}: T_base_camera must be 4 rows of 4 numbers") from None
    return check_rigid(T, str(path))


def save_calibration(path: str | Path, T: np.ndarray, residual_m: float, method: str) -> Path:
    path = Path(path)
    T = check_rigid(T, str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(
        yaml.safe_dump(
            {
                "T_base_camera": [[float(x) for x in row] for row in T],
                "residual_m": float(residual_m),
                "method": method,
                "written": time.strftime("%Y-%m-%d %H:%M:%S"),
            },
            sort_keys=False,
        )
    )
    tmp.replace(path)
    return path


def fit_rigid(points_cam: np.ndarray, points_base: np.ndarray) -> tuple[np.ndarray, float]:
    """T_base_camera from matched points (Kabsch); returns it and the RMS residual in metres.

    Points touched with the hand (base frame, from the robot) and the same points seen by the camera."""
    a, b = np.asarray(points_cam, dtype=np.float64), np.asarray(points_base, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2 or a.shape[1] != 3 or len(a) < 3:
        raise CalibrationError(f"need at least 3 matched 3-D points, got {a.shape} and {b.shape}")
    ca, cb = a.mean(0), b.mean(0)
    U, _, Vt = np.linalg.svd((a - ca).T @ (b - cb))
    d = np.sign(np.linalg.det(Vt.T @ U.T))
    R = Vt.T @ np.diag([1.0, 1.0, d]) @ U.T
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R, cb - R @ ca
    residual = float(np.sqrt(np.mean(np.sum((a @ R.T + T[:3, 3] - b) ** 2, axis=1))))
    return T, residual
