"""Perception: RealSense frames through a software device, rendered FailureBench frames, the sim with
perceived state, and what bad input does."""

from __future__ import annotations

import numpy as np
import pytest

from farl_common.obs_layout import OBJECT, field_slice
from farl_perception.calibration import CalibrationError, fit_rigid, load_calibration, save_calibration
from farl_perception.detect import ColorRange
from farl_perception.frames import CameraUnavailable, StaleFrame
from farl_perception.pipeline import ObjectSpec, Perception, PerceptionSettings
from farl_perception.tracker import ObjectTracker

PREVIOUS_OBJECT = field_slice("object_pos_m", previous=True)

YELLOW = ColorRange((22, 120, 120), (35, 255, 255))
BLUE = ColorRange((100, 150, 80), (125, 255, 255))


def rot(axis: str, deg: float) -> np.ndarray:
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return {
        "x": np.array([[1, 0, 0], [0, c, -s], [0, s, c]]),
        "z": np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]),
    }[axis]


def camera_pose() -> np.ndarray:
    """A camera 0.7 m up and 0.6 m in front of the base, looking down and back at the table."""
    T = np.eye(4)
    T[:3, :3] = rot("z", 180) @ rot("x", -120)
    T[:3, 3] = [0.55, 0.6, 0.7]
    return T


# RealSense, through librealsense's software device ----------------------------------------------
rs = pytest.importorskip("pyrealsense2")


def test_realsense_frames_give_base_frame_positions_within_1cm():
    from farl_perception.realsense_source import RealSenseSource
    from tests.mocks.software_realsense import SoftwareD435, render_discs

    cam = SoftwareD435()
    T = camera_pose()
    truth_cam = {"puck": np.array([0.05, -0.03, 0.72]), "flower": np.array([-0.12, 0.08, 0.8])}
    color, depth = render_discs(
        640, 480, 615.0, 615.0, [(truth_cam["puck"], 0.03, (240, 215, 30)), (truth_cam["flower"], 0.04, (30, 80, 240))]
    )
    src = RealSenseSource(640, 480, 30, timeout_s=1.0, device=lambda: cam.device)
    src.open()
    assert src.intrinsics.fx == pytest.approx(615.0)
    per = Perception(PerceptionSettings([ObjectSpec("puck", YELLOW), ObjectSpec("flower", BLUE)], T))
    for _ in range(3):
        cam.push(color, depth)
    frame = src.read()
    assert frame.color.shape == (480, 640, 3) and frame.depth_m.shape == (480, 640)
    res = per.process(frame)
    for e in res.estimates:
        want = T[:3, :3] @ truth_cam[e.name] + T[:3, 3]
        assert np.linalg.norm(e.position_m - want) < 0.01, (e.name, e.position_m, want)
        assert e.confidence > 0.5 and e.age_s == 0.0
    src.close()


def test_a_camera_that_stops_sending_is_stale_and_comes_back():
    from farl_perception.realsense_source import RealSenseSource
    from tests.mocks.software_realsense import SoftwareD435, Streaming, render_discs

    cam = SoftwareD435()
    src = RealSenseSource(640, 480, 30, timeout_s=0.3, device=lambda: cam.device)
    color, depth = render_discs(640, 480, 615.0, 615.0, [])
    src.open()
    stream = Streaming(cam, color, depth)
    assert src.read().color.shape == (480, 640, 3)
    stream.stop()  # unplugged
    with pytest.raises(StaleFrame, match=r"no colour\+depth frame for 0.3 s"):
        for _ in range(3):  # frames still queued when it went are read first
            src.read()
    for _ in range(2):
        with pytest.raises(StaleFrame):
            src.read()  # the third stale read in a row closes it, to find it anew
    cam = SoftwareD435()  # plugged back in: a newly enumerated device
    stream = Streaming(cam, color, depth)
    try:
        assert src.read().color.shape == (480, 640, 3)
    finally:
        stream.stop()
        src.close()


