"""The node runtimes: a tiny graph (timer publisher, approximate-time synced subscriber, recorder)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from rosbags.highlevel import AnyReader

from farl_common import messages as M
from farl_common.runtime import Input, Node, Output, SyncInput, Timer
from farl_common.runtime.inprocess import InProcessRuntime
from farl_common.runtime.node import NodeError
from farl_common.runtime.rclpy_host import params_from_values, to_ros_value
from farl_common.runtime.sync import ApproximateTimeSync

POINT = "geometry_msgs/msg/PointStamped"
VEC = "geometry_msgs/msg/Vector3Stamped"


@dataclass
class TickerParams:
    rate_hz: float = 10.0
    jitter_ms: list[float] = field(default_factory=lambda: [0.0, 30.0, -20.0, 45.0, 80.0])


class Ticker(Node):
    """Publishes a point and a vector each tick; the vector's stamp is off by a jitter."""

    name = "ticker"
    Params = TickerParams
    outputs = (Output("a", POINT), Output("b", VEC))
    timers = (Timer("tick", "rate_hz"),)

    def on_start(self) -> None:
        self.n = 0

    def tick(self) -> None:
        t = self.now_ns()
        jitter = self.params.jitter_ms[self.n % len(self.params.jitter_ms)]
        pt = self.msgs.new("geometry_msgs/msg/Point", x=float(self.n), y=0.0, z=0.0)
        self.publish("a", self.msgs.new(POINT, header=M.header(self.msgs, t), point=pt))
        v = self.msgs.new("geometry_msgs/msg/Vector3", x=float(self.n), y=0.0, z=0.0)
        self.publish("b", self.msgs.new(VEC, header=M.header(self.msgs, t + int(jitter * 1e6)), vector=v))
        self.n += 1


class Pairer(Node):
    name = "pairer"
    inputs = (SyncInput(("a", "b"), (POINT, VEC), "on_pair", slop_s=0.05), Input("a", POINT, "on_a"))

    def on_start(self) -> None:
        self.pairs: list[tuple[int, int, int]] = []
        self.a_seen = 0

    def on_pair(self, a: Any, b: Any) -> None:
        self.pairs.append((self.now_ns(), int(a.point.x), int(b.vector.x)))

    def on_a(self, a: Any) -> None:
        self.a_seen += 1
        self.log("info", f"a {int(a.point.x)}")


def run_graph(tmp_path=None, until_s: float = 1.0, latency_s: float = 0.0):
    rt = InProcessRuntime(latency_s=latency_s, record_to=tmp_path / "all" if tmp_path else None)
    rt.add(Ticker(), {"a": "/sensors/a", "b": "/sensors/b"})
    pairer = rt.add(Pairer(), {"a": "/sensors/a", "b": "/sensors/b"})
    rt.run(until_s=until_s)
    rt.close()
    return rt, pairer


def test_timer_and_sync_pair_within_slop():
    rt, pairer = run_graph()
    assert pairer.a_seen == 10  # first tick after one period, as rclpy timers do
    paired = [(a, b) for _, a, b in pairer.pairs]
    # b is late by 0, 30, -20, 45, 80 ms in turn: b4 (at 580 ms) misses a4 (500 ms) but is within the
    # 50 ms slop of a5 (600 ms), which takes it; b5 then has no partner left, as in message_filters.
    assert paired == [(0, 0), (1, 1), (2, 2), (3, 3), (5, 4), (6, 6), (7, 7), (8, 8)]
    assert rt.now_ns == 1_000_000_000


def test_runs_are_deterministic():
    a, pa = run_graph()
    b, pb = run_graph()
    assert pa.pairs == pb.pairs
    assert [(r.t_ns, r.node, r.text) for r in a.logs] == [(r.t_ns, r.node, r.text) for r in b.logs]


def test_latency_delays_delivery():
    _, pairer = run_graph(latency_s=0.01)
    assert pairer.pairs[0][0] == 110_000_000


def test_recording_every_topic(tmp_path):
    run_graph(tmp_path)
    with AnyReader([tmp_path / "all"]) as reader:
        counts = {c.topic: c.msgcount for c in reader.connections}
    assert counts == {"/sensors/a": 10, "/sensors/b": 10}


def test_publishing_the_wrong_type_is_caught():
    class Wrong(Node):
        name = "wrong"
        outputs = (Output("a", POINT),)
        timers = ()

    rt = InProcessRuntime()
    node = rt.add(Wrong())
    with pytest.raises(TypeError, match="PointStamped"):
        node.publish("a", node.msgs.new("std_msgs/msg/UInt32", data=1))
    with pytest.raises(KeyError, match="no output"):
        node.publish("b", node.msgs.new("std_msgs/msg/UInt32", data=1))


