"""FailureBench environments: MetaWorld v3 scenes with irreversible (IR) failures (paper V.A).

Each step's `info` carries `cost` (0/1), `failure` and `success` (bools), plus
`hazard_distance_m` (how far the object is from what would break it) for recovery scripts.
A failure ends the episode (`terminated=True`): in the real world a human must reset it.

Observation (39 floats, MetaWorld's layout, goal made visible)::

  [0:3] hand xyz, [3] gripper opening (0..1), [4:7] object xyz, [7:11] object quat (xyzw),
  [11:18] second object slot (the vase's xyz + quat in Obstructed Push, zeros elsewhere),
  [18:36] the same 18 values one step earlier, [36:39] goal xyz.

Action (4 floats in [-1, 1]): hand dx, dy, dz (times 1 cm per step), gripper effort.
"""

from __future__ import annotations

from typing import Any

import mujoco
import numpy as np
from metaworld.envs.sawyer_push_v3 import SawyerPushEnvV3
from metaworld.envs.sawyer_push_wall_v3 import SawyerPushWallEnvV3
from metaworld.envs.sawyer_soccer_v3 import SawyerSoccerEnvV3

from farl_common.obs_layout import OBJECT_XY
from farl_sim.hazards import hazard_distance_m
from farl_sim.metaworld_task import MetaWorldTask
from farl_sim.scene_assets import VASE_BODY, obstructed_push_xml
from farl_sim.tasks import TaskSpec, get_task

# Vase placement: on the start-goal segment, this far along it, so a straight push meets it.
_VASE_ALONG = 0.5


class _ObstructedPushEnv(SawyerPushEnvV3):
    """push-v3 with a static vase between the puck and the goal; the vase fills the second object slot."""

    vase_radius_m = TaskSpec.vase_radius_m
    vase_half_height_m = TaskSpec.vase_half_height_m

    @property
    def model_name(self) -> str:
        return obstructed_push_xml(self.vase_radius_m, self.vase_half_height_m)

    def _get_pos_objects(self) -> np.ndarray:
        return np.hstack((super()._get_pos_objects(), self.data.body(VASE_BODY).xpos))

    def _get_quat_objects(self) -> np.ndarray:
        return np.hstack((super()._get_quat_objects(), np.array([0.0, 0.0, 0.0, 1.0])))

    def reset_model(self) -> np.ndarray:
        super().reset_model()
        start, goal = self.obj_init_pos[:2], self._target_pos[:2]
        xy = start + _VASE_ALONG * (goal - start)
        self.model.body(VASE_BODY).pos = np.array([xy[0], xy[1], self.vase_half_height_m])
        mujoco.mj_forward(self.model, self.data)
        return self._get_obs()


class _DisturbedPushEnv(_ObstructedPushEnv):
    """Obstructed Push whose vase is moved about during the episode, as a person moves the flower in the
    paper's Franka Disturbed Push: at random steps (`move_prob` each) it glides to a new spot near the
    puck's way to the goal, at `speed_m` per step, and stops short of the puck and the hand (the person
    does not knock things over; the policy has to keep clear of where the obstacle is now)."""

    move_prob = 0.02
    speed_m = 0.005
    keep_clear_m = 0.05
    region_xy_m = ((-0.25, 0.25), (0.5, 0.9))

    def reset_model(self) -> np.ndarray:
        obs = super().reset_model()
        self._rng = np.random.default_rng(int(self.np_random.integers(2**32)))
        self._target: np.ndarray | None = None
        return obs

    def _new_target(self) -> np.ndarray:
        start, goal = self.obj_init_pos[:2], self._target_pos[:2]
        along = start + self._rng.uniform(0.3, 0.8) * (goal - start)
        d = (goal - start) / max(float(np.linalg.norm(goal - start)), 1e-9)
        xy = along + np.array([-d[1], d[0]]) * self._rng.uniform(-0.08, 0.08)
        (x0, x1), (y0, y1) = self.region_xy_m
        return np.array([np.clip(xy[0], x0, x1), np.clip(xy[1], y0, y1)])

    def _move_obstacle(self) -> None:
        if self._target is None and self._rng.random() < self.move_prob:
            self._target = self._new_target()
        if self._target is None:
            return
        body = self.model.body(VASE_BODY)
        here = body.pos[:2].copy()
        gap = self._target - here
        dist = float(np.linalg.norm(gap))
        nxt = self._target if dist <= self.speed_m else here + gap / dist * self.speed_m
        clear = self.vase_radius_m + self.keep_clear_m
        puck, hand = self._get_pos_objects()[:2], self.tcp_center[:2]
        if min(np.linalg.norm(nxt - puck), np.linalg.norm(nxt - hand)) < clear:
            self._target = None  # the person stops short rather than push into the puck or the arm
            return
        body.pos = np.array([nxt[0], nxt[1], self.vase_half_height_m])
        if dist <= self.speed_m:
            self._target = None

    def step(self, action):
        self._move_obstacle()
        return super().step(action)


