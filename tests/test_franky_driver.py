"""The franky driver and the robot node against franky-sim: libfranka's protocol on loopback, MuJoCo physics.

Skipped, with the reason, where franky-control or franky-sim is not installed or the simulated
robot cannot start. Robot errors are injected at the driver's boundary (tests/mocks/faulty_robot.py):
franky-sim raises none itself.
"""

from __future__ import annotations

import faulthandler
import gc
import time

import numpy as np
import pytest

from farl_common import typestore as T
from farl_common.runtime.inprocess import InProcessRuntime
from farl_common.runtime.node import Input, Node, NodeError
from farl_robot.driver import RobotError, RobotFault, RobotUnavailable
from farl_robot.panda_kinematics import hand_pose
from farl_robot.real_tasks import PerceivedScene, RealTaskRules
from farl_robot.robot_node import RobotNode, RobotParams
from tests.mocks.faulty_robot import FaultyRobot
from tests.mocks.recording_gripper import RecordingGripper

franky = pytest.importorskip("franky", reason="franky-control not installed (pip install -e '.[robot]')")
franky_sim = pytest.importorskip("franky_sim", reason="franky-sim not installed (pip install -e '.[dev]')")

HOME = [0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785]
TICK_S = 0.2  # 5 Hz, as on the real arm
IP = "127.0.0.1"
HANG_S = 300
"""No test here takes more than about 20 s on a quiet machine."""


@pytest.fixture(scope="module")
def sim_ip():
    from franky_sim.mujoco_simulator import MujocoSimulator

    try:
        sim = MujocoSimulator()
        sim.init()
        sim.add_robot(initial_q=HOME)
        server = franky_sim.SimulationServer(sim, hostname_candidates=[IP])
        server.init()
        server.run_async()
    except Exception as err:  # noqa: BLE001 - any start failure means: this machine cannot run it
        pytest.skip(f"franky-sim could not start here: {type(err).__name__}: {err}")
    yield IP
    server.cleanup()


@pytest.fixture(autouse=True)
def release_connections():
    """libfranka serves one client at a time: drop each test's connection (reference cycles included).
    Tests that connect to franky-sim without the driver get their thread's scheduling back too, so no
    later test of the suite runs at libfranka's realtime priority."""
    from farl_robot.franky_driver import keep_thread_scheduling

    # A starved franky-sim (seen with three CPU-bound processes on two cores) can leave a synchronous
    # motion waiting forever: end the run with every thread's stack instead of hanging CI for hours.
    faulthandler.dump_traceback_later(HANG_S, exit=True)
    try:
        with keep_thread_scheduling():
            yield
    finally:
        faulthandler.cancel_dump_traceback_later()
    gc.collect()


def settings(ip: str, **kw):
    from farl_robot.franky_driver import FrankySettings

    base = {"robot_ip": ip, "home_joints_rad": HOME, "relative_dynamics_factor": 0.3, "realtime_kernel": False}
    return FrankySettings(**{**base, "use_gripper": False, **kw})


def driver(ip: str, faulty: bool = False, connect: bool = True, **kw):
    from farl_robot.franky_driver import FrankyDriver

    made: list[FaultyRobot] = []

    def robot_factory(s):
        r = FaultyRobot(franky.Robot(s.robot_ip, realtime_config=franky.RealtimeConfig.Ignore))
        made.append(r)
        return r

    d = FrankyDriver(settings(ip, **kw), robot_factory=robot_factory if faulty else None)
    if connect:
        d.connect()
    return d, made


def run_deltas(d, deltas) -> None:
    """One delta a tick, each from where the hand is then (as the driver does on the arm). Each motion
    is waited for before the next: a franky-sim starved of CPU (CI's two busy cores) can take longer
    than a tick for 1 cm, and the next delta would start short of the last target (seen: 3.0 and 3.7 cm
    for 4 cm with three CPU-bound processes on two cores)."""
    for delta in deltas:
        d.execute(np.asarray(delta, float), 0.0)
        time.sleep(TICK_S)
        d.robot.join_motion()


