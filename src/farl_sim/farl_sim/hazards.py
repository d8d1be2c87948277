"""Where each task's hazard is, from the observation alone: distance to it and the way out.

Shared by the env (which reports `hazard_distance_m`) and the scripted recovery/failure policies,
which see only observations, as a learned policy would.
"""

from __future__ import annotations

import numpy as np

from farl_common.obs_layout import HAND_XY, HAND_Z, OBJECT_XY, OBSTACLE_XY
from farl_sim.tasks import TaskSpec

# push-wall-v3's wall body: fixed centre and half extents (x, y) of its box.
WALL_CENTRE_XY = np.array([0.1, 0.75])
WALL_HALF_XY = np.array([0.12, 0.01])
OBJECT_RADIUS_M = 0.02
HAND_RADIUS_M = 0.03


def _nearest_on_box(p: np.ndarray, centre: np.ndarray, half: np.ndarray) -> np.ndarray:
    return np.clip(p, centre - half, centre + half)


def hazard_distance_m(spec: TaskSpec, obs: np.ndarray) -> float:
    """Clearance in metres between the object (and, for the vase, the low hand) and the hazard.

    Negative means the hazard is already touched or crossed.
    """
    obj = obs[OBJECT_XY]
    if spec.hazard == "boundary":
        x0, x1, y0, y1 = spec.bounds_xy_m  # type: ignore[misc]
        return float(min(obj[0] - x0, x1 - obj[0], obj[1] - y0, y1 - obj[1]))
    if spec.hazard == "wall":
        near = _nearest_on_box(obj, WALL_CENTRE_XY, WALL_HALF_XY)
        return float(np.linalg.norm(obj - near) - OBJECT_RADIUS_M)
    vase = obs[OBSTACLE_XY]
    d = float(np.linalg.norm(obj - vase) - spec.vase_radius_m - OBJECT_RADIUS_M)
    if obs[HAND_Z] < 2 * spec.vase_half_height_m + 0.05:
        d = min(d, float(np.linalg.norm(obs[HAND_XY] - vase) - spec.vase_radius_m - HAND_RADIUS_M))
    return d


def away_direction_xy(spec: TaskSpec, obs: np.ndarray) -> np.ndarray:
    """Unit xy vector pointing from the hazard towards safety, at the object."""
    obj = obs[OBJECT_XY]
    if spec.hazard == "boundary":
        x0, x1, y0, y1 = spec.bounds_xy_m  # type: ignore[misc]
        v = np.array([(x0 + x1) / 2, (y0 + y1) / 2]) - obj
    elif spec.hazard == "wall":
        v = obj - _nearest_on_box(obj, WALL_CENTRE_XY, WALL_HALF_XY)
        if np.linalg.norm(v) < 1e-6:
            v = np.array([0.0, -1.0])
    else:
        v = obj - obs[OBSTACLE_XY]
    n = float(np.linalg.norm(v))
    return v / n if n > 1e-9 else np.array([0.0, -1.0])
