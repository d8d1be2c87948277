"""Scripted policies that see only observations: task experts, failure drivers, recovery movers.

They make the three kinds of demonstrations (paper V.B.1) and stand in for a learned policy in the
mocked sim graph. Each maps one 39-float observation to one 4-float action in [-1, 1].
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
from metaworld.policies import SawyerPushV3Policy, SawyerPushWallV3Policy, SawyerSoccerV3Policy

from farl_common.obs_layout import GOAL_XY, HAND, OBJECT, OBJECT_XY, OBSTACLE_XY, PREVIOUS_OBJECT_XY
from farl_sim.hazards import WALL_CENTRE_XY, away_direction_xy, hazard_distance_m
from farl_sim.tasks import TaskSpec, get_task

# MetaWorld's scripted policies warn on every construction that their gains may be too high (the env
# clips actions to [-1, 1], as farl does): noise on every node's and command's stderr.
warnings.filterwarnings("ignore", message=r"Constant\(s\) may be too high", module="metaworld")

Policy = Callable[[np.ndarray], np.ndarray]

_GAIN = 10.0


def _move(hand: np.ndarray, target: np.ndarray, gain: float = _GAIN) -> np.ndarray:
    return np.clip((target - hand) * gain, -1.0, 1.0)


def caged_push(obs: np.ndarray, target_xy: np.ndarray, carry_speed: float = 0.5) -> np.ndarray:
    """Come down on the puck, close the fingers round it, carry it to `target_xy` on the table."""
    hand, puck = obs[HAND], obs[OBJECT] + np.array([-0.005, 0.0, 0.0])
    xy_err = float(np.linalg.norm(hand[:2] - puck[:2]))
    dz = abs(hand[2] - puck[2])
    if dz <= 0.04 and xy_err <= 0.035:
        # Carrying: slower than the arm can go, or the puck slips out of the fingers on turns.
        step = _move(hand, np.array([target_xy[0], target_xy[1], puck[2]]))
        return np.append(np.clip(step, -carry_speed, carry_speed), 0.6)
    if xy_err > 0.02:
        return np.append(_move(hand, puck + np.array([0.0, 0.0, 0.2])), 0.0)
    # Close only late in the descent, or the fingers shut before they reach the puck and land on it.
    return np.append(_move(hand, puck + np.array([0.0, 0.0, 0.03])), 0.6 if dz <= 0.1 else 0.0)


def kick(obs: np.ndarray, target_xy: np.ndarray, speed: float = 1.0) -> np.ndarray:
    """Get behind the ball as seen from `target_xy` (over it if need be), then drive through it."""
    hand, ball = obs[HAND], obs[OBJECT]
    direction = target_xy - ball[:2]
    direction = direction / max(float(np.linalg.norm(direction)), 1e-9)
    rel = hand[:2] - ball[:2]
    behind = float(np.dot(rel, direction))
    lateral = abs(float(rel[0] * direction[1] - rel[1] * direction[0]))
    if behind < -0.02 and lateral < 0.015 and hand[2] < 0.07:
        goal = np.array([*(ball[:2] + 0.1 * direction), 0.03])
        return np.append(np.clip(_move(hand, goal, 25.0), -speed, speed), 1.0)
    spot = np.array([*(ball[:2] - 0.05 * direction), 0.03])
    if behind > -0.03 and np.linalg.norm(rel) < 0.08:
        # On the wrong side: straight up first, then over the ball, never through it.
        spot = np.array([hand[0], hand[1], 0.13]) if hand[2] < 0.1 else np.array([spot[0], spot[1], 0.13])
    elif np.linalg.norm(hand[:2] - spot[:2]) > 0.02:
        spot[2] = max(0.03, min(hand[2], 0.13))
    return np.append(_move(hand, spot, 25.0), 1.0)


class ObstructedPushExpert:
    """Carries the puck round the vase by two way-points on the roomier side, then to the goal."""

    clearance_m = 0.11

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        puck, vase, goal = obs[OBJECT_XY], obs[OBSTACLE_XY], obs[GOAL_XY]
        axis = goal - vase
        axis = axis / max(float(np.linalg.norm(axis)), 1e-9)
        side = np.array([-axis[1], axis[0]])
        if side[0] * vase[0] > 0:  # keep to the side nearer the table's centre line
            side = -side
        along = float(np.dot(puck - vase, axis))
        lateral = float(np.dot(puck - vase, side))
        if along < 0.07:
            if lateral < self.clearance_m - 0.02 and along > -0.08:
                # Still behind the vase and not yet clear of it: move sideways first, a little back.
                target = vase + side * self.clearance_m + axis * min(along, -0.05)
            else:
                target = vase + side * self.clearance_m + axis * 0.08
        else:
            target = goal
        return caged_push(obs, target)


class MetaWorldExpert:
    """MetaWorld's own scripted policy, returned as float64 in [-1, 1]."""

    def __init__(self, policy) -> None:
        self._policy = policy

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        return np.clip(np.asarray(self._policy.get_action(obs), dtype=np.float64), -1.0, 1.0)