_BASES = {
    "bounded_push": SawyerPushEnvV3,
    "bounded_soccer": SawyerSoccerEnvV3,
    "fragile_push_wall": SawyerPushWallEnvV3,
    "obstructed_push": _ObstructedPushEnv,
    "disturbed_push": _DisturbedPushEnv,
}


def _body_geoms(model: mujoco.MjModel, body_name: str, with_children: bool = True) -> set[int]:
    root = model.body(body_name).id
    ids: set[int] = set()
    for g in range(model.ngeom):
        b = int(model.geom_bodyid[g])
        while True:
            if b == root:
                ids.add(g)
                break
            if b == 0 or not with_children:
                break
            b = int(model.body_parentid[b])
    return ids


class FailureBenchEnv(MetaWorldTask):
    """A FailureBench task as a gymnasium environment."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 80}

    def __init__(
        self,
        task: str | TaskSpec,
        render_mode: str | None = None,
        camera_name: str = "corner",
        horizon_steps: int | None = None,
        image_width: int = 320,
        image_height: int = 240,
    ) -> None:
        self.spec_task = task if isinstance(task, TaskSpec) else get_task(task)
        base = _BASES[self.spec_task.name]
        self.render_mode = render_mode
        mw = base(render_mode=render_mode, camera_name=camera_name, width=image_width, height=image_height)
        self._wrap(mw, horizon_steps or self.spec_task.horizon_steps)
        self._mw._freeze_rand_vec = False
        self._mw.seeded_rand_vec = True
        self._mw.seed(0)
        model = self._mw.model
        self._object_geoms = _body_geoms(model, "soccer_ball" if self.spec_task.name == "bounded_soccer" else "obj")
        self._hazard_geoms: set[int] = set()
        self._vase_allowed: set[int] = set()
        if self.spec_task.hazard == "wall":
            self._hazard_geoms = _body_geoms(model, "wall")
        elif self.spec_task.hazard == "vase":
            self._hazard_geoms = _body_geoms(model, VASE_BODY)
            # The vase stands on the table: that contact is not a failure; the arm and the puck are.
            self._vase_allowed = {g for g in range(model.ngeom) if int(model.geom_bodyid[g]) == 0}
            self._vase_allowed |= _body_geoms(model, "tablelink") if _has_body(model, "tablelink") else set()
        self._steps = 0
        self._last_obs: np.ndarray | None = None

    # gymnasium API -----------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self._mw.seed(int(seed))
        obs, _ = self._mw.reset()
        self._steps = 0
        self._last_obs = obs
        return obs.copy(), {"hazard_distance_m": self.hazard_distance_m(obs)}

    def step(self, action: np.ndarray):
        if self._last_obs is None:
            raise RuntimeError("call reset() before step()")
        obs, reward, _, truncated, mw_info = self._mw.step(self._checked(action))
        self._steps += 1
        failure = self.in_failure(obs)
        success = bool(mw_info["success"]) and not failure
        info = {
            "cost": float(failure),
            "failure": failure,
            "success": success,
            "hazard_distance_m": self.hazard_distance_m(obs),
            "obj_to_target_m": float(mw_info["obj_to_target"]),
        }
        self._last_obs = obs
        truncated = bool(truncated or self._steps >= self.horizon_steps) and not failure
        return obs.copy(), float(reward), failure, truncated, info

    # failure detection -------------------------------------------------------------------------
    def in_failure(self, obs: np.ndarray) -> bool:
        """True when the current MuJoCo state is an IR failure of this task."""
        hazard = self.spec_task.hazard
        if hazard == "boundary":
            return not self._inside_bounds(obs[OBJECT_XY])
        data = self._mw.data
        for i in range(data.ncon):
            c = data.contact[i]
            g1, g2 = int(c.geom1), int(c.geom2)
            if hazard == "wall":
                if (g1 in self._hazard_geoms and g2 in self._object_geoms) or (
                    g2 in self._hazard_geoms and g1 in self._object_geoms
                ):
                    return True
            else:
                if g1 in self._hazard_geoms and g2 not in self._vase_allowed | self._hazard_geoms:
                    return True
                if g2 in self._hazard_geoms and g1 not in self._vase_allowed | self._hazard_geoms:
                    return True
        return False

    def _inside_bounds(self, xy: np.ndarray) -> bool:
        x0, x1, y0, y1 = self.spec_task.bounds_xy_m  # type: ignore[misc]
        return bool(x0 <= xy[0] <= x1 and y0 <= xy[1] <= y1)

    def hazard_distance_m(self, obs: np.ndarray) -> float:
        """Clearance between the object and its hazard (see `farl_sim.hazards`)."""
        return hazard_distance_m(self.spec_task, obs)

    @property
    def mujoco_model(self) -> mujoco.MjModel:
        return self._mw.model

    @property
    def mujoco_data(self) -> mujoco.MjData:
        return self._mw.data


def _has_body(model: mujoco.MjModel, name: str) -> bool:
    return mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, name) >= 0
