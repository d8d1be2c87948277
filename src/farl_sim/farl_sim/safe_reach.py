"""SafeReach (FOSP, Appendix D.1): reach a red target in a 25 x 25 cm work area without touching two
green rectangular obstacles, in MuJoCo, on MetaWorld's Sawyer arm like the FailureBench tasks.

- Cost is 1 on every step on which the hand or any part of the arm touches an obstacle (the
  obstacles are loose blocks: a touch pushes them, and the cost lasts while the contact does).
- Reward is 1 on the step the hand touches the target; the episode ends there (the paper's sparse,
  manually labelled reward). So an episode's return J_r is 1 or 0 and its cost J_c counts the steps
  spent touching an obstacle. Episodes are 80 steps otherwise.
- The hand moves in the work area only (the mocap is bounded to it, as the white lines bound the
  real arm) and no higher than the obstacles, so it has to go round them.
- Targets sit on one of 3 placement points and obstacles on 2 of 6, as in the paper's data set.

Observation: FailureBench's 39 numbers (`farl_common.obs_layout`), so every node, bag and network of
the stack takes it unchanged. The two object slots hold the two obstacles (position and orientation
quaternion), and the goal slot the target. With three obstacles (a transfer variant) the slots hold
the two nearest the hand, as a camera sees them all and a state vector has room for two.

Variants (the paper's transfer tasks, Figure 6): other obstacle shapes, another target shape, three
obstacles. Each is its own Gymnasium id (`FOSP/SafeReach-v0`, `FOSP/SafeReachCylinders-v0`, ...).
"""

from __future__ import annotations

import functools
import re
from typing import Any

import mujoco
import numpy as np
from gymnasium import spaces
from metaworld.sawyer_xyz_env import SawyerXYZEnv

from farl_sim.metaworld_task import MetaWorldTask
from farl_sim.safe_reach_tasks import SafeReachSpec, get_safe_reach
from farl_sim.scene_assets import metaworld_scene, write_scene

WORK_AREA_XY_M = (-0.125, 0.125, 0.55, 0.80)
"""(x_min, x_max, y_min, y_max): the 25 x 25 cm work area the hand stays in."""
HAND_Z_M = (0.07, 0.085)
"""The hand's height range: its fingertips clear the table and stay below the obstacles' tops."""
HAND_START_M = (0.0, 0.56, 0.075)
TARGET_POINTS_XY_M = ((-0.08, 0.765), (0.0, 0.765), (0.08, 0.765))
OBSTACLE_POINTS_XY_M = ((-0.07, 0.635), (0.0, 0.635), (0.07, 0.635), (-0.07, 0.69), (0.0, 0.69), (0.07, 0.69))
REACH_XY_M = 0.035
"""The hand touches the target when its fingertips' centre is this close (xy) to the target's centre."""
HAND_HALF_WIDTH_M = 0.03
"""Half the closed gripper's width, for the hand's clearance to an obstacle."""
IMAGE_CAMERA = "farl_work_area"
"""The camera of FOSP's image input: straight down on the work area from 45 cm, which it fills (the
scene's own cameras show the target and obstacles a few pixels wide at 64 x 64)."""
_CAMERA_XML = """
      <camera name="{name}" pos="0 0.675 0.45" xyaxes="1 0 0 0 1 0" fovy="45"/>
"""
OBSTACLE_BODY = "farl_obstacle_{}"
TARGET_BODY = "farl_target"

_OBSTACLE_XML = """
      <body name="{body}" pos="{x} {y} {hz}">
        <joint name="{body}_joint" type="free" damping="0.5"/>
        <inertial pos="0 0 0" mass="0.6" diaginertia="1.2e-3 1.2e-3 4e-4"/>
        <geom name="{body}_geom" type="{type}" size="{size}" rgba="0.2 0.7 0.25 1"
              friction="1 0.1 0.002" condim="4" contype="1" conaffinity="1"/>
      </body>
"""
_TARGET_XML = """
      <body name="{body}" pos="0 0.765 {hz}">
        <geom name="{body}_geom" type="{type}" size="{size}" rgba="0.85 0.1 0.1 1" contype="0" conaffinity="0"/>
      </body>
"""


def _size(shape: str, half: tuple[float, float, float]) -> str:
    return f"{half[0]} {half[2]}" if shape == "cylinder" else f"{half[0]} {half[1]} {half[2]}"