def test_no_camera_says_so_in_one_line(monkeypatch):
    from farl_perception.realsense_source import RealSenseSource

    class NoDevices:
        def query_devices(self):
            return []

    monkeypatch.setattr(rs, "context", NoDevices)  # a machine with no RealSense plugged in
    with pytest.raises(CameraUnavailable, match="no RealSense camera at all") as err:
        RealSenseSource().read()
    assert "\n" not in str(err.value)


# calibration, tracking ---------------------------------------------------------------------------------
def test_calibration_from_touched_points_and_its_file(tmp_path):
    T = camera_pose()
    rng = np.random.default_rng(0)
    cam_pts = rng.uniform([-0.2, -0.2, 0.5], [0.2, 0.2, 1.0], size=(6, 3))
    base_pts = cam_pts @ T[:3, :3].T + T[:3, 3]
    fitted, residual = fit_rigid(cam_pts, base_pts)
    assert residual < 1e-9 and np.allclose(fitted, T)
    path = save_calibration(tmp_path / "cam.yaml", fitted, residual, "touched points")
    assert np.allclose(load_calibration(path), T)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("T_base_camera: [[1, 0], [0, 1]]", "4 x 4"),
        ("T_base_camera: [1, 2, 3", "not valid YAML"),
        ("something_else: 1", "no T_base_camera"),
        ("T_base_camera: [[2,0,0,0],[0,1,0,0],[0,0,1,0],[0,0,0,1]]", "not a rotation"),
    ],
)
def test_a_calibration_file_that_cannot_be_used_is_named_in_one_line(tmp_path, text, words):
    path = tmp_path / "cam.yaml"
    path.write_text(text)
    with pytest.raises(CalibrationError, match=words) as err:
        load_calibration(path)
    assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)
    with pytest.raises(CalibrationError, match="not found"):
        load_calibration(tmp_path / "missing.yaml")


def test_tracker_rejects_a_jump_until_it_is_confirmed_and_ages_unseen_objects():
    tr = ObjectTracker(["a"], smoothing=0.0, max_jump_m=0.05, confirm_frames=3)
    (e,) = tr.update(0, {})
    assert np.isnan(e.position_m).all() and e.age_s == float("inf")
    tr.update(0, {"a": (np.array([0.5, 0.0, 0.0]), 0.9)})
    (e,) = tr.update(200_000_000, {"a": (np.array([0.9, 0.0, 0.0]), 0.9)})  # a 40 cm jump: an outlier
    assert e.position_m[0] == 0.5 and e.confidence == 0.0 and e.age_s == pytest.approx(0.2)
    tr.update(400_000_000, {"a": (np.array([0.9, 0.0, 0.0]), 0.9)})
    (e,) = tr.update(600_000_000, {"a": (np.array([0.9, 0.0, 0.0]), 0.9)})  # third time: it really moved
    assert e.position_m[0] == 0.9 and e.confidence == 0.9