def test_the_driver_leaves_its_thread_at_normal_priority(sim_ip) -> None:
    """libfranka raises the connecting thread (and one running a synchronous motion) to SCHED_FIFO 99
    and leaves it there; the driver puts it back, so the node's thread never runs at realtime priority."""
    import os

    before = os.sched_getscheduler(0), os.sched_getparam(0).sched_priority
    raw = franky.Robot(sim_ip, realtime_config=franky.RealtimeConfig.Ignore)
    raised = os.sched_getscheduler(0) != before[0]
    del raw
    gc.collect()
    os.sched_setscheduler(0, before[0], os.sched_param(before[1]))
    d, _ = driver(sim_ip)
    d.home(0)
    assert (os.sched_getscheduler(0), os.sched_getparam(0).sched_priority) == before
    if not raised:
        pytest.skip("libfranka could not raise this thread's priority here (not root): nothing to undo")


def test_home_matches_the_panda_kinematics(sim_ip) -> None:
    d, _ = driver(sim_ip)
    hand = d.home(0)
    np.testing.assert_allclose(hand.pos_m, hand_pose(np.array(HOME))[:3, 3], atol=0.002)
    np.testing.assert_allclose(d.hand_pose(), hand_pose(np.array(HOME)), atol=0.002)  # orientation too
    d.close()


def test_base_frame_deltas_land_where_they_should(sim_ip) -> None:
    d, _ = driver(sim_ip)
    start = d.home(0).pos_m
    deltas = [[0, 0, 0.01]] * 4 + [[0.01, 0, 0]] * 3 + [[0, -0.01, 0]] * 3
    run_deltas(d, deltas)
    np.testing.assert_allclose(d.read().pos_m - start, np.sum(deltas, axis=0), atol=0.003)
    d.close()


def test_z_up_moves_up_whatever_the_gripper_orientation(sim_ip) -> None:
    rotated = [*HOME[:6], HOME[6] + 1.4]
    d, _ = driver(sim_ip, home_joints_rad=rotated)
    start = d.home(0).pos_m
    run_deltas(d, [[0, 0, 0.01]] * 4)
    moved = d.read().pos_m - start
    assert moved[2] == pytest.approx(0.04, abs=0.003)
    assert np.linalg.norm(moved[:2]) < 0.003
    d.close()


def test_unreachable_robot_is_one_clear_line() -> None:
    from farl_robot.franky_driver import FrankyDriver

    d = FrankyDriver(settings("127.0.0.9"))
    with pytest.raises(RobotUnavailable, match=r"^no robot at 127\.0\.0\.9: ") as err:
        d.connect()
    assert "\n" not in str(err.value)


def test_errors_during_homing_are_retried_then_reported(sim_ip) -> None:
    d, made = driver(sim_ip, faulty=True, max_recoveries=2)
    robot = made[0]
    robot.fail_moves = 2  # the homing move and the first retreat fail, the second retreat works
    d.home(0)
    assert robot.calls["recover_from_errors"] == 2
    robot.fail_always = True
    before = d.read().pos_m
    with pytest.raises(RobotFault, match="did not recover after 2 tries"):
        d.home(1)
    np.testing.assert_allclose(d.read().pos_m, before, atol=1e-4)  # nothing moved
    d.close()


class Capture(Node):
    name = "capture"
    inputs = (
        Input("state", T.STATE, "on_state"),
        Input("step_feedback", T.FEEDBACK, "on_feedback"),
        Input("episode_event", T.EVENT, "on_event"),
    )

    def on_start(self) -> None:
        self.states, self.feedback, self.events = [], [], []

    def on_state(self, m) -> None:
        self.states.append(m)

    def on_feedback(self, m) -> None:
        self.feedback.append(m)

    def on_event(self, m) -> None:
        self.events.append(m)


def real_node(sim_ip, rt: InProcessRuntime, faulty=False, **params):
    d, made = driver(sim_ip, faulty=faulty, connect=False)  # the node connects
    rules = RealTaskRules(
        objects=["puck"],
        goal_m=[0.5, 0.2, 0.02],
        success_radius_m=0.05,
        object_timeout_s=0.6,
        hazard="wall",
        hazard_min_m=[0.6, -0.3, 0.0],
        hazard_max_m=[0.62, 0.3, 0.1],
    )
    home = hand_pose(np.array(HOME))[:3, 3]
    p = RobotParams(
        task="franka_fragile_push_wall",
        backend="franky",
        robot_ip=sim_ip,
        episodes=2,
        horizon_steps=30,
        realtime_kernel=False,
        use_gripper=False,
        workspace_min_m=list(home - np.array([0.2, 0.2, 0.2])),
        workspace_max_m=list(home + np.array([0.2, 0.2, 0.03])),  # 3 cm above home: the top face is close
        **params,
    )
    node = rt.add(RobotNode(p, driver=(d, PerceivedScene(rules))), {})
    cap = rt.add(Capture(), {})
    return node, cap, made


