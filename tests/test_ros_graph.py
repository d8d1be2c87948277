"""The rclpy layer for real: farl nodes under `RclpyHost` over Fast DDS with the built farl_interfaces.

Runs under `.venv-ros/bin/python-ros -m pytest -m ros` (scripts/setup_ros.sh; `bash scripts/test.sh` runs
both suites); skipped, with the reason, where rclpy or farl_interfaces cannot be imported.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from farl_bringup.graph_spec import graph_spec
from farl_bringup.sim_graph import run_sim
from farl_common.bags import load_dataset
from farl_common.config import task_config
from farl_common.obs_layout import OBJECT
from farl_common.recorder_node import EpisodeRecorderNode, RecorderParams
from farl_common.topics import DEFAULT_TOPICS
from farl_robot.robot_node import RobotNode, RobotParams
from farl_sim.scripted_policy_node import ScriptedPolicyNode, ScriptedPolicyParams

pytestmark = pytest.mark.ros
rclpy = pytest.importorskip(
    "rclpy", reason="rclpy not importable: run under .venv-ros/bin/python-ros (scripts/setup_ros.sh)"
)
pytest.importorskip("farl_interfaces.msg", reason="farl_interfaces not built: scripts/setup_ros.sh builds it")

GRAPH = {"action_proposed": "action_executed"}  # no shield: the policy's action is executed
CANONICAL = dict(DEFAULT_TOPICS)
"""The topic names bags hold and `farl replay --ros` publishes on (a launch file's remappings)."""


@pytest.fixture
def ros():
    rclpy.init()
    yield
    rclpy.try_shutdown()


def spin(hosts, done, timeout_s: float) -> None:
    from rclpy.executors import SingleThreadedExecutor

    ex = SingleThreadedExecutor()
    for h in hosts:
        ex.add_node(h.ros_node)
    end = time.monotonic() + timeout_s
    while not done() and time.monotonic() < end:
        ex.spin_once(timeout_sec=0.02)
    for h in hosts:
        ex.remove_node(h.ros_node)


def spin_and_close(hosts, done, timeout_s: float) -> None:
    try:
        spin(hosts, done, timeout_s)
    finally:
        for h in hosts:
            h.close()


def test_every_node_class_starts_with_its_config_parameters(ros, tiny_run, tmp_path) -> None:
    """The learned graph's nodes (robot, recorder, learner, policy, shield, teleop) declare and read their
    parameters."""
    from farl_common.runtime.rclpy_host import RclpyHost

    cfg = task_config("fragile_push_wall")
    cfg.learner.run_dir = str(tiny_run)
    cfg.recorder.out_dir = str(tmp_path / "bags")
    cfg.teleop.takeover, cfg.teleop.device = True, "scripted"
    hosts = []
    specs = graph_spec(cfg, episodes=1)
    assert "teleop" in [s.name for s in specs]
    try:
        for spec in specs:
            host = RclpyHost(spec.node_class, params=spec.params)
            hosts.append(host)
            names = {f.name for f in dataclasses.fields(spec.params)}
            declared = {n: host.ros_node.get_parameter(n).value for n in names}
            assert declared.keys() == names
            assert host.node.params == spec.params, spec.name
    finally:
        for h in hosts:
            h.close()


def _graphs(tiny_run, tmp_path):
    """Every graph a launch file starts in sim: learned, scripted, takeover, recording with each device."""
    for policy, takeover, device in [
        ("learned", False, "spacemouse"),
        ("scripted", True, "scripted"),
        ("teleop", False, "spacemouse"),
        ("teleop", False, "keyboard"),
    ]:
        cfg = task_config("fragile_push_wall")
        cfg.learner.run_dir, cfg.recorder.out_dir = str(tiny_run), str(tmp_path / "bags")
        cfg.policy.kind, cfg.teleop.takeover, cfg.teleop.device = policy, takeover, device
        if policy == "teleop":
            cfg.episodes.kind = "task"
        yield from graph_spec(cfg, episodes=1)


def test_every_nodes_params_file_reads_back_through_rcl_as_farl_wrote_it(tiny_run, tmp_path) -> None:
    """`ros2 launch` hands parameters over in a params file that rcl parses (YAML 1.1). Each node of every
    graph, started with its params file and nothing else, reads back exactly its parameters; the file
    launch_ros would write from the same dict (PyYAML, `y` unquoted) is refused by rcl for the teleop node."""
    import yaml
    from rclpy.context import Context
    from rclpy.node import Node as RosNode

    from farl_bringup.params_file import write_params_file
    from farl_common.runtime.rclpy_host import declare_parameters

    def params_read(path):
        ctx = Context()
        rclpy.init(args=["--ros-args", "--params-file", str(path)], context=ctx)
        try:
            ros_node = RosNode(spec.name, context=ctx)
            try:
                return declare_parameters(ros_node, spec.node_class)
            finally:
                ros_node.destroy_node()
        finally:
            rclpy.try_shutdown(context=ctx)

    checked = set()
    for spec in _graphs(tiny_run, tmp_path):
        assert params_read(write_params_file(spec.name, spec.params, tmp_path / "params")) == spec.params, spec.name
        checked.add(spec.name)
        if spec.name == "teleop":
            assert spec.params.axis_map == ["x", "y", "z"]
            as_launch_ros_writes = tmp_path / "launch_ros.yaml"
            doc = {"/**": {"ros__parameters": dataclasses.asdict(spec.params)}}  # what the launch handed launch_ros
            as_launch_ros_writes.write_text(yaml.dump(doc, default_flow_style=False))
            with pytest.raises(Exception, match="Sequence should be of same type"):
                params_read(as_launch_ros_writes)
    assert checked == {"episode_recorder", "robot", "learner", "policy", "safety_shield", "scripted_policy", "teleop"}


def test_the_recorder_writes_a_bag_from_dds_messages_equal_to_the_in_process_one(ros, tmp_path) -> None:
    """Robot, scripted policy and recorder over real DDS: the bag holds the same transitions as `farl sim`'s."""
    from farl_common.runtime.rclpy_host import RclpyHost

    robot = RclpyHost(RobotNode, params=RobotParams(episodes=1, horizon_steps=12, rate_hz=20.0, seed=3), remap=GRAPH)
    policy = RclpyHost(ScriptedPolicyNode, params=ScriptedPolicyParams(seed=3), remap=GRAPH)
    recorder = RclpyHost(EpisodeRecorderNode, params=RecorderParams(out_dir=str(tmp_path / "dds")))
    hosts = [recorder, policy, robot]
    try:
        spin(hosts, lambda: robot.done and recorder.node.closed, timeout_s=60)
        # A recorder (re)started now is handed the finished episode's events (transient local): no bag.
        late = RclpyHost(EpisodeRecorderNode, params=RecorderParams(out_dir=str(tmp_path / "late")))
        hosts.append(late)
        spin(hosts, lambda: late.node.skipped, timeout_s=10)
    finally:
        for h in hosts:
            h.close()
    assert late.node.skipped == [0] and not list((tmp_path / "late").rglob("metadata.yaml"))
    assert recorder.node.closed, "no bag was written from DDS messages"
    dds = load_dataset(tmp_path / "dds", strict=True)

    cfg = task_config("fragile_push_wall")
    cfg.policy.kind = "scripted"
    cfg.robot.horizon_steps = 12
    cfg.rate_hz = 20.0
    cfg.recorder.out_dir = str(tmp_path / "inproc")
    run_sim(cfg, episodes=1, seed=3)
    ref = load_dataset(tmp_path / "inproc", strict=True)
    assert len(dds) == len(ref) == 12
    for name in ("obs", "action", "reward", "cost", "next_obs"):
        np.testing.assert_allclose(getattr(dds, name), getattr(ref, name), err_msg=name)


def test_a_person_takes_over_over_dds_and_the_bag_says_so(ros, tmp_path) -> None:
    """Takeover under rclpy: the teleop node forwards the policy's actions (array.array fields and all)
    and replaces them with the scripted person's near the wall; the recorder's bag marks those steps."""
    from farl_common.runtime.rclpy_host import RclpyHost
    from farl_teleop.teleop_node import TeleopNode, TeleopParams

    robot = RclpyHost(RobotNode, params=RobotParams(episodes=1, horizon_steps=60, rate_hz=20.0, seed=0))
    policy = RclpyHost(ScriptedPolicyNode, params=ScriptedPolicyParams(script="failure"))
    teleop = RclpyHost(
        TeleopNode,
        params=TeleopParams(takeover=True, device="scripted", person_takeover_m=0.05, poll_hz=40.0),
        remap={"action_shielded": "action_proposed"},
    )
    recorder = RclpyHost(EpisodeRecorderNode, params=RecorderParams(out_dir=str(tmp_path / "dds")))
    hosts = [recorder, teleop, policy, robot]
    spin_and_close(hosts, lambda: robot.done and recorder.node.closed, timeout_s=90)
    ep = load_dataset(tmp_path / "dds", strict=True).episodes[0]
    assert ep.intervened.any() and ep.ir_failure
    assert (~ep.intervened).any()  # the policy acted before the person stepped in
    assert teleop.node.takeovers_by_episode.get(0, 0) >= ep.intervened.sum()


def test_a_demonstration_recorded_over_dds_from_fake_spacemouse_reports(ros, tmp_path) -> None:
    """Record mode under rclpy: SpaceMouse reports (pyspacemouse's decoding) -> teleop node -> robot ->
    recorder; the bag is one labelled task demo of the person's actions."""
    from farl_common.bags import read_episode
    from farl_common.runtime.rclpy_host import RclpyHost
    from farl_teleop.devices import SpaceMouse
    from farl_teleop.mapping import AxisMapping
    from farl_teleop.operators import DeviceOperator
    from farl_teleop.teleop_node import TeleopNode, TeleopParams
    from tests.mocks.fake_spacemouse import FakeHID, fake_spacemouse

    t0 = time.monotonic() + 4.0  # DDS discovery first
    hid = FakeHID(lambda: time.monotonic() - t0)
    hid.press(0.0, 0).move(0.5, y=0.8).move(2.5, y=0.0).press(3.0, 0).press(4.0, 0)  # start, move, stop, keep
    op = DeviceOperator(
        SpaceMouse(factory=lambda: fake_spacemouse(hid)), AxisMapping.from_names(["x", "y", "z"], 0.1, 1)
    )
    robot = RclpyHost(RobotNode, params=RobotParams(episodes=0, rate_hz=10.0, kind="task", wait_for_start=True))
    teleop = RclpyHost(
        TeleopNode, params=TeleopParams(kind="task", episodes=1), make=lambda p: TeleopNode(p, operator=op)
    )
    recorder = RclpyHost(EpisodeRecorderNode, params=RecorderParams(out_dir=str(tmp_path / "demos")))
    hosts = [recorder, teleop, robot]
    spin_and_close(hosts, lambda: teleop.done and recorder.node.closed, timeout_s=60)
    assert recorder.node.closed, "no demonstration bag was written"
    ep = read_episode(recorder.node.closed[0])
    assert ep.kind == "task" and 20 <= len(ep) <= 35 and (ep.source == 2).all()
    assert (ep.action[:, 1] > 0.5).sum() >= 10


def test_the_learned_graph_starts_when_its_nodes_come_up_late(ros, tiny_run, tmp_path) -> None:
    """The robot starts its first episode on the learner's first answer; that state goes out before policy
    and shield exist (DDS keeps none for them), and the robot re-sends it while it holds, so the episode
    runs once they are up."""
    import dataclasses

    from farl_common.runtime.rclpy_host import RclpyHost

    cfg = task_config("fragile_push_wall")
    cfg.learner.run_dir = str(tiny_run)
    cfg.recorder.out_dir = str(tmp_path / "bags")
    cfg.robot.horizon_steps, cfg.robot.stale_timeout_s, cfg.rate_hz = 8, 0.3, 20.0
    specs = {s.name: s for s in graph_spec(cfg, episodes=1)}
    early = [RclpyHost(specs[n].node_class, params=specs[n].params) for n in ("episode_recorder", "robot")]
    robot = early[1]
    hosts = list(early)
    try:
        spin(hosts, lambda: False, timeout_s=1.0)
        assert robot.node.rec is None and robot.node.held_ticks == 0  # no learner yet: no episode
        hosts.append(RclpyHost(specs["learner"].node_class, params=specs["learner"].params))
        spin(hosts, lambda: False, timeout_s=3.0)  # the first state is out; nobody answers
        assert robot.node.rec is not None and robot.node.step == 0 and robot.node.held_ticks > 0
        for n in ("policy", "safety_shield"):
            params = specs[n].params
            hosts.append(RclpyHost(specs[n].node_class, params=dataclasses.replace(params)))
        spin(hosts, lambda: robot.done, timeout_s=60)
    finally:
        for h in hosts:
            h.close()
    assert robot.done and robot.node.finished and robot.node.finished[0]["steps"] == 8


def _learning_every_episode(tiny_run: Path, tmp_path: Path, episodes: int) -> dict:
    """The learned graph's node specs, by name: 8-step episodes at 20 Hz, a PPO update after each, on a
    copy of the pre-training without what online learning wrote, so the learner starts at policy version 0
    whatever other tests trained."""
    cfg = task_config("fragile_push_wall")
    run = shutil.copytree(tiny_run, tmp_path / "run", ignore=shutil.ignore_patterns("online_*"))
    cfg.learner.run_dir = str(run)
    cfg.learner.min_new_steps = 1
    cfg.recorder.out_dir = str(tmp_path / "bags")
    cfg.robot.horizon_steps, cfg.rate_hz = 8, 20.0
    return {s.name: s for s in graph_spec(cfg, episodes=episodes)}


def test_the_learned_graph_waits_for_its_recorder_to_take_the_robots_topics(ros, tiny_run, tmp_path) -> None:
    """The learner answers before the recorder is up (another process, another machine): the robot starts
    no episode until DDS has matched the recorder to its topics, so the bag holds the episode from step 0
    and the learner trains on it."""
    from farl_common.runtime.rclpy_host import RclpyHost

    specs = _learning_every_episode(tiny_run, tmp_path, episodes=1)
    hosts = [
        RclpyHost(specs[n].node_class, params=specs[n].params) for n in ("robot", "learner", "policy", "safety_shield")
    ]
    robot, learner = hosts[0], hosts[1]
    try:
        spin(hosts, lambda: False, timeout_s=3.0)
        assert robot.node.learner_version == 0  # the learner has answered ...
        assert robot.node.rec is None and robot.node.recorder.since_ns is not None  # ... and the robot waits
        assert not robot.node.ctx.delivers_to("state", "episode_recorder")
        assert robot.node.ctx.delivers_to("state", "policy")
        hosts.append(RclpyHost(specs["episode_recorder"].node_class, params=specs["episode_recorder"].params))
        spin(hosts, lambda: robot.done and learner.node.version >= 1, timeout_s=90)
    finally:
        for h in hosts:
            h.close()
    assert robot.done and robot.node.finished[0]["steps"] == 8
    assert hosts[-1].node.skipped == []
    (episode,) = load_dataset(tmp_path / "bags").episodes
    assert episode.step.tolist() == list(range(8))


def test_a_recorder_that_restarts_between_episodes_records_the_next_one_whole(ros, tiny_run, tmp_path) -> None:
    """The recorder's process ends after episode 0 and a new one starts: DDS unmatches the old reader and
    matches the new one in its own time. The robot holds episode 1, and the policy and shield hold their
    answers, until the new recorder takes their topics, so its bag holds every step with its action."""
    from farl_common.runtime.rclpy_host import RclpyHost

    specs = _learning_every_episode(tiny_run, tmp_path, episodes=2)
    names = ("robot", "learner", "policy", "safety_shield", "episode_recorder")
    hosts = [RclpyHost(specs[n].node_class, params=specs[n].params) for n in names]
    robot, learner, first = hosts[0], hosts[1], hosts[4]
    try:
        spin(hosts, lambda: learner.node.version >= 1, timeout_s=90)  # episode 0 recorded and trained on
        assert len(robot.node.finished) == 1 and first.node.skipped == []
        hosts.remove(first)
        first.close()
        spin(hosts, lambda: False, timeout_s=2.0)
        assert robot.node.rec is None and robot.node.recorder.since_ns is not None  # episode 1 waits
        assert not robot.node.ctx.delivers_to("state", "episode_recorder")
        second = RclpyHost(specs["episode_recorder"].node_class, params=specs["episode_recorder"].params)
        hosts.append(second)
        spin(hosts, lambda: robot.done and learner.node.version >= 2, timeout_s=90)
    finally:
        for h in hosts:
            h.close()
    assert robot.done and [e["steps"] for e in robot.node.finished] == [8, 8]
    assert 1 not in second.node.skipped and len(second.node.closed) == 1  # episode 0 is the first one's
    assert [e.step.tolist() for e in load_dataset(tmp_path / "bags").episodes] == [list(range(8))] * 2


def test_a_subscriber_that_can_never_match_does_not_hold_the_robot(ros, tmp_path) -> None:
    """`ros2 topic echo --qos-durability transient_local /farl/state` asks for what a volatile writer
    does not offer, so DDS never matches it: the robot's wait for its recorder leaves it out."""
    from rclpy.node import Node as RosNode
    from rclpy.qos import DurabilityPolicy, QoSProfile

    from farl_common.runtime.rclpy_host import RclpyHost
    from farl_interfaces.msg import TaskState

    robot = RclpyHost(RobotNode, params=RobotParams(episodes=1, wait_for_recorder="episode_recorder"))
    echo = RosNode("echo")
    echo.create_subscription(
        TaskState, "state", lambda m: None, QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    )
    recorder = RclpyHost(EpisodeRecorderNode, params=RecorderParams(out_dir=str(tmp_path)))
    hosts = [robot, recorder]
    try:
        end = time.monotonic() + 20
        while not robot.node.ctx.delivers_to("state", "episode_recorder") and time.monotonic() < end:
            rclpy.spin_once(echo, timeout_sec=0.05)
            spin(hosts, lambda: False, timeout_s=0.05)
        graph = robot.ros_node.get_subscriptions_info_by_topic("/state")
        assert {i.node_name for i in graph} == {"echo", "episode_recorder"}
        assert robot.publishers["state"].get_subscription_count() == 1  # the recorder only
        assert robot.node.ctx.delivers_to("state", "episode_recorder")
        assert not robot.node.ctx.delivers_to("state", "echo")
    finally:
        echo.destroy_node()
        for h in hosts:
            h.close()


def test_a_node_logs_at_every_severity_through_one_method(ros, tmp_path) -> None:
    """rclpy refuses two severities from one call site; a camera coming back after a stall (a warning,
    then an info line) raised inside the perception node's timer before `log` had one site each."""
    from farl_common.runtime.rclpy_host import RclpyHost

    host = RclpyHost(EpisodeRecorderNode, params=RecorderParams(out_dir=str(tmp_path)))
    try:
        for level in ("warning", "info", "error", "debug", "info", "warning"):
            host.node.log(level, f"a {level} line")
    finally:
        host.close()


def test_parameters_are_read_only_and_floats_take_integer_literals(ros) -> None:
    from rclpy.parameter import Parameter

    from farl_common.runtime.rclpy_host import RclpyHost

    host = RclpyHost(RobotNode, params=RobotParams(episodes=0))
    try:
        (result,) = host.ros_node.set_parameters([Parameter("rate_hz", value=10.0)])
        assert not result.successful and "read-only" in result.reason
        assert host.node.params.rate_hz == 5.0
    finally:
        host.close()
    for value, code, words in (("10", 0, None), ("fast", 1, "parameter rate_hz: expected a number")):
        proc = subprocess.Popen(
            [sys.executable, "-m", "farl_robot.robot_node", "--ros-args", "-p", f"rate_hz:={value}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
            env=os.environ.copy(),
        )
        try:
            time.sleep(4)
            if code == 0:
                assert proc.poll() is None, proc.communicate()[1]  # running at 10.0 Hz
                os.killpg(proc.pid, __import__("signal").SIGINT)
            _, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == code, err
        assert "Traceback" not in err
        if words:
            assert words in err.strip().splitlines()[-1]


def test_replay_publishes_a_bag_on_its_topics_in_time_order(ros, tmp_path) -> None:
    """`farl replay --ros`: a subscriber sees every state of the bag, in step order, and the episode
    events with farl's transient-local QoS."""
    import threading

    from rclpy.executors import SingleThreadedExecutor

    from farl_bringup.replay_ros import publish_bags
    from farl_common.runtime.rclpy_host import RclpyMessages, qos_profile

    cfg = task_config("fragile_push_wall")
    cfg.policy.kind = "scripted"
    cfg.robot.horizon_steps = 12
    cfg.recorder.out_dir = str(tmp_path / "bags")
    run_sim(cfg, episodes=1, seed=0)
    msgs = RclpyMessages()
    node = rclpy.create_node("replay_listener")
    steps, events = [], []
    node.create_subscription(
        msgs.cls("farl_interfaces/msg/TaskState"), "/farl/state", lambda m: steps.append(m.step), 50
    )
    node.create_subscription(
        msgs.cls("farl_interfaces/msg/EpisodeEvent"), "/farl/episode_event", events.append, qos_profile("events")
    )
    ex = SingleThreadedExecutor()
    ex.add_node(node)
    stop = threading.Event()
    spinner = threading.Thread(target=lambda: [ex.spin_once(timeout_sec=0.05) for _ in iter(stop.is_set, True)])
    spinner.start()
    try:
        time.sleep(2.0)  # discovery
        sent = publish_bags(tmp_path / "bags", speed=4.0)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (len(steps) < 13 or len(events) < 2):
            time.sleep(0.1)
    finally:
        stop.set()
        spinner.join()
        node.destroy_node()
    assert sent == 13 + 12 + 12 + 2  # states, actions, feedback, start and end
    assert steps == list(range(13)) and len(events) == 2


def test_camera_topics_over_dds_feed_perception_and_the_recorder(ros, tmp_path) -> None:
    """A sim episode recorded with its camera frames, played over DDS: the perception node on the
    camera topics (message_filters, or farl's synchroniser where it is not installed) finds the puck,
    publishes the debug image, and a recorder with record_images writes the frames into a new bag."""
    import threading

    from rclpy.executors import SingleThreadedExecutor

    from farl_bringup.graph_spec import SIM_HSV
    from farl_bringup.replay_ros import publish_bags
    from farl_common.runtime.rclpy_host import RclpyHost, RclpyMessages, qos_profile
    from farl_perception.calibration import save_calibration
    from farl_perception.image_messages import decode_color
    from farl_perception.mujoco_source import CAMERA_POS, CAMERA_TARGET, look_at
    from farl_perception.perception_node import PerceptionNode, PerceptionParams
    from farl_perception.recorded_sources import read_bag_frames

    cfg = task_config("fragile_push_wall")
    cfg.policy.kind = "scripted"
    cfg.perception.enabled, cfg.perception.source, cfg.perception.record_images = True, "mujoco", True
    cfg.perception.width_px, cfg.perception.height_px = 160, 120
    cfg.robot.horizon_steps = 12
    cfg.recorder.out_dir = str(tmp_path / "bags")
    bag = run_sim(cfg, episodes=1, seed=0).bags[0]
    recorded = list(read_bag_frames(bag))
    calib = save_calibration(tmp_path / "cam.yaml", look_at(CAMERA_POS, CAMERA_TARGET), 0.0, "sim camera")
    lo, hi, offset = SIM_HSV["object"]
    perception = RclpyHost(
        PerceptionNode,
        params=PerceptionParams(
            source="topics",
            object_names=["object"],
            hsv_lo=list(lo),
            hsv_hi=list(hi),
            depth_offset_m=[offset],
            calibration=str(calib),
            rate_hz=10.0,
        ),
        remap=CANONICAL,
    )
    recorder = RclpyHost(
        EpisodeRecorderNode, params=RecorderParams(out_dir=str(tmp_path / "dds"), record_images=True), remap=CANONICAL
    )
    msgs = RclpyMessages()
    listener = rclpy.create_node("perception_listener")
    objects, debug = [], []
    listener.create_subscription(
        msgs.cls("farl_interfaces/msg/ObjectPositions"), CANONICAL["objects"], objects.append, qos_profile("sensor")
    )
    listener.create_subscription(
        msgs.cls("sensor_msgs/msg/Image"), CANONICAL["debug_image"], debug.append, qos_profile("sensor")
    )
    ex = SingleThreadedExecutor()
    for n in (perception.ros_node, recorder.ros_node, listener):
        ex.add_node(n)
    stop = threading.Event()
    spinner = threading.Thread(target=lambda: [ex.spin_once(timeout_sec=0.02) for _ in iter(stop.is_set, True)])
    spinner.start()
    try:
        time.sleep(2.0)  # discovery
        publish_bags(bag, speed=0.5)  # the camera's pace, not the sim's
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not recorder.node.closed:
            time.sleep(0.1)
    finally:
        stop.set()
        spinner.join()
        for h in (perception, recorder):
            h.close()
        listener.destroy_node()
    assert perception.node.frames >= len(recorded) // 2 and perception.node.bad_images == 0
    seen = [np.asarray(m.positions_m) for m in objects if m.confidence[0] > 0]
    ep_states = load_dataset(bag, strict=True).obs[:, OBJECT]
    assert seen and min(np.linalg.norm(ep_states - seen[-1], axis=1)) < 0.01
    assert debug and decode_color(debug[-1]).shape == (120, 160, 3)
    assert recorder.node.closed, "the recorder wrote no bag from the replayed episode"
    again = list(read_bag_frames(recorder.node.closed[0]))
    assert len(again) >= len(recorded) // 2
    np.testing.assert_array_equal(again[-1].frame.color, recorded[-1].frame.color)


def test_a_robot_node_that_cannot_start_says_why_in_one_line_and_exits_1(tmp_path) -> None:
    args = [
        sys.executable,
        "-m",
        "farl_robot.robot_node",
        "--ros-args",
        "-p",
        "backend:=franky",
        "-p",
        "robot_ip:=127.0.0.9",
        "-p",
        "workspace_min_m:=[0.2, -0.3, 0.05]",
        "-p",
        "workspace_max_m:=[0.7, 0.3, 0.6]",
    ]
    out = subprocess.run(args, capture_output=True, text=True, timeout=120, env=os.environ.copy())
    assert out.returncode == 1, out.stderr
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("[robot] no robot at 127.0.0.9:") or "franky is not installed" in lines[-1]
    assert "Traceback" not in out.stderr


def test_the_perception_node_without_a_camera_says_why_in_one_line(tmp_path) -> None:
    import numpy as np

    from farl_perception.calibration import save_calibration

    calib = save_calibration(tmp_path / "cam.yaml", np.eye(4), 0.0, "test")
    # Colours come from the task config (perception.hsv_lo/hsv_hi): a node started on its own is told them.
    yellow = ["-p", "hsv_lo:=[22,120,120]", "-p", "hsv_hi:=[35,255,255]", "-p", "depth_offset_m:=[0.02]"]
    for extra, words in (
        (["-p", f"calibration:={tmp_path / 'missing.yaml'}"], "calibration file not found"),
        ([*yellow, "-p", f"calibration:={calib}"], "no RealSense camera"),
        (["-p", f"calibration:={calib}"], "perception: 1 objects need 3 hsv_lo and 3 hsv_hi values each"),
    ):
        args = [sys.executable, "-m", "farl_perception.perception_node", "--ros-args", *extra]
        out = subprocess.run(args, capture_output=True, text=True, timeout=120, env=os.environ.copy())
        assert out.returncode == 1, out.stderr
        lines = [line for line in out.stderr.splitlines() if line.strip()]
        assert lines[-1].startswith("[perception] ") and words in lines[-1], lines[-1]
        assert "Traceback" not in out.stderr


@pytest.mark.parametrize("inherited", ["default", "ignored"])
def test_sigint_to_the_process_group_ends_the_robot_node_cleanly(inherited: str) -> None:
    """What a supervisor (ros2 launch, Ctrl-C in a terminal) does: exit 0, no traceback, the arm stopped.
    Also where the node inherits SIGINT ignored, as every process of a shell script's background job
    does (`ros2 launch ... &`): it must not wait for launch's SIGTERM."""
    import signal

    def inherit() -> None:
        if inherited == "ignored":
            signal.signal(signal.SIGINT, signal.SIG_IGN)

    proc = subprocess.Popen(
        [sys.executable, "-m", "farl_robot.robot_node", "--ros-args", "-p", "episodes:=0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env=os.environ.copy(),
        preexec_fn=inherit,
    )
    try:
        time.sleep(6)  # started, an episode under way
        assert proc.poll() is None, proc.communicate()[1]
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err + out and "KeyboardInterrupt" not in err + out


def test_the_shield_publishes_its_imagined_path_as_a_marker_array(ros, tiny_run) -> None:
    """For RViz2 and Foxglove: on each decision of the world-model critic, a MarkerArray on
    /farl/shield/imagined_path in the state's frame, whose path starts at the state's hand and runs
    H steps ahead, one colour per vertex, with C_H and eps_safe written above the hand."""
    from farl_common import messages as M
    from farl_common.obs_layout import HAND, OBS_DIM
    from farl_common.runtime.rclpy_host import RclpyHost, RclpyMessages
    from farl_safety_shield.shield_node import ShieldNode, ShieldParams

    shield = RclpyHost(ShieldNode, params=ShieldParams(run_dir=str(tiny_run), horizon_steps=4), remap=CANONICAL)
    msgs = RclpyMessages()
    node = rclpy.create_node("marker_listener")
    got = []
    node.create_subscription(
        msgs.cls("visualization_msgs/msg/MarkerArray"), "/farl/shield/imagined_path", got.append, 10
    )
    state_pub = node.create_publisher(msgs.cls("farl_interfaces/msg/TaskState"), "/farl/state", 10)
    action_pub = node.create_publisher(msgs.cls("farl_interfaces/msg/ActionCommand"), "/farl/action/proposed", 10)
    obs = np.zeros(OBS_DIM)
    obs[HAND] = [0.05, 0.6, 0.2]
    from rclpy.executors import SingleThreadedExecutor

    ex = SingleThreadedExecutor()
    ex.add_node(node)
    ex.add_node(shield.ros_node)
    try:
        end = time.monotonic() + 30
        step = 0
        while not got and time.monotonic() < end:  # until discovery lets the pair through
            state_pub.publish(
                M.make_state(msgs, t_ns=0, task="fragile_push_wall", episode=0, step=step, layout=[], values=obs)
            )
            action_pub.publish(M.make_action(msgs, t_ns=0, episode=0, step=step, values=np.zeros(4)))
            step += 1
            for _ in range(10):
                ex.spin_once(timeout_sec=0.02)
    finally:
        ex.remove_node(node)
        ex.remove_node(shield.ros_node)
        node.destroy_node()
        shield.close()
    assert got, "no MarkerArray from the shield"
    markers = {m.ns: m for m in got[0].markers}
    assert set(markers) == {"imagined_path", "imagined_states", "risk"}
    path = markers["imagined_path"]
    assert path.header.frame_id == "world" and path.type == path.LINE_STRIP
    assert len(path.points) == len(path.colors) == 4 + 1
    assert [path.points[0].x, path.points[0].y, path.points[0].z] == pytest.approx(obs[HAND].tolist())
    assert markers["risk"].text.startswith("C_H ") and "eps_safe" in markers["risk"].text
