"""Real-robot tasks without the arm: their configs, rules on perceived positions, launch arguments,
the operator's failure mark, and FailureBench's Disturbed Push (the sim version of the real task)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from farl_bringup.graph_spec import graph_spec
from farl_bringup.launch_graph import REAL_TASKS, launch_config
from farl_bringup.sim_graph import run_sim
from farl_common import typestore as T
from farl_common.config import ConfigError, config_dir, load_config, task_config
from farl_common.messages import make_action
from farl_common.obs_layout import OBSTACLE_XY
from farl_common.runtime.inprocess import InProcessRuntime
from farl_robot.driver import HandState
from farl_robot.panda_kinematics import hand_pose
from farl_robot.real_tasks import PerceivedScene, RealTaskRules
from farl_robot.robot_node import RobotNode, RobotParams
from farl_robot.scene import StaleState
from farl_sim import make_env
from farl_sim.experts import failure_driver

CONFIGS = config_dir()


@pytest.mark.parametrize("real", sorted(REAL_TASKS.values()))
def test_real_configs_load_and_their_home_pose_is_in_the_box(real) -> None:
    cfg = load_config(CONFIGS / f"{real}.yaml")
    assert cfg.robot.backend == "franky" and cfg.rate_hz == 5.0
    home = hand_pose(np.array(cfg.robot.home_joints_rad))[:3, 3]
    assert np.all(home >= cfg.robot.workspace_min_m) and np.all(home <= cfg.robot.workspace_max_m)
    with pytest.raises(ConfigError, match="robot_ip is empty"):
        graph_spec(cfg)
    cfg.robot.robot_ip = "172.16.0.2"
    robot = next(s for s in graph_spec(cfg) if s.executable == "robot_node")
    assert robot.params.backend == "franky" and robot.params.robot_ip == "172.16.0.2"
    assert robot.params.scene_objects == cfg.scene.objects


def test_a_box_without_the_home_pose_is_one_clear_line() -> None:
    cfg = task_config("franka_fragile_push_wall")
    cfg.robot.robot_ip = "172.16.0.2"
    cfg.robot.workspace_max_m = [0.75, 0.30, 0.15]  # home is at z = 0.21
    with pytest.raises(ConfigError, match=r"franka_fragile_push_wall: the home pose puts the hand at .* outside"):
        graph_spec(cfg)


def test_farl_sim_refuses_a_real_robot_config() -> None:
    cfg = task_config("franka_fragile_push_wall")
    with pytest.raises(ConfigError, match="mode:=real"):
        run_sim(cfg)


def test_launch_arguments() -> None:
    cfg = launch_config("fragile_push_wall", {"mode": "real", "robot_ip": "172.16.0.2", "shield": "q_risk"}, CONFIGS)
    assert cfg.task == "franka_fragile_push_wall" and cfg.robot.robot_ip == "172.16.0.2"
    assert cfg.shield.enabled and cfg.shield.critic == "q_risk"
    cfg = launch_config("disturbed_push", {"shield": "none", "episodes": "7", "policy": "scripted"}, CONFIGS)
    assert cfg.task == "disturbed_push" and cfg.robot.backend == "sim"
    assert not cfg.shield.enabled and cfg.episodes.count == 7 and cfg.policy.kind == "scripted"
    for args, words in [
        ({"mode": "real"}, None),
        ({"mode": "rael"}, "choose sim or real"),
        ({"shield": "magic"}, "choose world_model"),
        ({"episodes": "-2"}, "at least 1"),
        ({"policy": "random"}, "choose learned, scripted, teleop or fosp"),
        ({"policy": "teleop", "kind": "online"}, "task, recovery or failure"),
        ({"device": "joystick"}, "choose spacemouse"),
        ({"takeover": "yes"}, "true or false"),
        ({"camera": "topics"}, "mode:=real takes realsense or topics"),
        ({"mode": "real", "camera": "usb"}, "mode:=real takes realsense or topics"),
        ({"record_images": "1"}, "true or false"),
        ({"namespace": "arm 1"}, "namespace:=arm 1: letters"),
        ({"namespace": "1arm"}, "namespace:=1arm: letters"),
    ]:
        if words is None:
            assert launch_config("bounded_soccer", args, CONFIGS).task == "franka_bounded_soccer"
        else:
            with pytest.raises(ConfigError, match=words):
                launch_config("bounded_soccer", args, CONFIGS)
    cfg = launch_config("fragile_push_wall", {"policy": "teleop", "kind": "recovery", "device": "keyboard"}, CONFIGS)
    assert cfg.policy.kind == "teleop" and cfg.episodes.kind == "recovery" and cfg.teleop.device == "keyboard"
    assert launch_config("fragile_push_wall", {"takeover": "true", "device": "scripted"}, CONFIGS).teleop.takeover
    real = {"mode": "real", "camera": "topics", "record_images": "true", "robot_ip": "172.16.0.2"}
    cfg = launch_config("fragile_push_wall", real, CONFIGS)
    assert cfg.perception.source == "topics" and cfg.perception.record_images
    specs = {s.name: s for s in graph_spec(cfg)}
    assert specs["perception"].params.source == "topics" and not specs["perception"].params.publish_frames
    assert specs["episode_recorder"].params.record_images  # realsense2_camera's own topics are recorded
    with pytest.raises(ConfigError, match="bounded_push has no real-robot version"):
        launch_config("bounded_push", {"mode": "real"}, CONFIGS)


def test_launch_paths_are_absolute_and_a_namespace_moves_every_topic(tmp_path) -> None:
    from farl_bringup.launch_graph import absolute_paths

    cfg = launch_config("fragile_push_wall", {"namespace": "arm1"}, CONFIGS)
    paths = dict(absolute_paths(cfg, tmp_path))
    assert paths["run"] == str(tmp_path / "runs/fragile_push_wall/run") and cfg.learner.run_dir.startswith(
        str(tmp_path)
    )
    assert paths["bags"] == str(tmp_path / "runs/fragile_push_wall/bags")
    cfg.recorder.out_dir = "/data/bags"
    assert dict(absolute_paths(cfg, tmp_path))["bags"] == "/data/bags"  # absolute stays
    robot = next(s for s in graph_spec(cfg) if s.name == "robot")
    assert ("state", "/arm1/farl/state") in robot.remappings("arm1")  # absolute, whatever the node namespace
    assert ("state", "/farl/state") in robot.remappings()


def test_a_node_that_dies_fails_the_launch_and_a_finished_one_ends_it() -> None:
    from farl_bringup.launch_graph import NodeFailed, node_exited

    assert node_exited("robot", "robot_node", 0, False) == "robot node finished its episodes"
    assert node_exited("episode_recorder", "episode_recorder_node", 0, False) == "episode_recorder exited"
    assert node_exited("shield", "shield_node", -15, True) == "shield exited"  # stopped by the shutdown
    with pytest.raises(NodeFailed, match=r"episode_recorder exited with code 1 \(see the node's last lines above\)"):
        node_exited("episode_recorder", "episode_recorder_node", 1, False)
    with pytest.raises(NodeFailed, match=r"^robot exited with code 1: \[robot\] no robot at 127.0.0.9$"):
        node_exited("robot", "robot_node", 1, False, "[robot] no robot at 127.0.0.9")
    with pytest.raises(NodeFailed, match="policy died of signal 9"):
        node_exited("policy", "policy_node", -9, False)


def rules(hazard: str, **kw) -> RealTaskRules:
    base = {
        "objects": ["puck", "flower"],
        "goal_m": [0.65, -0.05, 0.02],
        "success_radius_m": 0.05,
        "object_timeout_s": 0.6,
        "hazard": hazard,
        "hazard_min_m": [0.55, -0.15, 0.0],
        "hazard_max_m": [0.57, 0.05, 0.10],
    }
    return RealTaskRules(**{**base, **kw})


def observe(scene: PerceivedScene, puck, flower=(0.4, 0.2, 0.05), hand=(0.45, 0.0, 0.2), now_ns=0):
    scene.update(["puck", "flower"], np.array([puck, flower]), now_ns, [True, True])
    return scene.observe(HandState(np.array(hand), 1.0), now_ns)


@pytest.mark.parametrize(
    ("hazard", "safe", "broken"),
    [
        ("wall", (0.45, 0.0, 0.02), (0.53, 0.0, 0.02)),  # 2 cm from the wall with a 2.5 cm radius
        ("boundary", (0.45, 0.0, 0.02), (0.45, -0.2, 0.02)),
        ("obstacle", (0.45, 0.0, 0.02), (0.42, 0.15, 0.02)),
    ],
)
def test_failure_rules_on_perceived_positions(hazard, safe, broken) -> None:
    kw = {"hazard_min_m": [0.35, -0.15, 0.0], "hazard_max_m": [0.85, 0.25, 0.0]} if hazard == "boundary" else {}
    scene = PerceivedScene(rules(hazard, **kw))
    ok = scene.evaluate(observe(scene, safe))
    assert not ok.failure and ok.cost == 0.0 and ok.hazard_distance_m > 0
    bad = scene.evaluate(observe(scene, broken))
    assert bad.failure and bad.terminated and bad.cost == 1.0 and bad.hazard_distance_m < 0


def test_the_perceived_state_has_failurebench_layout_and_the_goal() -> None:
    scene = PerceivedScene(rules("obstacle"))
    first = observe(scene, (0.45, 0.0, 0.02))
    second = observe(scene, (0.47, 0.0, 0.02))
    assert first.shape == second.shape == (39,)
    np.testing.assert_allclose(second[4:7], [0.47, 0.0, 0.02])
    np.testing.assert_allclose(second[11:14], [0.4, 0.2, 0.05])
    np.testing.assert_allclose(second[18:36], first[0:18])  # the previous frame
    np.testing.assert_allclose(second[36:39], [0.65, -0.05, 0.02])
    done = scene.evaluate(observe(scene, (0.64, -0.04, 0.02)))
    assert done.success and not done.failure and done.reward > scene.evaluate(second).reward


def test_unseen_or_old_objects_are_stale() -> None:
    scene = PerceivedScene(rules("wall"))
    with pytest.raises(StaleState, match="no position of 'puck'"):
        scene.observe(HandState(np.zeros(3), 1.0), 0)
    scene.update(["puck", "flower"], np.array([[0.4, 0, 0.02], [np.nan, 0, 0]]), 0, [True, True])
    with pytest.raises(StaleState, match="no position of 'flower'"):  # a NaN fix is not a fix
        scene.observe(HandState(np.zeros(3), 1.0), 0)
    scene.update(["flower"], np.array([[0.3, 0, 0.02]]), 0, [True])
    scene.observe(HandState(np.zeros(3), 1.0), int(0.5e9))
    with pytest.raises(StaleState, match=r"'puck' last seen 0\.70 s ago \(limit 0\.6 s\)"):
        scene.observe(HandState(np.zeros(3), 1.0), int(0.7e9))


def test_an_operator_failure_mark_ends_the_episode_as_a_failure() -> None:
    """In sim too: a person stepping in is an IR failure (the paper counts interventions)."""
    with InProcessRuntime() as rt:
        robot = rt.add(RobotNode(RobotParams(task="bounded_push", episodes=1, horizon_steps=50)), {})
        rt.run(until_s=0.25)  # the first episode starts
        mark = rt.msgs.new("std_msgs/msg/String", data="failure")
        robot.on_mark(mark)
        robot.on_action(make_action(rt.msgs, t_ns=rt.now_ns, episode=0, step=0, values=np.zeros(4)))
        rt.run(until_s=0.45)
        events = robot.finished
    assert events and events[0]["outcome"] == "failure" and events[0]["steps"] == 1


def test_disturbed_push_moves_its_obstacle_and_contact_fails() -> None:
    env = make_env("disturbed_push", check=True)
    obs, _ = env.reset(seed=3)
    start = obs[OBSTACLE_XY].copy()
    path = []
    for _ in range(200):
        obs, _, term, trunc, info = env.step(np.zeros(4))
        path.append(obs[OBSTACLE_XY].copy())
        if term or trunc:
            break
    moved = np.linalg.norm(np.array(path) - start, axis=1)
    assert moved.max() > 0.02, "the obstacle never moved"
    assert np.all(np.linalg.norm(np.diff(np.array(path), axis=0), axis=1) <= 0.0051)  # a person's glide, no jumps
    obs, _ = env.reset(seed=3)
    again = [env.step(np.zeros(4))[0][11:13] for _ in range(len(path))]
    np.testing.assert_allclose(again, path)  # deterministic under the seed
    drive = failure_driver("disturbed_push")
    obs, _ = env.reset(seed=0)
    for _ in range(200):
        obs, _, term, _, info = env.step(drive(obs))
        if term:
            break
    assert info["failure"] and info["cost"] == 1.0
    env.close()


def test_robot_params_match_the_config_schema() -> None:
    """Every robot/scene config key reaches the node (a key added to one and not the other fails here)."""
    from farl_common.config import RobotConfig, SceneConfig

    names = {f.name for f in dataclasses.fields(RobotParams)}
    assert {f.name for f in dataclasses.fields(RobotConfig)} <= names
    assert {f"scene_{f.name}" for f in dataclasses.fields(SceneConfig)} <= names
    assert T.OBJECTS.endswith("ObjectPositions")


def test_the_franky_driver_gets_every_setting_from_the_parameters() -> None:
    from farl_robot.franky_driver import FrankyDriver
    from farl_robot.robot_node import make_driver

    cfg = task_config("franka_disturbed_push")
    cfg.robot.robot_ip = "127.0.0.9"
    cfg.robot.relative_dynamics_factor = 0.07
    params = next(s for s in graph_spec(cfg) if s.executable == "robot_node").params
    driver, scene = make_driver(params)  # builds, does not connect
    assert isinstance(driver, FrankyDriver) and isinstance(scene, PerceivedScene)
    assert driver.s.robot_ip == "127.0.0.9" and driver.s.relative_dynamics_factor == 0.07
    assert list(driver.s.home_joints_rad) == cfg.robot.home_joints_rad
    assert scene.rules.hazard == "obstacle" and list(scene.rules.objects) == ["puck", "flower"]