def task_expert(task: str | TaskSpec) -> Policy:
    """The scripted expert that solves `task` without failing most of the time (SafeReach's too)."""
    from farl_sim.safe_reach_tasks import SAFE_REACH

    if isinstance(task, str) and task in SAFE_REACH:
        from farl_sim.safe_reach_experts import safe_expert

        return safe_expert(SAFE_REACH[task])
    spec = task if isinstance(task, TaskSpec) else get_task(task)
    if spec.name == "fragile_push_wall":
        return MetaWorldExpert(SawyerPushWallV3Policy())
    if spec.name == "bounded_push":
        return MetaWorldExpert(SawyerPushV3Policy())
    if spec.name == "bounded_soccer":
        return MetaWorldExpert(SawyerSoccerV3Policy())
    return ObstructedPushExpert()


def failure_driver(task: str | TaskSpec, speed: float = 1.0) -> Policy:
    """A policy that heads straight for the hazard: into the wall, the vase, over the boundary.

    `speed` (0..1] scales how hard it shoves; a gentle driver reaches near-failure states from
    which a rolling ball can still be saved.
    """
    spec = task if isinstance(task, TaskSpec) else get_task(task)

    def drive(obs: np.ndarray) -> np.ndarray:
        goal = obs[GOAL_XY]
        if spec.hazard == "boundary":
            x0, x1, _, _ = spec.bounds_xy_m  # type: ignore[misc]
            obj_x, obj_y = obs[OBJECT_XY]
            side = x1 + 0.15 if obj_x >= (x0 + x1) / 2 else x0 - 0.15
            target = np.array([side, obj_y])
            return kick(obs, target, speed) if spec.name == "bounded_soccer" else caged_push(obs, target, 0.5 * speed)
        if spec.hazard == "wall":
            # Shove the puck ahead of the hand: carried in the fingers, the hand meets the wall first.
            return kick(obs, np.array([WALL_CENTRE_XY[0], goal[1]]), speed=0.6 * speed)
        if spec.moving_obstacle:  # wherever the person has put it now
            return caged_push(obs, obs[OBSTACLE_XY], 0.5 * speed)
        return caged_push(obs, goal, 0.5 * speed)  # the vase stands on the straight line to the goal

    return drive


def hold_still(obs: np.ndarray) -> np.ndarray:
    """Bounded Soccer's recovery (`TaskSpec.recovery_demo == "stop"`): the hand stays where it is.

    A struck ball rolls on without slowing and the hand (at most 1 cm a step) cannot overtake it, so
    kicking it back after the fact mostly fails (README, Bounded Soccer); not striking it does not.
    """
    return np.zeros(4)


def recovery_mover(task: str | TaskSpec, safe_distance_m: float = 0.06) -> Policy:
    """From a near-failure state, move away from the hazard.

    A puck held in the fingers is carried away from the hazard; a puck the hand is only shoving
    is left where it is (pucks do not slide on) while the hand backs off, up and away. The ball,
    which rolls on by itself, is kicked back towards the middle of the bounded region.
    """
    spec = task if isinstance(task, TaskSpec) else get_task(task)
    soccer = spec.name == "bounded_soccer"

    def recover(obs: np.ndarray) -> np.ndarray:
        hand, obj = obs[HAND], obs[OBJECT]
        away = away_direction_xy(spec, obs)
        if soccer:
            settled = np.linalg.norm(obs[OBJECT_XY] - obs[PREVIOUS_OBJECT_XY]) < 2e-3
            if hazard_distance_m(spec, obs) >= safe_distance_m and settled:
                return np.array([0.0, 0.0, 0.5 if hand[2] < 0.15 else 0.0, 1.0])
            return kick(obs, obj[:2] + 0.2 * away, 0.6)
        caged = np.linalg.norm(hand[:2] - obj[:2]) <= 0.035 and abs(hand[2] - obj[2]) <= 0.04
        if caged and hazard_distance_m(spec, obs) < safe_distance_m:
            return caged_push(obs, obj[:2] + 0.1 * away)
        clear = np.array([*(obj[:2] + 0.05 * away), obj[2] + 0.15])
        return np.append(_move(hand, clear), -1.0)  # open: let go of the puck before lifting

    return recover
