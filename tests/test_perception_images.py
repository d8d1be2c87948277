"""Camera frames as image topics, in bags and back; the debug image; the detector trained from bags;
the board calibration. Images come from the MuJoCo camera of the FailureBench scene, the board
from OpenCV's own printable image seen through a pinhole (tests/mocks/board_camera.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from farl_common.messages import TypestoreFactory
from farl_common.obs_layout import OBJECT
from farl_common.runtime.inprocess import InProcessRuntime
from farl_common.runtime.node import Input, Node, Output, Timer
from farl_common.topics import IMAGE_TOPICS, TOPIC_TYPES
from farl_common.typestore import IMAGE, OBJECTS
from farl_perception.calibration import CalibrationError
from farl_perception.frames import Frame, Intrinsics
from farl_perception.image_messages import (
    ImageError,
    decode_color,
    decode_depth,
    frame_from_msgs,
    frame_msgs,
)
from farl_perception.perception_node import PerceptionNode

K = Intrinsics(8, 6, 5.0, 5.5, 3.5, 2.5)


def a_frame(seed: int = 0) -> Frame:
    rng = np.random.default_rng(seed)
    color = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    depth = rng.uniform(0.3, 2.0, (6, 8)).astype(np.float32)
    depth[0, 0] = 0.0  # no reading
    return Frame(color, depth, K, 1_234_567_890)


def test_a_frame_survives_the_image_messages_and_cdr():
    f = TypestoreFactory()
    frame = a_frame()
    msgs = [
        f.deserialize(f.serialize(m, tn), tn)
        for m, tn in zip(frame_msgs(f, frame), [TOPIC_TYPES[t] for t in IMAGE_TOPICS], strict=True)
    ]
    back = frame_from_msgs(*msgs)
    np.testing.assert_array_equal(back.color, frame.color)
    np.testing.assert_allclose(back.depth_m, frame.depth_m, atol=0.0005)  # millimetres, as realsense2_camera
    assert back.depth_m[0, 0] == 0.0 and back.intrinsics == K and back.stamp_ns == frame.stamp_ns
    assert msgs[0].encoding == "rgb8" and msgs[1].encoding == "16UC1"


def test_other_encodings_are_read_and_unusable_images_are_named():
    f = TypestoreFactory()
    frame = a_frame()
    color, depth, info = frame_msgs(f, frame)
    color.encoding, color.data = "bgr8", np.ascontiguousarray(frame.color[..., ::-1]).reshape(-1)
    np.testing.assert_array_equal(decode_color(color), frame.color)
    depth.encoding, depth.step = "32FC1", 4 * 8
    depth.data = frame.depth_m.astype("<f4").view(np.uint8).reshape(-1)
    np.testing.assert_allclose(decode_depth(depth), frame.depth_m)
    color.encoding = "yuv422"
    with pytest.raises(ImageError, match=r"yuv422.*rgb8 or bgr8"):
        decode_color(color)
    color.encoding, info.width = "bgr8", 16
    with pytest.raises(ImageError, match="align_depth"):
        frame_from_msgs(color, depth, info)
    depth.data = depth.data[:10]
    with pytest.raises(ImageError, match="do not hold it"):
        decode_depth(depth)


def sim_cfg(tmp_path, record_images: bool = True, horizon: int = 20):
    from farl_common.config import task_config

    cfg = task_config("fragile_push_wall")
    cfg.policy.kind = "scripted"
    cfg.perception.enabled, cfg.perception.source = True, "mujoco"
    cfg.perception.width_px, cfg.perception.height_px = 320, 240
    cfg.perception.record_images = record_images
    cfg.robot.horizon_steps = horizon
    cfg.recorder.out_dir = str(tmp_path / "bags")
    return cfg


@pytest.fixture(scope="module")
def image_bags(tmp_path_factory):
    """Two sim episodes on perceived state, their camera frames kept in the bags."""
    from farl_bringup.sim_graph import run_sim

    tmp = tmp_path_factory.mktemp("image_bags")
    return run_sim(sim_cfg(tmp), episodes=2, seed=0).bags


def test_episode_bags_keep_the_frames_and_perception_reads_them_back(image_bags):
    from farl_bringup.graph_spec import perception_params
    from farl_common.bags import read_episode
    from farl_perception.mujoco_source import CAMERA_POS, CAMERA_TARGET, look_at
    from farl_perception.perception_node import settings_from_params
    from farl_perception.pipeline import Perception
    from farl_perception.recorded_sources import read_bag_frames

    ep = read_episode(image_bags[0])  # the episode itself reads as before
    assert len(ep) == 20
    frames = [b.frame for b in read_bag_frames(image_bags[0])]
    assert 18 <= len(frames) <= 22 and frames[0].color.shape == (240, 320, 3)
    stamps = [fr.stamp_ns for fr in frames]
    assert stamps == sorted(stamps)
    # Perception over the recorded frames gives what the robot acted on (the bag's perceived state).
    params = perception_params(sim_cfg(Path("unused")))
    per = Perception(settings_from_params(params, look_at(CAMERA_POS, CAMERA_TARGET)))
    seen = np.array([per.process(fr).positions()["object"] for fr in frames])
    states = np.vstack([ep.obs[:, OBJECT], ep.next_obs[-1:, OBJECT]])
    nearest = np.linalg.norm(states[:, None] - seen[None], axis=2).min(axis=1)
    assert np.median(nearest) < 0.003, nearest  # the same frames, depth stored in millimetres
    every = list(read_bag_frames(image_bags[0], every=5))
    assert len(every) == (len(frames) + 4) // 5


def test_bags_without_images_stay_small(tmp_path):
    from farl_bringup.sim_graph import run_sim
    from farl_perception.recorded_sources import BagFrames, read_bag_frames

    bag = run_sim(sim_cfg(tmp_path, record_images=False, horizon=5), episodes=1, seed=0).bags[0]
    assert list(read_bag_frames(bag)) == []
    src = BagFrames(bag)
    from farl_perception.frames import StaleFrame

    with pytest.raises(StaleFrame, match="no camera frames in"):
        src.read(0)


class FramePlayer(Node):
    """The camera driver's side of the topics: publishes frames from a source at 10 Hz, the depth
    stamped 3 ms after the colour (as two sensors would), until `stop_after` frames."""

    name = "frame_player"
    outputs = tuple(Output(t, TOPIC_TYPES[t], qos="sensor") for t in IMAGE_TOPICS)

    @dataclasses.dataclass
    class Params:
        rate_hz: float = 10.0

    timers = (Timer("on_tick", "rate_hz"),)

    def __init__(self, source, stop_after: int) -> None:
        super().__init__()
        self.source, self.stop_after, self.sent = source, stop_after, 0

    def on_tick(self) -> None:
        if self.sent >= self.stop_after:
            return
        now = self.now_ns()
        color, depth, info = frame_msgs(self.msgs, self.source.read(now), now)
        depth.header.stamp.nanosec += 3_000_000
        for topic, msg in zip(IMAGE_TOPICS, (color, depth, info), strict=True):
            self.publish(topic, msg)
        self.sent += 1


class Listener(Node):
    name = "listener"
    inputs = (
        Input("objects", OBJECTS, "on_objects", qos="sensor"),
        Input("debug_image", IMAGE, "on_debug", qos="sensor"),
    )

    def on_start(self) -> None:
        self.objects, self.debug = [], []

    def on_objects(self, msg) -> None:
        self.objects.append(msg)

    def on_debug(self, msg) -> None:
        self.debug.append(msg)


def test_the_perception_node_on_camera_topics_finds_the_object_and_holds_when_they_stop(tmp_path):
    from farl_bringup.graph_spec import SIM_HSV
    from farl_perception.calibration import save_calibration
    from farl_perception.mujoco_source import MujocoCameraSource
    from farl_perception.perception_node import PerceptionParams
    from farl_sim import make_env

    env = make_env("fragile_push_wall", check=True)
    env.reset(seed=0)
    cam = MujocoCameraSource(env, 320, 240)
    calibration = save_calibration(tmp_path / "cal.yaml", cam.T_base_camera, 0.0, "the sim camera's pose")
    params = PerceptionParams(
        source="topics",
        object_names=["object"],
        hsv_lo=list(SIM_HSV["object"][0]),
        hsv_hi=list(SIM_HSV["object"][1]),
        depth_offset_m=[SIM_HSV["object"][2]],
        calibration=str(calibration),
        frame_timeout_s=0.5,
    )

    with InProcessRuntime() as rt:
        rt.add(FramePlayer(cam, stop_after=20))
        node = rt.add(PerceptionNode(params))
        listener = rt.add(Listener())
        rt.run(until_s=2.0)
        assert node.frames >= 9 and node.bad_images == 0
        last = listener.objects[-1]
        truth = env.unwrapped._last_obs[OBJECT]
        assert np.linalg.norm(np.asarray(last.positions_m) - truth) < 0.02 and last.confidence[0] > 0
        img = decode_color(listener.debug[-1])  # the annotated image, same size as the camera's
        assert img.shape == (240, 320, 3) and not np.array_equal(img, cam.read(0).color)
        rt.run(until_s=4.5)  # frames stopped at 2 s: positions age, the node says so
        assert listener.objects[-1].age_s[0] > 1.5
    assert any("no colour + depth + camera_info" in r.text for r in rt.logs)
    cam.close()
    env.close()


def test_train_detector_from_bags_offline(image_bags, tmp_path, capsys):
    from farl_bringup.cli import main
    from farl_perception.detect import YoloDetector

    out = tmp_path / "det"
    bags = str(image_bags[0].parent)
    args = ["perception", "train-detector", "--bags", bags, "--task", "fragile_push_wall", "--out", str(out)]
    assert main([*args, "--epochs", "1", "--imgsz", "128", "--every", "2", "--batch", "4"]) == 0
    text = capsys.readouterr().out
    assert "colour-labelled boxes: object" in text and "YOLO confirms" in text
    labels = sorted((out / "dataset" / "labels").rglob("*.txt"))
    assert labels and all(line.split()[0] in ("0", "1") for p in labels for line in p.read_text().splitlines())
    assert any(p.read_text() for p in labels)  # the colour filter labelled the puck
    assert {p.parent.name for p in labels} == {"train", "val"}  # episode 1 validates what episode 0 trained
    YoloDetector(out / "detector.pt", {"object": "object"}, imgsz=128)  # loads as perception would
    empty = tmp_path / "no_images"
    empty.mkdir()
    assert main(["perception", "train-detector", "--bags", str(empty), "--task", "fragile_push_wall"]) == 2
    assert "no camera frames in the bags" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["charuco", "aruco_grid"])
def test_board_calibration_recovers_the_camera_pose(kind):
    from scipy.spatial.transform import Rotation

    from farl_perception.board_calibration import BoardSpec, calibrate, find_board
    from tests.mocks.board_camera import INTRINSICS, T_BASE_CAMERA, BoardOnHand, hand_poses

    spec = BoardSpec(kind=kind)
    scene = BoardOnHand(spec, hand_poses(10))
    poses, views = [], []
    for _ in range(10):
        v = find_board(scene.read().color, INTRINSICS, spec)
        assert v is not None
        poses.append(scene.hand_pose())
        views.append(v)
        scene.move()
    cal = calibrate(poses, views, INTRINSICS)
    assert np.linalg.norm(cal.T_base_camera[:3, 3] - T_BASE_CAMERA[:3, 3]) < 0.002
    angle = Rotation.from_matrix(cal.T_base_camera[:3, :3].T @ T_BASE_CAMERA[:3, :3]).magnitude()
    assert np.degrees(angle) < 0.1 and cal.reprojection_px < 1.0
    with pytest.raises(CalibrationError, match="need at least 4"):
        calibrate(poses[:3], views[:3], INTRINSICS)


def test_capture_board_then_calibrate_from_the_cli(tmp_path, capsys):
    from farl_bringup.cli import main
    from farl_bringup.perception_tools import capture_board
    from farl_common.config import task_config
    from farl_perception.board_calibration import BoardSpec
    from farl_perception.calibration import load_calibration
    from tests.mocks.board_camera import T_BASE_CAMERA, BoardOnHand, hand_poses

    spec = BoardSpec()
    scene = BoardOnHand(spec, hand_poses(9, seed=1), hidden=(2,))
    calls = []

    def person(prompt: str) -> str:  # moves the hand to the next pose, then presses Enter
        if calls:
            scene.move()
        calls.append(prompt)
        return ""

    cfg = task_config("franka_fragile_push_wall")
    capture_board(cfg, tmp_path / "samples", 8, spec, prompt=person, camera=scene, robot=scene)
    out = capsys.readouterr().out
    assert "board not found in this frame" in out and "8 samples" in out and scene.connected and scene.opened
    cal_file = tmp_path / "cal.yaml"
    assert main(["perception", "calibrate", "--samples", str(tmp_path / "samples"), "--out", str(cal_file)]) == 0
    assert "board views: reprojection" in capsys.readouterr().out
    np.testing.assert_allclose(load_calibration(cal_file), T_BASE_CAMERA, atol=0.003)
    (tmp_path / "samples" / "sample_001.png").unlink()
    assert main(["perception", "calibrate", "--samples", str(tmp_path / "samples"), "--out", str(cal_file)]) == 2
    assert "sample_001.png' is missing" in capsys.readouterr().err


def test_the_printable_board_is_found_by_the_detector(tmp_path, capsys):
    import cv2

    from farl_bringup.cli import main
    from farl_perception.board_calibration import BoardSpec, find_board

    assert main(["perception", "board", "--out", str(tmp_path / "board.png")]) == 0
    img = cv2.imread(str(tmp_path / "board.png"))
    assert img is not None and (tmp_path / "board.yaml").exists()
    k = Intrinsics(img.shape[1], img.shape[0], 1000.0, 1000.0, img.shape[1] / 2, img.shape[0] / 2)
    assert find_board(img, k, BoardSpec()) is not None
    assert main(["perception", "board", "--marker-m", "0.05", "--out", str(tmp_path / "b.png")]) == 2
    assert "must be > 0 and < square_m" in capsys.readouterr().err


def test_square_resize_crops_the_centre_and_averages_each_block_by_hand():
    from farl_perception.episode_images import square_resize

    img = np.zeros((4, 6, 3), np.uint8)
    img[:, 1:5, 0] = [[0, 2, 4, 6], [2, 4, 6, 8], [10, 10, 20, 20], [30, 30, 40, 40]]  # the centre 4 x 4
    img[:, [0, 5]] = 255  # cut away
    out = square_resize(img, 2)
    assert out.shape == (2, 2, 3) and out.dtype == np.uint8
    assert out[..., 0].tolist() == [[2, 6], [20, 30]] and out[..., 1:].max() == 0
    with pytest.raises(ImageError, match="smaller than the 8x8"):
        square_resize(img, 8)


def _image_bag(path: Path, frame_times_ms: list[int], steps: int = 3) -> None:
    """An episode of `steps` steps, a state every 200 ms, and a colour frame (value = its time / 10) at each
    of `frame_times_ms`."""
    from farl_common.bags import EpisodeBagWriter
    from farl_common.episode_messages import EpisodeMessages
    from farl_common.topics import DEFAULT_TOPICS
    from farl_perception.image_messages import color_msg

    msgs = TypestoreFactory()
    rec = EpisodeMessages(msgs, task="safe_reach", kind="task", episode=0, seed=0, layout=[("hand", 3)])
    put = [(ms * 1_000_000, "camera_color", None) for ms in frame_times_ms]
    put += [(k * 200_000_000, "state", k) for k in range(steps + 1)]
    with EpisodeBagWriter(path) as w:
        w.write(DEFAULT_TOPICS["episode_event"], TOPIC_TYPES["episode_event"], rec.start(0), 0)
        for t, what, k in sorted(put, key=lambda p: (p[0], p[1] != "camera_color")):
            if what == "camera_color":
                pixels = np.full((8, 8, 3), t // 10_000_000, np.uint8)
                w.write(DEFAULT_TOPICS["camera_color"], IMAGE, color_msg(msgs, pixels, t), t)
                continue
            w.write(DEFAULT_TOPICS["state"], TOPIC_TYPES["state"], rec.state(t, k, np.full(3, k, float)), t)
            if k < steps:
                w.write(
                    DEFAULT_TOPICS["action_executed"], TOPIC_TYPES["action_executed"], rec.action(t, k, np.zeros(2)), t
                )
                fb = rec.feedback(t + 1, k, 0.0, {}, False, k == steps - 1)
                w.write(DEFAULT_TOPICS["step_feedback"], TOPIC_TYPES["step_feedback"], fb, t + 1)
        w.write(
            DEFAULT_TOPICS["episode_event"],
            TOPIC_TYPES["episode_event"],
            rec.end(steps * 200_000_000),
            steps * 200_000_000,
        )


def test_each_state_gets_the_newest_camera_frame_at_or_before_it_and_a_gap_is_an_error(tmp_path):
    from farl_common.bags import BagError, read_episode
    from farl_perception.episode_images import episode_frames

    _image_bag(tmp_path / "ok", [0, 150, 200, 390, 590])  # states at 0, 200, 400, 600 ms
    ep = read_episode(tmp_path / "ok")
    frames = episode_frames(ep, 4)
    assert frames.shape == (4, 4, 4, 3) and [int(f[0, 0, 0]) for f in frames] == [0, 20, 39, 59]
    _image_bag(tmp_path / "late", [100, 200, 400, 600])  # nothing at or before the first state
    with pytest.raises(BagError, match=r"late: no camera image within 0.5 s of step 0 \(none before it\)"):
        episode_frames(read_episode(tmp_path / "late"), 4)
    _image_bag(tmp_path / "stale", [0])  # the camera stopped: step 3's newest frame is 0.6 s old
    with pytest.raises(BagError, match=r"stale: no camera image within 0.5 s of step 3 \(the newest is 0.60 s old\)"):
        episode_frames(read_episode(tmp_path / "stale"), 4)
    _image_bag(tmp_path / "none", [])
    with pytest.raises(BagError, match="none: no camera images on /camera/camera/color/image_raw"):
        episode_frames(read_episode(tmp_path / "none"), 4)