def test_missing_yolo_weights_are_refused_in_one_line(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file") as err:
        Perception(PerceptionSettings([ObjectSpec("puck", YELLOW)], yolo_weights=str(tmp_path / "best.pt")))
    assert "\n" not in str(err.value)


def test_colour_alone_says_so():
    per = Perception(PerceptionSettings([ObjectSpec("puck", YELLOW)]))
    assert any("colour alone" in w for w in per.warnings)


# the FailureBench scene through a rendered camera ----------------------------------------------------
@pytest.mark.parametrize("task", ["fragile_push_wall", "obstructed_push"])
def test_rendered_frames_locate_the_objects_within_2cm(task):
    from farl_perception.mujoco_source import MujocoCameraSource
    from farl_sim import make_env
    from farl_sim.experts import task_expert

    env = make_env(task, check=True)
    src = MujocoCameraSource(env, 320, 240)
    names = ["object", "obstacle"] if task == "obstructed_push" else ["object"]
    specs = [ObjectSpec("object", YELLOW, 0.02), ObjectSpec("obstacle", BLUE, 0.025)][: len(names)]
    errors = {n: [] for n in names}
    frames = 0
    for seed in range(3):  # three episodes of the scripted expert moving the puck about
        obs, _ = env.reset(seed=seed)
        per = Perception(PerceptionSettings(specs, src.T_base_camera))
        expert = task_expert(task)
        for _ in range(70):
            frame = src.read()
            frames += 1
            for name, d in per.detect(frame).items():
                p = per.locate(frame, d)
                if p is not None:
                    errors[name].append(float(np.linalg.norm(p - frame.truth[name])))
            obs, _, term, trunc, _ = env.step(expert(obs))
            if term or trunc:
                break
    src.close()
    env.close()
    assert frames >= 200
    for name, errs in errors.items():
        e = np.array(errs)
        assert len(e) >= 0.9 * frames, f"{name} seen in {len(e)} of {frames} frames"
        assert np.percentile(e, 95) < 0.02 and np.median(e) < 0.012, (name, np.median(e), e.max())


def test_no_object_in_view_holds_the_perceived_sim_scene():
    from farl_robot.perceived_sim_scene import PerceivedSimScene
    from farl_robot.scene import StaleState
    from farl_robot.sim_driver import SimDriver

    sim = SimDriver("fragile_push_wall", 50)
    sim.connect()
    hand = sim.home(0)
    scene = PerceivedSimScene(sim, ["object"], timeout_s=0.5)
    with pytest.raises(StaleState, match="no position of 'object'"):
        scene.observe(hand, 0)
    scene.update(["object"], np.array([0.1, 0.7, 0.02]), 0, [True])
    obs = scene.observe(hand, 400_000_000)
    assert np.allclose(obs[OBJECT], [0.1, 0.7, 0.02]) and np.allclose(obs[PREVIOUS_OBJECT], obs[OBJECT])
    scene.update(["object"], np.array([0.0, 0.0, 0.0]), 450_000_000, [False])  # a frame without the object
    with pytest.raises(StaleState, match=r"last seen 0\.60 s ago"):
        scene.check_fresh(600_000_000)
    sim.close()


@pytest.mark.slow
def test_farl_sim_on_perceived_state(tmp_path):
    """A whole episode of the graph with the camera in the loop: the policy acts on perceived positions."""
    from farl_bringup.sim_graph import run_sim
    from farl_common.bags import read_episode
    from farl_common.config import task_config
    from tests.conftest import SMALL

    cfg = task_config("fragile_push_wall")
    cfg.policy.kind = "scripted"
    cfg.perception.enabled, cfg.perception.source = True, "mujoco"
    cfg.perception.width_px, cfg.perception.height_px = 320, 240
    cfg.robot.horizon_steps = 40 if SMALL else 200
    cfg.recorder.out_dir = str(tmp_path / "bags")
    result = run_sim(cfg, episodes=1, seed=0)
    ep = read_episode(result.bags[0])
    assert len(ep) == cfg.robot.horizon_steps
    truth = []  # the bag holds perceived object positions; they track the simulator's within 2 cm
    from farl_sim import make_env

    env = make_env("fragile_push_wall", horizon_steps=cfg.robot.horizon_steps, check=True)
    obs, _ = env.reset(seed=0)
    for a in ep.action:
        truth.append(obs[OBJECT])
        obs, *_ = env.step(a)
    env.close()
    err = np.linalg.norm(ep.obs[:, OBJECT] - np.array(truth), axis=1)
    assert np.median(err) < 0.02, np.median(err)


def test_yolo_boxes_count_only_where_the_colour_confirms_them():
    from farl_perception.detect import ColorDetector, Detection, fuse

    rgb = np.full((120, 160, 3), 90, np.uint8)
    rgb[40:60, 50:70] = (240, 215, 30)  # the yellow puck
    colors = ColorDetector({"puck": YELLOW}).detect(rgb)
    boxes = {
        "puck": [
            Detection("puck", 20, 20, (10, 10, 30, 30), 400, 0.9),  # confident, but nothing yellow there
            Detection("puck", 60, 50, (45, 35, 75, 65), 900, 0.6),
        ]
    }
    fused = fuse(boxes, colors)
    assert fused["puck"].box == (45, 35, 75, 65) and fused["puck"].score == 0.6
    assert fused["puck"].u == pytest.approx(59.5) and fused["puck"].v == pytest.approx(49.5)  # the blob's centre
    assert fuse({"puck": boxes["puck"][:1]}, colors) == {}


def test_yolo_weights_load_from_a_file_and_a_bad_file_is_named(tmp_path):
    pytest.importorskip("ultralytics")
    from farl_perception.detect import YoloDetector

    bad = tmp_path / "best.pt"
    bad.write_text("not a checkpoint")
    with pytest.raises(RuntimeError, match="cannot be loaded") as err:
        YoloDetector(bad, {"puck": "puck"})
    assert str(bad) in str(err.value) and "\n" not in str(err.value)


def test_farl_perception_calibrate_and_view(tmp_path, capsys):
    import yaml

    from farl_bringup.cli import main

    T = camera_pose()
    cam = np.random.default_rng(1).uniform([-0.2, -0.2, 0.5], [0.2, 0.2, 1.0], size=(5, 3))
    base = cam @ T[:3, :3].T + T[:3, 3] + np.random.default_rng(2).normal(0, 0.001, size=(5, 3))
    (tmp_path / "points.yaml").write_text(yaml.safe_dump({"camera": cam.tolist(), "base": base.tolist()}))
    out = tmp_path / "cam.yaml"
    assert main(["perception", "calibrate", "--points", str(tmp_path / "points.yaml"), "--out", str(out)]) == 0
    assert "residual" in capsys.readouterr().out
    assert np.allclose(load_calibration(out)[:3, 3], T[:3, 3], atol=0.005)
    (tmp_path / "bad.yaml").write_text("camera: [[0, 0, 1]]\n")
    assert main(["perception", "calibrate", "--points", str(tmp_path / "bad.yaml"), "--out", str(out)]) == 2
    assert "needs `camera:` and `base:`" in capsys.readouterr().err
    assert (
        main(["perception", "view", "--task", "fragile_push_wall", "--frames", "3", "--out", str(tmp_path / "v")]) == 0
    )
    assert len(list((tmp_path / "v").glob("frame_*.png"))) == 3
    assert "object: seen in 3 of 3 frames" in capsys.readouterr().out


def test_a_camera_that_stalls_mid_episode_makes_the_robot_hold(tmp_path):
    """Camera frames stop 3 s in: perception publishes growing ages, the robot holds and says why."""
    import dataclasses

    from farl_bringup.graph_spec import graph_spec
    from farl_common.config import task_config
    from farl_common.runtime.inprocess import InProcessRuntime
    from farl_perception.mujoco_source import MujocoCameraSource
    from farl_perception.perception_node import PerceptionNode
    from farl_robot.robot_node import RobotNode

    class StallingCamera(MujocoCameraSource):  # the camera boundary: frames stop coming
        def read(self, stamp_ns: int = 0):
            if stamp_ns > 3_000_000_000:
                raise StaleFrame("RealSense: no colour+depth frame for 1.0 s (unplugged?)")
            return super().read(stamp_ns)

    cfg = task_config("fragile_push_wall")
    cfg.policy.kind = "scripted"
    cfg.perception.enabled, cfg.perception.source = True, "mujoco"
    cfg.recorder.out_dir = str(tmp_path / "bags")
    with InProcessRuntime() as rt:
        nodes = []
        for spec in graph_spec(cfg, 1, 0):
            if spec.node_class is PerceptionNode:
                p = dataclasses.replace(spec.params, width_px=160, height_px=120)
                nodes.append(
                    rt.add(PerceptionNode(p, source=StallingCamera(nodes[1].driver.env, 160, 120)), spec.topics)
                )
            else:
                nodes.append(rt.add(spec.node_class(spec.params), spec.topics))
        rt.run(until_s=6.0)
        robot = next(n for n in nodes if isinstance(n, RobotNode))
        steps_at_stall = robot.step
        rt.run(until_s=8.0)
        assert robot.step == steps_at_stall and 10 <= steps_at_stall <= 16  # nothing moved after the stall
        assert robot.held_ticks >= 10
    texts = [r.text for r in rt.logs]
    assert any("positions age until frames come back" in t for t in texts)
    assert any("holding:" in t and "last seen" in t for t in texts)