def test_topic_type_conflict_is_caught():
    class Other(Node):
        name = "other"
        inputs = (Input("a", VEC, "cb"),)

        def cb(self, msg: Any) -> None:
            pass

    rt = InProcessRuntime()
    rt.add(Ticker(), {"a": "/x"})
    with pytest.raises(TypeError, match="/x carries"):
        rt.add(Other(), {"a": "/x"})


def test_approximate_sync_unit():
    f = M.TypestoreFactory()
    got = []
    sync = ApproximateTimeSync(2, 0.05, lambda a, b: got.append((M.stamp_ns(a), M.stamp_ns(b))), queue_size=3)

    def h(ms: int) -> Any:
        return f.new(
            "std_msgs/msg/Header", stamp=f.new("builtin_interfaces/msg/Time", sec=0, nanosec=ms * 10**6), frame_id=""
        )

    class Msg:
        def __init__(self, ms: int) -> None:
            self.header = h(ms)

    sync.add(0, Msg(0))
    sync.add(1, Msg(40))
    sync.add(1, Msg(300))
    sync.add(0, Msg(100))
    sync.add(0, Msg(290))
    assert got == [(0, 40_000_000), (290_000_000, 300_000_000)]
    with pytest.raises(ValueError):
        ApproximateTimeSync(1, 0.1, print)


def test_rclpy_value_and_param_conversion_without_ros():
    assert to_ros_value(np.array([1.0, 2.0])) == [1.0, 2.0]
    assert to_ros_value(np.float32(2.5)) == 2.5 and to_ros_value("x") == "x"
    p = params_from_values(TickerParams, {"rate_hz": 5, "jitter_ms": (1.0, 2.0)})
    assert p.rate_hz == 5.0 and isinstance(p.rate_hz, float) and p.jitter_ms == [1.0, 2.0]


def test_ros_parameters_are_held_to_the_config_schema():
    """A node's Params extends its config section, so `-p` values meet the config file's checks."""
    from farl_robot.robot_node import RobotParams
    from farl_teleop.teleop_node import TeleopParams

    with pytest.raises(NodeError, match=r"parameter max_step_m: 0.2 is out of range \[0.0, 0.05\]"):
        params_from_values(RobotParams, {"max_step_m": 0.2})
    with pytest.raises(NodeError, match=re.escape("parameter scene_hazard: must be one of 'none' | 'wall'")):
        params_from_values(RobotParams, {"scene_hazard": "lava"})
    with pytest.raises(NodeError, match="parameter device: must be one of"):
        params_from_values(TeleopParams, {"device": "joystick"})
    ok = params_from_values(RobotParams, {"max_step_m": 0.02, "workspace_min_m": (-0.4, 0.4, 0.05)})
    assert ok.max_step_m == 0.02 and ok.workspace_min_m == [-0.4, 0.4, 0.05]


def test_node_params_made_in_code_are_held_to_the_same_schema():
    """Params built in code (the in-process runtime, a test, a script) meet the same checks as a config
    file and ROS parameters, when the node is made: the node needs no checks of its own."""
    from farl_robot.robot_node import RobotNode, RobotParams
    from farl_teleop.teleop_node import TeleopNode, TeleopParams

    with pytest.raises(NodeError, match="teleop: device: must be one of"):
        TeleopNode(TeleopParams(device="joystick"))
    with pytest.raises(NodeError, match="teleop: on_unplug: must be one of"):
        TeleopNode(TeleopParams(on_unplug="maybe"))
    with pytest.raises(NodeError, match=r"robot: max_step_m: 0.2 is out of range"):
        RobotNode(RobotParams(max_step_m=0.2))
    assert TeleopNode(TeleopParams(device="scripted")).params.device == "scripted"


