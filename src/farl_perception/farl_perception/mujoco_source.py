"""A camera in the FailureBench scene: MuJoCo renders colour and depth, with the true object positions.

The camera looks at the table from its far corner, opposite the arm, so neither the arm nor the wall
hides the objects.
Objects are painted in colours the Sawyer arm (red) and the table (brown) do not have: the puck or
ball yellow, the vase or obstacle blue. Rendering needs OpenGL: EGL on a GPU machine, OSMesa
(`MUJOCO_GL=osmesa`, apt libosmesa6) without one.
"""

from __future__ import annotations

import numpy as np

from farl_common.obs_layout import OBJECT, OBSTACLE
from farl_perception.frames import CameraUnavailable, Frame, Intrinsics

OBJECT_RGBA = (np.array([0.95, 0.85, 0.1, 1.0]), np.array([0.1, 0.35, 0.95, 1.0]))
"""First object (pushed / kicked), second object (vase / obstacle)."""
CAMERA_POS = np.array([0.45, 1.2, 0.9])
"""The far corner of the table, to the side: it sees over the wall and past the gripper. Measured over
the scripted expert's episodes: the object was in view in 140 of 140 frames on Fragile Push Wall and
Obstructed Push, 110 of 110 on Bounded Soccer (frontal views lost it behind the wall half the time)."""
CAMERA_TARGET = np.array([0.0, 0.7, 0.0])


def look_at(pos: np.ndarray, target: np.ndarray) -> np.ndarray:
    """T_world_camera in OpenCV axes (z forward, y down) for a camera at `pos` looking at `target`."""
    z = target - pos
    z = z / np.linalg.norm(z)
    x = np.cross(z, [0.0, 0.0, 1.0])
    x = x / np.linalg.norm(x)
    y = np.cross(z, x)
    T = np.eye(4)
    T[:3, :3] = np.stack([x, y, z], axis=1)
    T[:3, 3] = pos
    return T


class MujocoCameraSource:
    def __init__(self, env, width_px: int = 640, height_px: int = 480, fovy_deg: float = 45.0) -> None:
        """`env`: a FailureBench env, wrapped or not (the robot node's sim driver holds one)."""
        self.env, self.width, self.height, self.fovy = env.unwrapped, width_px, height_px, fovy_deg
        self.T_base_camera = look_at(CAMERA_POS, CAMERA_TARGET)
        f = 0.5 * height_px / np.tan(np.radians(fovy_deg) / 2)
        self.intrinsics = Intrinsics(width_px, height_px, f, f, (width_px - 1) / 2, (height_px - 1) / 2)
        self._renderer = None
        self._depth = None
        self._cam = None

    def open(self) -> None:
        if self._renderer is not None:
            return
        import mujoco

        model = self.env._mw.model
        try:
            self._renderer = mujoco.Renderer(model, self.height, self.width)
            self._depth = mujoco.Renderer(model, self.height, self.width)
        except Exception as err:  # noqa: BLE001 - GL back ends fail with their own types
            raise CameraUnavailable(
                f"MuJoCo cannot render here ({type(err).__name__}): without a GPU set MUJOCO_GL=osmesa (apt libosmesa6)"
            ) from None
        self._depth.enable_depth_rendering()
        cam = mujoco.MjvCamera()
        cam.type = mujoco.mjtCamera.mjCAMERA_FREE
        d = CAMERA_TARGET - CAMERA_POS
        cam.lookat[:] = CAMERA_TARGET
        cam.distance = float(np.linalg.norm(d))
        cam.azimuth = float(np.degrees(np.arctan2(d[1], d[0])))
        cam.elevation = float(np.degrees(np.arcsin(d[2] / np.linalg.norm(d))))
        model.vis.global_.fovy = self.fovy
        self._cam = cam
        painted = [(g, OBJECT_RGBA[0]) for g in self.env._object_geoms]
        if self.env.spec_task.hazard == "vase":
            painted += [(g, OBJECT_RGBA[1]) for g in self.env._hazard_geoms]
        for geom, rgba in painted:
            model.geom_rgba[geom] = rgba
            model.geom_matid[geom] = -1  # a material's colour would win over the geom's

    def read(self, stamp_ns: int = 0) -> Frame:
        self.open()
        data = self.env._mw.data
        self._renderer.update_scene(data, camera=self._cam)
        rgb = self._renderer.render().copy()
        self._depth.update_scene(data, camera=self._cam)
        depth = self._depth.render().astype(np.float32)
        obs = self.env._last_obs
        truth = {"object": np.asarray(obs[OBJECT], dtype=np.float64)}
        if self.env.spec_task.hazard == "vase":
            truth["obstacle"] = np.asarray(obs[OBSTACLE], dtype=np.float64)
        return Frame(rgb, depth, self.intrinsics, stamp_ns, truth)

    def close(self) -> None:
        for r in (self._renderer, self._depth):
            if r is not None:
                r.close()
        self._renderer = self._depth = None