def see_puck(rt: InProcessRuntime, node: RobotNode, xyz=(0.45, 0.0, 0.02), age_s: float = 0.0) -> None:
    from farl_common.messages import header

    msg = rt.msgs.new(
        T.OBJECTS,
        header=header(rt.msgs, rt.now_ns, "base"),
        names=["puck"],
        positions_m=np.array(xyz, float),
        confidence=np.array([0.9]),
        age_s=np.array([age_s]),
    )
    node.on_objects(msg)


def tick(rt: InProcessRuntime, node: RobotNode, action=None, cap=None) -> None:
    """One control tick on the wall clock: answer the latest state with `action`, then tick."""
    from farl_common.messages import make_action

    if action is not None and cap.states:
        s = cap.states[-1]
        node.on_action(make_action(rt.msgs, t_ns=rt.now_ns, episode=s.episode, step=s.step, values=np.array(action)))
    node.on_tick()
    rt.run(until_s=rt.now_ns / 1e9)  # deliver what the node published
    time.sleep(TICK_S)


def test_the_envelope_keeps_the_real_hand_inside_the_box(sim_ip) -> None:
    with InProcessRuntime() as rt:
        node, cap, _ = real_node(sim_ip, rt)
        see_puck(rt, node)
        tick(rt, node)  # homes, starts episode 0, sends its first state
        assert [e.event for e in cap.events] == [0] and len(cap.states) == 1
        for _ in range(8):  # 8 cm up asked, 3 cm allowed
            see_puck(rt, node)
            tick(rt, node, [0, 0, 1, 0], cap)
        node.driver.robot.join_motion()
        z = node.driver.read().pos_m[2]
        assert z <= node.params.workspace_max_m[2] + 0.002
        assert z >= node.params.workspace_max_m[2] - 0.01  # it did go up to the face
        assert len(cap.feedback) == 8 and cap.states[-1].step == 8


def test_stale_perception_holds_the_arm(sim_ip) -> None:
    with InProcessRuntime() as rt:
        node, cap, _ = real_node(sim_ip, rt)
        tick(rt, node)  # no puck seen yet: the episode starts, but no state goes out
        assert len(cap.states) == 0 and any("no position of 'puck'" in r.text for r in rt.logs)
        see_puck(rt, node)
        tick(rt, node)
        assert len(cap.states) == 1
        see_puck(rt, node, age_s=1.0)  # perception lost the puck a second ago (limit 0.6 s)
        before = node.driver.read().pos_m
        tick(rt, node, [1, 0, 0, 0], cap)
        tick(rt, node)
        node.driver.robot.join_motion()
        moved = np.linalg.norm(node.driver.read().pos_m - before)
        assert moved < 0.001
        assert len(cap.feedback) == 0 and any("last seen 1.00 s ago" in r.text for r in rt.logs)
        see_puck(rt, node)  # perception is back: the held action runs, the step completes
        tick(rt, node)
        assert len(cap.feedback) == 1 and cap.states[-1].step == 1


@pytest.mark.parametrize(
    ("fault", "said"), [("fail_moves", "reflex"), ("fail_polls", "Motion planner failed")], ids=["reflex", "planner"]
)
def test_a_robot_error_aborts_the_episode_and_recovers(sim_ip, fault, said) -> None:
    """A reflex (`franky.ControlException` from the move) and a planner failure (a plain RuntimeError from
    the last motion, as franky raises it) both abort the episode and retreat home."""
    with InProcessRuntime() as rt:
        node, cap, made = real_node(sim_ip, rt, faulty=True)
        see_puck(rt, node)
        tick(rt, node)
        setattr(made[0], fault, 1)  # the next move fails, or the next poll of the running motion
        see_puck(rt, node)
        tick(rt, node, [1, 0, 0, 0], cap)
        assert [(e.event, e.outcome) for e in cap.events] == [(0, ""), (1, "aborted")]
        assert made[0].calls["recover_from_errors"] == 1
        assert any("episode 0 aborted: robot error during motion" in r.text and said in r.text for r in rt.logs)
        see_puck(rt, node)
        tick(rt, node)  # the next episode starts normally
        assert cap.events[-1].event == 0 and cap.events[-1].episode == 1 and not node.halted