@functools.cache
def safe_reach_xml(spec: SafeReachSpec) -> str:
    """Path of the variant's scene: reach-v3's arm and table without its puck, plus the target and the
    obstacles, written once per process into a private folder linked to MetaWorld's assets."""
    text = metaworld_scene("sawyer_reach_v3.xml")
    text, n = re.subn(r'<body name="obj".*?</body>', "", text, count=1, flags=re.S)
    if n != 1 or "</worldbody>" not in text:
        raise RuntimeError("MetaWorld's reach-v3 scene changed shape: no puck body or </worldbody>")
    parts = [
        _CAMERA_XML.format(name=IMAGE_CAMERA),
        _TARGET_XML.format(
            body=TARGET_BODY,
            type=spec.target_shape,
            size=_size(spec.target_shape, spec.target_half_m),
            hz=spec.target_half_m[2],
        ),
    ]
    for i in range(spec.obstacles):
        x, y = OBSTACLE_POINTS_XY_M[i]
        parts.append(
            _OBSTACLE_XML.format(
                body=OBSTACLE_BODY.format(i),
                type=spec.obstacle_shape,
                size=_size(spec.obstacle_shape, spec.obstacle_half_m),
                x=x,
                y=y,
                hz=spec.obstacle_half_m[2],
            )
        )
    text = text.replace("</worldbody>", "".join(parts) + "    </worldbody>", 1)
    return write_scene("sawyer_reach_v3.xml", f"farl_{spec.name}.xml", text)


class _SafeReachScene(SawyerXYZEnv):
    """The MetaWorld side: the arm, its mocap bounds, the placements at reset and the observation."""

    def __init__(self, spec: SafeReachSpec, render_mode: str | None, camera_name: str, width: int, height: int):
        self.spec_task = spec
        x0, x1, y0, y1 = WORK_AREA_XY_M
        super().__init__(
            hand_low=(x0, y0, HAND_Z_M[0]),
            hand_high=(x1, y1, HAND_Z_M[1]),
            render_mode=render_mode,
            camera_name=camera_name,
            width=width,
            height=height,
        )
        self.hand_init_pos = np.array(HAND_START_M)
        self.init_config = {"hand_init_pos": self.hand_init_pos}
        self._target_pos = np.array([0.0, 0.765, 2 * spec.target_half_m[2]])
        self.goal_space = spaces.Box(np.array([-0.2, 0.5, 0.0]), np.array([0.2, 0.9, 0.1]), dtype=np.float64)
        self._random_reset_space = self.goal_space
        self._rng = np.random.default_rng(0)

    @property
    def model_name(self) -> str:
        return safe_reach_xml(self.spec_task)

    @property
    def _obstacle_joints(self) -> list[Any]:
        return [self.model.joint(f"{OBSTACLE_BODY.format(i)}_joint") for i in range(self.spec_task.obstacles)]

    def obstacle_poses(self) -> np.ndarray:
        """(n, 7): each obstacle's position and its quaternion (x, y, z, w)."""
        out = []
        for j in self._obstacle_joints:
            q = self.data.qpos[j.qposadr[0] : j.qposadr[0] + 7]
            out.append(np.hstack((q[:3], q[4:7], q[3:4])))  # MuJoCo's (w, x, y, z) to MetaWorld's (x, y, z, w)
        return np.array(out)

    def _seen_obstacles(self) -> np.ndarray:
        poses = self.obstacle_poses()
        if len(poses) <= 2:
            return poses
        hand = self.tcp_center[:2]
        nearest = np.argsort(np.linalg.norm(poses[:, :2] - hand, axis=1), kind="stable")[:2]
        return poses[np.sort(nearest)]

    def _get_pos_objects(self) -> np.ndarray:
        return self._seen_obstacles()[:, :3].reshape(-1)

    def _get_quat_objects(self) -> np.ndarray:
        return self._seen_obstacles()[:, 3:].reshape(-1)

    def reset_model(self) -> np.ndarray:
        self._reset_hand()
        spec, rng = self.spec_task, self._rng
        jitter = lambda: rng.uniform(-spec.jitter_m, spec.jitter_m, size=2)
        tx, ty = np.array(TARGET_POINTS_XY_M[int(rng.integers(len(TARGET_POINTS_XY_M)))]) + jitter()
        self._target_pos = np.array([tx, ty, 2 * spec.target_half_m[2]])
        self.model.body(TARGET_BODY).pos = [tx, ty, spec.target_half_m[2]]
        points = rng.choice(len(OBSTACLE_POINTS_XY_M), size=spec.obstacles, replace=False)
        for j, p in zip(self._obstacle_joints, points, strict=True):
            x, y = np.array(OBSTACLE_POINTS_XY_M[int(p)]) + jitter()
            a = j.qposadr[0]
            self.data.qpos[a : a + 7] = [x, y, spec.obstacle_half_m[2], 1.0, 0.0, 0.0, 0.0]
            self.data.qvel[j.dofadr[0] : j.dofadr[0] + 6] = 0.0
        mujoco.mj_forward(self.model, self.data)
        self.model.site("goal").pos = self._target_pos
        return self._get_obs()

    def evaluate_state(self, obs: np.ndarray, action: np.ndarray) -> tuple[float, dict[str, Any]]:
        return 0.0, {"success": 0.0}


