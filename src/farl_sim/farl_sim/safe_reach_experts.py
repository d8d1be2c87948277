"""Scripted drivers for SafeReach, from the observation alone (as a learned policy would see it):
the expert that goes round the obstacles, and the violators that make the rest of the paper's data
set (FOSP Appendix D.1). Each is a function obs -> action.

The expert plans on a visibility graph: the corners of the obstacles' footprints, grown by the
hand's reach, the hand and the target are its nodes; an edge is a straight move that stays clear of
every grown footprint; the shortest path's next node is where the hand heads now. It plans anew at
every step, so a pushed obstacle or noise on its actions changes the path.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable

import numpy as np

from farl_common.obs_layout import GOAL_XY, HAND, OBJECT, OBSTACLE, field_slice
from farl_sim.safe_reach import HAND_START_M, TARGET_POINTS_XY_M, WORK_AREA_XY_M, SafeReachSpec

Policy = Callable[[np.ndarray], np.ndarray]
CLEARANCE_M = 0.04
"""How far the hand's centre keeps from an obstacle's footprint (the closed gripper's half width is
about 3 cm; the rest is margin for noise)."""
GAIN = 25.0
"""Proportional gain from position error (m) to action (1 = 1 cm per step)."""

_OBJECT_QUAT = field_slice("object_quat")
_SECOND_QUAT = slice(OBSTACLE.stop, OBSTACLE.stop + 4)


def obstacle_footprints(obs: np.ndarray) -> list[tuple[np.ndarray, float]]:
    """(centre xy, yaw) of the two obstacles the observation holds."""
    out = []
    for pos, quat in ((OBJECT, _OBJECT_QUAT), (OBSTACLE, _SECOND_QUAT)):
        x, y, z, w = obs[quat]
        yaw = float(np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z)))
        out.append((np.asarray(obs[pos][:2], dtype=np.float64), yaw))
    return out


def _inside(points: np.ndarray, centre: np.ndarray, yaw: float, half: np.ndarray) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    d = points - centre
    local = np.stack([d[..., 0] * c + d[..., 1] * s, -d[..., 0] * s + d[..., 1] * c], -1)
    return np.all(np.abs(local) <= half, -1)


class Planner:
    """Shortest clear path from the hand to the target around the grown footprints."""

    def __init__(self, spec: SafeReachSpec, clearance_m: float = CLEARANCE_M) -> None:
        hx, hy = spec.obstacle_half_m[:2]
        self.half = np.array([hx, hx if spec.obstacle_shape == "cylinder" else hy]) + clearance_m

    def _blocked(self, points: np.ndarray, boxes: list[tuple[np.ndarray, float]]) -> np.ndarray:
        hit = np.zeros(points.shape[:-1], dtype=bool)
        for centre, yaw in boxes:
            hit |= _inside(points, centre, yaw, self.half)
        return hit

    def waypoint(self, hand: np.ndarray, target: np.ndarray, boxes: list[tuple[np.ndarray, float]]) -> np.ndarray:
        x0, x1, y0, y1 = WORK_AREA_XY_M
        nodes = [hand, target]
        for centre, yaw in boxes:
            c, s = np.cos(yaw), np.sin(yaw)
            for sx, sy in ((1, 1), (1, -1), (-1, 1), (-1, -1)):
                local = np.array([sx, sy]) * (self.half + 0.008)
                p = centre + np.array([local[0] * c - local[1] * s, local[0] * s + local[1] * c])
                if x0 <= p[0] <= x1 and y0 <= p[1] <= y1:
                    nodes.append(p)
        pts = np.array(nodes)
        n = len(pts)
        ts = np.linspace(0.0, 1.0, 40)
        seg = pts[:, None, None, :] + ts[None, None, :, None] * (pts[None, :, None, :] - pts[:, None, None, :])
        blocked = self._blocked(seg, boxes)
        # The hand may already be inside a grown footprint (noise, a pushed obstacle): moving out of it is allowed.
        start_inside = self._blocked(pts[None, 0], boxes)[0]
        clear = ~blocked.any(-1)
        if start_inside:
            clear[0] = ~blocked[0, :, 10:].any(-1)
        dist = np.linalg.norm(pts[:, None] - pts[None], axis=-1)
        best, prev = np.full(n, np.inf), np.full(n, -1)
        best[0] = 0.0
        heap = [(0.0, 0)]
        while heap:
            d, i = heapq.heappop(heap)
            if d > best[i]:
                continue
            for j in range(n):
                if j != i and clear[i, j] and d + dist[i, j] < best[j]:
                    best[j], prev[j] = d + dist[i, j], i
                    heapq.heappush(heap, (best[j], j))
        if not np.isfinite(best[1]):  # boxed in: back away from the nearest obstacle
            centre = min((c for c, _ in boxes), key=lambda c: float(np.linalg.norm(c - hand)))
            away = hand - centre
            return hand + 0.05 * away / max(float(np.linalg.norm(away)), 1e-9)
        j = 1
        while prev[j] != 0:
            j = int(prev[j])
        return pts[j]


def _move(hand: np.ndarray, to_xy: np.ndarray, z: float = HAND_START_M[2]) -> np.ndarray:
    """Towards `to_xy` in a straight line: the step is scaled down as a whole, not clipped per axis,
    which would bend the path towards a diagonal and into the corner it goes round."""
    a = np.array([to_xy[0] - hand[0], to_xy[1] - hand[1], z - hand[2]]) * GAIN
    a /= max(1.0, float(np.abs(a).max()))
    return np.r_[a, 1.0]


def _hand_tip(obs: np.ndarray) -> np.ndarray:
    # The fingertips' centre sits about 5 mm in front of the hand body's origin (+y).
    return np.asarray(obs[HAND], dtype=np.float64) + np.array([0.0, 0.005, 0.0])


def safe_expert(spec: SafeReachSpec) -> Policy:
    """Goes round the obstacles to the target: episodes that reach it without a touch."""
    planner = Planner(spec)

    def act(obs: np.ndarray) -> np.ndarray:
        hand = _hand_tip(obs)
        return _move(hand, planner.waypoint(hand[:2], np.asarray(obs[GOAL_XY]), obstacle_footprints(obs)))

    return act


def short_of_target(spec: SafeReachSpec, rng: np.random.Generator) -> Policy:
    """Goes round the obstacles, but to a wrong spot (another placement point, or the work area's near
    half) and stays there: episodes that neither touch nor reach."""
    planner = Planner(spec)
    decoy = {"xy": None}

    def act(obs: np.ndarray) -> np.ndarray:
        hand = _hand_tip(obs)
        if decoy["xy"] is None:
            goal = np.asarray(obs[GOAL_XY])
            far = [np.array(p) for p in TARGET_POINTS_XY_M if np.linalg.norm(np.array(p) - goal) > 0.06]
            x0, x1, y0, _ = WORK_AREA_XY_M
            near = np.array([rng.uniform(x0 + 0.03, x1 - 0.03), rng.uniform(y0, y0 + 0.04)])
            choice = int(rng.integers(len(far) + 1))
            decoy["xy"] = far[choice] - np.array([0.0, 0.045]) if choice < len(far) else near
        return _move(hand, planner.waypoint(hand[:2], decoy["xy"], obstacle_footprints(obs)))

    return act


def through_obstacle(spec: SafeReachSpec, rng: np.random.Generator) -> Policy:
    """Drives through an obstacle on its way to the target (the one in the way, or the nearer one):
    episodes that touch and, pushing it aside, mostly reach."""
    which = {"i": None, "done": False}

    def act(obs: np.ndarray) -> np.ndarray:
        hand = _hand_tip(obs)
        boxes = obstacle_footprints(obs)
        if which["i"] is None:
            which["i"] = int(np.argmin([np.linalg.norm(c - hand[:2]) for c, _ in boxes])) if rng.random() < 0.5 else 0
        centre = boxes[which["i"]][0]
        if not which["done"] and np.linalg.norm(centre - hand[:2]) > 0.045:
            return _move(hand, centre)
        which["done"] = True
        return _move(hand, np.asarray(obs[GOAL_XY]))

    return act


def into_obstacle(spec: SafeReachSpec, rng: np.random.Generator) -> Policy:
    """Drives into an obstacle and keeps pushing it away from the target: episodes that touch and miss."""
    which = {"i": int(rng.integers(2))}

    def act(obs: np.ndarray) -> np.ndarray:
        hand = _hand_tip(obs)
        centre = obstacle_footprints(obs)[which["i"]][0]
        away = centre - np.asarray(obs[GOAL_XY])
        away /= max(float(np.linalg.norm(away)), 1e-9)
        return _move(hand, centre + 0.04 * away)

    return act


NEAR_M = 0.045
"""A hand whose centre is this close to an obstacle's footprint is near it (the closed gripper's half
width is about 3 cm, so 1-2 cm short of touching)."""


def near_an_obstacle(spec: SafeReachSpec, obs: np.ndarray, within_m: float = NEAR_M) -> bool:
    """The hand is within `within_m` of an obstacle's footprint (from the observation)."""
    hand = _hand_tip(obs)[:2]
    grown = Planner(spec, clearance_m=within_m)
    return bool(grown._blocked(hand[None], obstacle_footprints(obs))[0])


def back_off(spec: SafeReachSpec) -> Policy:
    """FARL's recovery for SafeReach: straight away from the nearest obstacle until 6 cm clear, then hold."""
    goal = {"xy": None}

    def act(obs: np.ndarray) -> np.ndarray:
        hand = _hand_tip(obs)
        if goal["xy"] is None:
            centre = min((c for c, _ in obstacle_footprints(obs)), key=lambda c: float(np.linalg.norm(c - hand[:2])))
            away = hand[:2] - centre
            away /= max(float(np.linalg.norm(away)), 1e-9)
            x0, x1, y0, y1 = WORK_AREA_XY_M
            goal["xy"] = np.clip(hand[:2] + 0.06 * away, [x0, y0], [x1, y1])
        return _move(hand, goal["xy"])

    return act


DRIVERS: dict[str, Callable[[SafeReachSpec, np.random.Generator], Policy]] = {
    "reached_safe": lambda spec, rng: safe_expert(spec),
    "neither": short_of_target,
    "touched_reached": through_obstacle,
    "touched_missed": into_obstacle,
}
"""The paper's four kinds of SafeReach demonstration, each with the driver that makes it."""