def test_each_node_params_is_its_config_section():
    """One default per setting: a section's field reaches the node's parameters with the same default
    and doc, and the graph fills it from the config by name."""
    import dataclasses

    from farl_bringup.graph_spec import perception_params, robot_params, teleop_params
    from farl_common.config import PerceptionConfig, RobotConfig, SceneConfig, TeleopConfig, config_from_dict
    from farl_perception.perception_node import PerceptionParams
    from farl_robot.robot_node import RobotParams
    from farl_teleop.teleop_node import TeleopParams

    pairs = [(RobotConfig, RobotParams, ""), (SceneConfig, RobotParams, "scene_"), (TeleopConfig, TeleopParams, "")]
    pairs.append((PerceptionConfig, PerceptionParams, ""))
    for section, params, prefix in pairs:
        got = {f.name: f for f in dataclasses.fields(params)}
        for f in dataclasses.fields(section):
            g = got[prefix + f.name]
            assert g.metadata.get("doc") == f.metadata.get("doc") and g.metadata.get("doc"), (section, f.name)
            assert dataclasses.asdict(params())[prefix + f.name] == dataclasses.asdict(section())[f.name]
    cfg = config_from_dict(
        {
            "robot": {"max_step_m": 0.02, "workspace_max_m": [0.4, 0.9, 0.4]},
            "scene": {"success_radius_m": 0.07},
            "teleop": {"gain": 0.5, "axis_map": ["-y", "x", "z"]},
            "perception": {"enabled": True, "source": "mujoco", "max_jump_m": 0.1},
        }
    )
    rp = robot_params(cfg, 1, 0)
    assert rp.max_step_m == 0.02 and rp.workspace_max_m == [0.4, 0.9, 0.4] and rp.scene_success_radius_m == 0.07
    tp = teleop_params(cfg, takeover=False)
    assert tp.gain == 0.5 and tp.axis_map == ["-y", "x", "z"] and tp.axis_map is not cfg.teleop.axis_map
    assert perception_params(cfg).max_jump_m == 0.1
    # every parameter the graph gives a node meets that node's own schema (what RclpyHost checks)
    from farl_bringup.graph_spec import graph_spec
    from farl_common.config import check_fields

    for extra in ({}, {"teleop": {"takeover": True, "device": "scripted"}}, {"policy": {"kind": "learned"}}):
        for spec in graph_spec(config_from_dict({**extra, "perception": {"enabled": True, "source": "mujoco"}})):
            check_fields(spec.params)
    # the teleop node's mode is the graph's: a recording graph records, whatever `takeover:` says
    for kind, takeover, mode in (("teleop", True, "record"), ("scripted", True, "takeover"), ("scripted", False, None)):
        episodes = {"kind": "task" if kind == "teleop" else "online"}
        cfg = config_from_dict({"policy": {"kind": kind}, "teleop": {"takeover": takeover}, "episodes": episodes})
        specs = graph_spec(cfg)
        modes = [spec.params.mode for spec in specs if spec.node_class.__name__ == "TeleopNode"]
        assert modes == ([mode] if mode else []), (kind, takeover, modes)


@pytest.mark.ros
def test_rclpy_host_runs_the_same_node():
    rclpy = pytest.importorskip("rclpy")
    pytest.importorskip("message_filters", reason="message_filters is apt-only (not on PyPI): synced input untested")
    from farl_common.runtime.rclpy_host import RclpyHost

    rclpy.init()
    try:
        ticker = RclpyHost(Ticker)
        pairer = RclpyHost(Pairer)
        from rclpy.executors import SingleThreadedExecutor

        ex = SingleThreadedExecutor()
        ex.add_node(ticker.ros_node)
        ex.add_node(pairer.ros_node)
        for _ in range(60):
            ex.spin_once(timeout_sec=0.05)
        assert pairer.node.a_seen > 0 and pairer.node.pairs
        ticker.close()
        pairer.close()
    finally:
        rclpy.try_shutdown()


def test_node_shutdown_closes_its_resources_even_after_a_fault():
    closed: list[str] = []

    class Resource:
        def __init__(self, name: str, fails: bool = False) -> None:
            self.name, self.fails = name, fails

        def close(self) -> None:
            closed.append(self.name)
            if self.fails:
                raise OSError(f"{self.name} would not close")

    class Holder(Node):
        def on_shutdown(self) -> None:
            closed.append("on_shutdown")
            raise RuntimeError("flush failed")

    node = Holder()
    camera = node.closes(Resource("camera"))
    node.closes(Resource("driver", fails=True))
    assert camera.name == "camera"
    with pytest.raises(OSError, match="driver would not close") as raised:
        node.shutdown()
    assert isinstance(raised.value.__context__, RuntimeError)  # the first fault travels with the last
    assert closed == ["on_shutdown", "driver", "camera"]  # newest first, each one despite the faults
    with pytest.raises(RuntimeError, match="flush failed"):
        node.shutdown()  # a second shutdown closes nothing twice
    assert closed == ["on_shutdown", "driver", "camera", "on_shutdown"]