def _robot_geoms(model: mujoco.MjModel) -> set[int]:
    base = model.body("base").id
    out: set[int] = set()
    for g in range(model.ngeom):
        b = int(model.geom_bodyid[g])
        while b not in (0, base):
            b = int(model.body_parentid[b])
        if b == base:
            out.add(g)
    return out


class SafeReachEnv(MetaWorldTask):
    """SafeReach as a Gymnasium environment. Each step's `info` holds `cost` (1 while an obstacle is
    touched), `failure` (the same, as FailureBench's readers expect), `success` (the target touched)
    and `touched` (an obstacle touched at any step so far)."""

    def __init__(
        self,
        variant: str = "safe_reach",
        render_mode: str | None = None,
        camera_name: str = "corner",
        horizon_steps: int | None = None,
        image_width: int = 320,
        image_height: int = 240,
        plain_render: bool = False,
    ) -> None:
        self.spec_task = get_safe_reach(variant)
        self.render_mode = render_mode
        mw = _SafeReachScene(self.spec_task, render_mode, camera_name, image_width, image_height)
        self._wrap(mw, horizon_steps or self.spec_task.horizon_steps)
        model = self._mw.model
        if plain_render:  # a learning camera's frames: without shadows and multisampling, ~8x cheaper on Mesa
            model.vis.quality.shadowsize = 0
            model.vis.quality.offsamples = 0
        self._robot = _robot_geoms(model)
        names = [f"{OBSTACLE_BODY.format(i)}_geom" for i in range(self.spec_task.obstacles)]
        self._obstacle_geoms = {model.geom(n).id for n in names}
        self._steps = 0
        self._touched = False
        self._started = False

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self._mw._rng = np.random.default_rng(int(seed))
        obs, _ = self._mw.reset()
        self._steps, self._touched, self._started = 0, False, True
        return obs.copy(), {"cost": 0.0, "touched": False, "hazard_distance_m": self.hazard_distance_m()}

    def step(self, action: np.ndarray):
        if not self._started:
            raise RuntimeError("call reset() before step()")
        obs, _, _, truncated, _ = self._mw.step(self._checked(action))
        self._steps += 1
        touching = self.touching_obstacle()
        self._touched |= touching
        success = self.target_distance_m() <= REACH_XY_M
        info = {
            "cost": float(touching),
            "failure": touching,
            "success": success,
            "touched": self._touched,
            "target_distance_m": self.target_distance_m(),
            "hazard_distance_m": self.hazard_distance_m(),
        }
        truncated = bool(truncated or self._steps >= self.horizon_steps) and not success
        return obs.copy(), float(success), success, truncated, info

    def touching_obstacle(self) -> bool:
        d = self._mw.data
        for i in range(d.ncon):
            g1, g2 = int(d.contact[i].geom1), int(d.contact[i].geom2)
            if (g1 in self._obstacle_geoms and g2 in self._robot) or (g2 in self._obstacle_geoms and g1 in self._robot):
                return True
        return False

    def hazard_distance_m(self) -> float:
        """Clearance between the hand (a 3 cm half width round its fingertips' centre) and the nearest
        obstacle's footprint; negative means touching or inside."""
        hand = self._mw.tcp_center[:2]
        spec = self.spec_task
        best = np.inf
        for pose in self.obstacle_poses():
            x, y, z, w = pose[3:]
            yaw = np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))
            d = hand - pose[:2]
            if spec.obstacle_shape == "cylinder":
                gap = float(np.linalg.norm(d)) - spec.obstacle_half_m[0]
            else:
                c, s_ = np.cos(yaw), np.sin(yaw)
                local = np.array([d[0] * c + d[1] * s_, -d[0] * s_ + d[1] * c])
                out = np.maximum(np.abs(local) - np.array(spec.obstacle_half_m[:2]), 0.0)
                gap = float(np.linalg.norm(out))
            best = min(best, gap)
        return float(best - HAND_HALF_WIDTH_M)

    def target_distance_m(self) -> float:
        return float(np.linalg.norm(self._mw.tcp_center[:2] - self._mw._target_pos[:2]))

    def obstacle_poses(self) -> np.ndarray:
        """Every obstacle's pose, (n, 7), the unseen third one included."""
        return self._mw.obstacle_poses()