def test_a_robot_that_does_not_recover_stays_stopped_and_says_why(sim_ip) -> None:
    with InProcessRuntime() as rt:
        node, cap, made = real_node(sim_ip, rt, faulty=True)
        see_puck(rt, node)
        tick(rt, node)
        made[0].fail_always = True
        tick(rt, node, [1, 0, 0, 0], cap)
        assert node.halted and node.exit_code == 1 and rt.shutdown_requested
        assert node.finished[-1]["outcome"] == "aborted"
        errors = [r.text for r in rt.logs if r.level == "error"]
        assert any("did not recover after 3 tries" in e for e in errors)
        moves = made[0].calls["move"]
        tick(rt, node, [1, 0, 0, 0], cap)
        assert made[0].calls["move"] == moves  # a halted node commands nothing


def test_shutdown_stops_the_arm(sim_ip) -> None:
    d, _ = driver(sim_ip, relative_dynamics_factor=0.05)
    start = d.home(0).pos_m
    far_below = franky.Affine(start + np.array([0.0, 0.0, -0.25]), d.quaternion)
    d.robot.move(franky.CartesianMotion(far_below), asynchronous=True)
    time.sleep(0.5)
    d.close()
    time.sleep(0.3)
    r = franky.Robot(sim_ip, realtime_config=franky.RealtimeConfig.Ignore)
    a = np.asarray(r.current_cartesian_state.pose.end_effector_pose.translation)
    time.sleep(0.5)
    b = np.asarray(r.current_cartesian_state.pose.end_effector_pose.translation)
    assert np.linalg.norm(b - a) < 0.002, "the arm kept moving after close()"
    assert start[2] - b[2] < 0.2, "the motion ran to its end"


def test_the_robot_node_refuses_a_box_without_the_home_pose() -> None:
    home = hand_pose(np.array(HOME))[:3, 3]
    p = RobotParams(
        backend="franky",
        robot_ip="127.0.0.9",
        workspace_min_m=list(home + np.array([0.05, -0.2, -0.2])),
        workspace_max_m=list(home + np.array([0.3, 0.2, 0.2])),
    )
    with InProcessRuntime() as rt, pytest.raises(NodeError, match="outside the workspace box"):
        rt.add(RobotNode(p), {})


def test_gripper_effort_closes_and_opens_the_hand(sim_ip) -> None:
    d, _ = driver(sim_ip, use_gripper=True, gripper_speed_mps=0.1)
    assert d.home(0).gripper_open > 0.9  # homing opens the hand
    # 0.8 s of travel at 0.1 m/s; read only once it is surely over, as franky-sim on busy cores is slow
    d.execute(np.zeros(3), 1.0)
    time.sleep(3.0)
    assert d.read().gripper_open < 0.2
    d.execute(np.zeros(3), 0.3)  # inside the dead band: the hand stays as it is
    time.sleep(0.3)
    assert d.read().gripper_open < 0.2
    d.execute(np.zeros(3), -1.0)
    time.sleep(3.0)
    assert d.read().gripper_open > 0.9
    d.close()


def driver_with_recording_gripper(ip: str):
    """A connected driver whose gripper is a real `franky.Gripper` wrapped in `RecordingGripper`."""
    from farl_robot.franky_driver import FrankyDriver

    made: list[RecordingGripper] = []

    def gripper_factory(s):
        made.append(RecordingGripper(franky.Gripper(s.robot_ip)))
        return made[-1]

    d = FrankyDriver(settings(ip, use_gripper=True, gripper_speed_mps=0.1), gripper_factory=gripper_factory)
    d.connect()
    return d, made[0]


def test_a_gripper_effort_that_flips_mid_move_waits_for_the_move_without_stalling_the_tick(sim_ip) -> None:
    d, g = driver_with_recording_gripper(sim_ip)
    d.home(0)
    d.execute(np.zeros(3), 1.0)  # close: 0.8 s of travel
    d.execute(np.zeros(3), -1.0)  # open, while the hand still closes: deferred, not started over it
    assert g.widths == [0.0]
    deadline = time.monotonic() + 60
    while len(g.widths) < 2 and time.monotonic() < deadline:
        time.sleep(TICK_S)
        d.execute(np.zeros(3), 0.0)  # dead band: the open asked for stays wanted
    assert g.widths == [0.0, pytest.approx(g.max_width)]
    assert g.last.wait(60)
    assert d.read().gripper_open > 0.9
    d.close()


