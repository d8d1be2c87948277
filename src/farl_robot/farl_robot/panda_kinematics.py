"""Forward kinematics of the Franka Panda / FR3 arm (the two share their kinematic parameters).

Used to check a configured home joint pose against the workspace box before anything moves: the
config loader refuses a box that does not contain the home hand position. Parameters are Franka's
published modified Denavit-Hartenberg table, with the Franka Hand's TCP 0.1034 m past the flange.
"""

from __future__ import annotations

import numpy as np

# (a_{i-1}, d_i, alpha_{i-1}) per joint, then the flange.
_DH = (
    (0.0, 0.333, 0.0),
    (0.0, 0.0, -np.pi / 2),
    (0.0, 0.316, np.pi / 2),
    (0.0825, 0.0, np.pi / 2),
    (-0.0825, 0.384, -np.pi / 2),
    (0.0, 0.0, np.pi / 2),
    (0.088, 0.0, np.pi / 2),
)
FLANGE_D_M = 0.107
HAND_TCP_M = 0.1034
JOINT_LIMITS_RAD = (
    (-2.8973, 2.8973),
    (-1.7628, 1.7628),
    (-2.8973, 2.8973),
    (-3.0718, -0.0698),
    (-2.8973, 2.8973),
    (-0.0175, 3.7525),
    (-2.8973, 2.8973),
)


def _mdh(a: float, d: float, alpha: float, theta: float) -> np.ndarray:
    ca, sa, ct, st = np.cos(alpha), np.sin(alpha), np.cos(theta), np.sin(theta)
    return np.array(
        [
            [ct, -st, 0.0, a],
            [st * ca, ct * ca, -sa, -d * sa],
            [st * sa, ct * sa, ca, d * ca],
            [0.0, 0.0, 0.0, 1.0],
        ]
    )


def hand_pose(q_rad: np.ndarray, tcp_m: float = HAND_TCP_M) -> np.ndarray:
    """4x4 pose of the hand's TCP in the base frame for joint angles `q_rad` (7)."""
    q = np.asarray(q_rad, dtype=np.float64).reshape(-1)
    if q.shape != (7,):
        raise ValueError(f"expected 7 joint angles, got {q.shape[0]}")
    t = np.eye(4)
    for (a, d, alpha), theta in zip(_DH, q, strict=True):
        t = t @ _mdh(a, d, alpha, theta)
    t = t @ _mdh(0.0, FLANGE_D_M + tcp_m, 0.0, -np.pi / 4)
    return t


def joint_limit_violations(q_rad: np.ndarray) -> list[str]:
    """Joints outside Franka's limits, as readable strings (empty when all are inside)."""
    return [
        f"joint {i + 1} = {v:.3f} rad outside [{lo}, {hi}]"
        for i, (v, (lo, hi)) in enumerate(zip(q_rad, JOINT_LIMITS_RAD, strict=True))
        if not lo <= v <= hi
    ]