def test_a_step_shorter_than_the_arms_repeatability_starts_no_motion(sim_ip) -> None:
    """franky's planner can fail on a target this close to an arm that barely moves (seen with the
    fingers moving): such a step is not sent at all."""
    from farl_robot.franky_driver import MIN_STEP_M

    d, made = driver(sim_ip, faulty=True)
    d.home(0)
    moves = made[0].calls["move"]
    d.execute(np.zeros(3), 0.0)
    d.execute(np.full(3, 0.4 * MIN_STEP_M), 0.0)
    assert made[0].calls["move"] == moves
    d.execute(np.array([2 * MIN_STEP_M, 0.0, 0.0]), 0.0)
    assert made[0].calls["move"] == moves + 1
    d.close()


def test_a_gripper_error_is_a_robot_error(sim_ip) -> None:
    """franky's `GripperException` is not a `franky.Exception`: it must still reach the node as a `RobotError`."""
    d, g = driver_with_recording_gripper(sim_ip)
    g.fail_next = True
    with pytest.raises(RobotError, match=r"gripper error: .*grasp"):
        d.home(0)  # homing opens the hand, synchronously
    d.home(0)
    g.fail_next = True
    with pytest.raises(RobotError, match=r"gripper error: .*grasp"):
        d.execute(np.zeros(3), 1.0)
    d.close()


def test_the_real_safe_reach_rules_run_an_episode_against_franky_sim(sim_ip) -> None:
    """config/franka_safe_reach.yaml's scene on the arm: the obstacles fill the state's object slots and
    the perceived target its goal; the hand reaching the target ends the episode with reward 1, and an
    obstacle near the hand costs 1 that step without ending it."""
    from pathlib import Path

    from farl_bringup.graph_spec import graph_spec
    from farl_common import messages as M
    from farl_common.config import load_config
    from farl_common.messages import header
    from farl_common.obs_layout import field_slice
    from farl_robot.robot_node import real_rules

    goal_slot = field_slice("goal_pos_m")
    cfg = load_config(Path(__file__).resolve().parents[1] / "config" / "franka_safe_reach.yaml")
    cfg.robot.robot_ip = "172.16.0.2"
    params = next(s for s in graph_spec(cfg) if s.executable == "robot_node").params
    rules = real_rules(params)
    assert rules.reach_target == "target" and rules.hazard == "obstacles"
    with InProcessRuntime() as rt:
        d, _ = driver(sim_ip, connect=False)
        home = hand_pose(np.array(HOME))[:3, 3]
        p = RobotParams(
            task="franka_safe_reach", backend="franky", robot_ip=sim_ip, episodes=2, horizon_steps=30,
            realtime_kernel=False, use_gripper=False,
            workspace_min_m=list(home - np.array([0.2, 0.2, 0.2])), workspace_max_m=list(home + 0.2),
        )  # fmt: skip
        node = rt.add(RobotNode(p, driver=(d, PerceivedScene(rules))), {})
        cap = rt.add(Capture(), {})

        def see(obstacle_a, obstacle_b, target):
            xyz = np.array([obstacle_a, obstacle_b, target], float)
            node.on_objects(
                rt.msgs.new(
                    T.OBJECTS, header=header(rt.msgs, rt.now_ns, "base"), names=list(cfg.scene.objects),
                    positions_m=xyz.reshape(-1), confidence=np.full(3, 0.9), age_s=np.zeros(3),
                )
            )  # fmt: skip

        near, far = home + np.array([0.0, 0.04, 0.0]), home + np.array([0.0, 0.3, 0.0])
        target = home + np.array([0.025, -0.15, 0.0])
        see(near, far, target)
        tick(rt, node)
        state = M.state_values(cap.states[-1])
        np.testing.assert_allclose(state[goal_slot], target, atol=1e-6)
        see(near, far, target)
        tick(rt, node, [0, -1, 0, 0], cap)  # away from the near obstacle, a centimetre
        node.driver.robot.join_motion()
        first = cap.feedback[-1]
        assert first.cost == 1.0 and not first.terminated  # the hand is still at the obstacle: it goes on
        target = node.driver.read().pos_m + np.array([0.02, 0.0, 0.0])  # now within reach of the hand
        see(far, far + np.array([0.1, 0.0, 0.0]), target)
        tick(rt, node, [0, 0, 0, 0], cap)
        last = cap.feedback[-1]
        assert last.terminated and last.reward == 1.0 and last.success and last.cost == 0.0
