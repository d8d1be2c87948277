"""The mocked sim graph: sim robot + scripted policy + recorder, and the robot's refusals."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from farl_bringup.graph_spec import graph_spec
from farl_bringup.params_file import ros_parameter_values
from farl_bringup.sim_graph import run_sim
from farl_common import messages as M
from farl_common import typestore as T
from farl_common.bags import load_dataset, read_episode
from farl_common.config import task_config
from farl_common.recorder_node import EpisodeRecorderNode, RecorderParams
from farl_common.runtime import Input, Node, Output
from farl_common.runtime.inprocess import InProcessRuntime
from farl_robot.envelope import HardEnvelope, UnsafeCommand
from farl_robot.robot_node import RobotNode, RobotParams
from farl_sim.scripted_policy_node import ScriptedPolicyNode, ScriptedPolicyParams


def small_config(tmp_path, horizon: int = 30):
    cfg = task_config("fragile_push_wall")
    cfg.policy.kind = "scripted"
    cfg.robot.horizon_steps = horizon
    cfg.recorder.out_dir = str(tmp_path / "bags")
    return cfg


def test_sim_graph_records_one_bag_per_episode(tmp_path):
    seen = []
    result = run_sim(small_config(tmp_path), episodes=2, seed=4, run_id="t", on_episode=seen.append)
    assert [e["episode"] for e in seen] == [0, 1] and len(result.bags) == 2 and result.refused == 0
    for info, bag in zip(result.episodes, result.bags, strict=True):
        ep = read_episode(bag)
        assert len(ep) == info["steps"] == 30 and ep.kind == "online" and ep.outcome == info["outcome"]
        assert ep.episode_return == pytest.approx(info["return"], rel=1e-5)
        assert ep.timeout[-1] and ep.seed == 4 + info["episode"]
    assert bag.name == "t_online_fragile_push_wall_ep00001"


def test_sim_graph_is_deterministic(tmp_path):
    run_sim(small_config(tmp_path / "a"), episodes=1, seed=2, run_id="x")
    run_sim(small_config(tmp_path / "b"), episodes=1, seed=2, run_id="x")
    a, b = load_dataset(tmp_path / "a"), load_dataset(tmp_path / "b")
    np.testing.assert_array_equal(a.obs, b.obs)
    np.testing.assert_array_equal(a.action, b.action)


def test_full_episode_of_the_expert_succeeds(tmp_path):
    result = run_sim(small_config(tmp_path, horizon=150), episodes=1, seed=0)
    assert result.episodes[0]["outcome"] == "success"


def test_launch_and_in_process_share_one_graph():
    cfg = task_config("fragile_push_wall")
    cfg.policy.kind = "scripted"
    specs = graph_spec(cfg, episodes=5)
    assert [s.executable for s in specs] == ["episode_recorder_node", "robot_node", "scripted_policy_node"]
    robot = ros_parameter_values(specs[1].name, specs[1].params)
    assert robot["episodes"] == 5 and robot["rate_hz"] == 5.0 and robot["workspace_min_m"] == [-0.5, 0.4, 0.05]
    assert ("action_executed", "/farl/action/executed") in specs[1].remappings()
    assert ("action_proposed", "/farl/action/executed") in specs[2].remappings()  # no shield yet
    values = [v for s in specs for v in ros_parameter_values(s.name, s.params).values()]
    assert all(isinstance(v, str | int | float | bool | list) for v in values)


class BadPolicy(Node):
    """Answers every state with what it is told to: NaN, a stale step, or nothing."""

    name = "bad_policy"
    inputs = (Input("state", T.STATE, "on_state"),)
    outputs = (Output("action_proposed", T.ACTION),)
    mode = "nan"

    def on_state(self, msg: Any) -> None:
        if self.mode == "silent":
            return
        values = np.array([np.nan, 0, 0, 0]) if self.mode == "nan" else np.zeros(4)
        step = int(msg.step) + (5 if self.mode == "wrong_step" else 0)
        self.publish(
            "action_proposed",
            M.make_action(self.msgs, t_ns=self.now_ns(), episode=int(msg.episode), step=step, values=values),
        )


@pytest.mark.parametrize("mode", ["nan", "wrong_step", "silent"])
def test_robot_never_moves_on_an_action_it_cannot_trust(mode):
    rt = InProcessRuntime()
    robot = rt.add(RobotNode(RobotParams(episodes=1, stale_timeout_s=0.5)), {})
    policy = BadPolicy()
    policy.mode = mode
    rt.add(policy, {"action_proposed": "action_executed"})
    rt.run(until_s=3.0)
    obs0 = robot.obs.copy()
    assert robot.step == 0 and robot.rec is not None, "the env must not have stepped"
    assert robot.held_ticks >= 10
    assert (robot.refused > 0) == (mode != "silent")
    assert any("holding still" in r.text for r in rt.logs)
    np.testing.assert_array_equal(robot.obs, obs0)
    rt.close()


def test_policy_gives_no_action_for_a_nan_state():
    rt = InProcessRuntime()
    policy = rt.add(ScriptedPolicyNode(ScriptedPolicyParams()), {})
    got = []

    class Sink(Node):
        name = "sink"
        inputs = (Input("action_proposed", T.ACTION, "on"),)

        def on(self, msg: Any) -> None:
            got.append(msg)

    rt.add(Sink(), {})
    from farl_common.episode_messages import EpisodeMessages

    rec = EpisodeMessages(rt.msgs, task="fragile_push_wall", kind="online", episode=0, seed=0, layout=[("s", 39)])
    state = np.zeros(39)
    policy.on_state(rec.state(0, 0, state))
    state[5] = np.nan
    policy.on_state(rec.state(0, 1, state))
    rt.run()
    assert len(got) == 1 and int(got[0].step) == 0 and policy.refused == 1


def test_envelope_limits_steps_and_box():
    env = HardEnvelope([-0.5, 0.4, 0.05], [0.5, 1.0, 0.5], max_step_m=0.005)
    a = env.filter(np.array([0.0, 0.7, 0.2]), np.array([1.0, 1.0, 0.0, 0.3]))
    assert np.linalg.norm(a[:3] * 0.01) == pytest.approx(0.005) and a[3] == 0.3
    b = env.filter(np.array([0.0, 0.7, 0.052]), np.array([0.0, 0.0, -1.0, 0.0]))
    assert b[2] * 0.01 == pytest.approx(-0.002)  # stops at the table-side face of the box
    c = env.filter(np.array([0.0, 0.7, 0.2]), np.array([5.0, 0, 0, -7]))
    assert c[3] == -1.0 and c[0] <= 0.5
    for bad in (np.array([np.nan, 0, 0, 0]), np.zeros(3)):
        with pytest.raises(UnsafeCommand):
            env.filter(np.array([0.0, 0.7, 0.2]), bad)
    with pytest.raises(UnsafeCommand, match="hand position"):
        env.filter(np.array([np.nan, 0.7, 0.2]), np.zeros(4))
    with pytest.raises(ValueError):
        HardEnvelope([0, 0, 0], [1, -1, 1], 0.01)


def test_recorder_keeps_messages_that_overtake_their_start_and_drops_unfinished(tmp_path):
    rt = InProcessRuntime()
    recorder = rt.add(EpisodeRecorderNode(RecorderParams(out_dir=str(tmp_path), run_id="r")), {})
    from farl_common.episode_messages import EpisodeMessages

    rec = EpisodeMessages(rt.msgs, task="bounded_push", kind="task", episode=3, seed=1, layout=[("s", 2)])
    recorder.on_state(rec.state(10, 0, np.zeros(2)))  # arrives before the START event
    recorder.on_episode_event(rec.start(5))
    recorder.on_action_executed(rec.action(10, 0, np.zeros(4)))
    recorder.on_step_feedback(rec.feedback(20, 0, 1.5, {}, False, True))
    recorder.on_state(rec.state(20, 1, np.ones(2)))
    recorder.on_episode_event(rec.end(20))
    ep = read_episode(tmp_path / "r_task_bounded_push_ep00003")
    assert len(ep) == 1 and ep.reward[0] == 1.5 and ep.kind == "task"
    rec2 = EpisodeMessages(rt.msgs, task="bounded_push", kind="task", episode=4, seed=1, layout=[("s", 2)])
    recorder.on_episode_event(rec2.start(30))
    rt.close()  # shut down mid-episode: no half bag
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r_task_bounded_push_ep00003"]


class Announcements(Node):
    name = "announcements"
    inputs = (Input("episode_recorded", "std_msgs/msg/String", "on_recorded", qos="events"),)

    def on_start(self) -> None:
        self.got: list[Any] = []

    def on_recorded(self, msg: Any) -> None:
        self.got.append(msg)


def test_a_recorder_that_starts_late_writes_no_bag_of_old_or_joined_episodes(tmp_path):
    """What a restarted recorder is handed by the transient-local events: STARTs and ENDs of episodes
    whose states are gone, and the START of the episode under way, whose first steps it missed."""
    from farl_common.episode_messages import EpisodeMessages

    rt = InProcessRuntime()
    recorder = rt.add(EpisodeRecorderNode(RecorderParams(out_dir=str(tmp_path), run_id="late")), {})
    announced = rt.add(Announcements(), {})
    old = [
        EpisodeMessages(rt.msgs, task="bounded_push", kind="online", episode=e, seed=e, layout=[("s", 2)])
        for e in (0, 1)
    ]
    for e in old:
        recorder.on_episode_event(e.start(100))
        recorder.on_episode_event(e.end(200))
    now = EpisodeMessages(rt.msgs, task="bounded_push", kind="online", episode=2, seed=2, layout=[("s", 2)])
    recorder.on_episode_event(now.start(300))
    recorder.on_state(now.state(400, 7, np.zeros(2)))  # step 7: the recorder joined mid-episode
    recorder.on_action_executed(now.action(400, 7, np.zeros(4)))
    recorder.on_episode_event(now.end(500))
    nxt = EpisodeMessages(rt.msgs, task="bounded_push", kind="online", episode=3, seed=3, layout=[("s", 2)])
    recorder.on_episode_event(nxt.start(600))  # the first whole episode it sees is recorded
    recorder.on_state(nxt.state(600, 0, np.zeros(2)))
    recorder.on_action_executed(nxt.action(600, 0, np.zeros(4)))
    recorder.on_step_feedback(nxt.feedback(700, 0, 1.0, {}, False, True))
    recorder.on_state(nxt.state(700, 1, np.ones(2)))
    recorder.on_episode_event(nxt.end(700))
    rt.run()
    rt.close()
    assert recorder.skipped == [0, 1, 2]
    # the episode it joined is announced without a bag (the learner answers it); the old ones are not
    assert [m.data for m in announced.got] == ["", str(tmp_path / "late_online_bounded_push_ep00003")]
    assert [p.name for p in tmp_path.iterdir()] == ["late_online_bounded_push_ep00003"]
    assert len(read_episode(tmp_path / "late_online_bounded_push_ep00003")) == 1
    assert any("joined episode 2 at step 7" in r.text for r in rt.logs)


def test_a_graph_restarted_within_the_second_keeps_both_graphs_bags(tmp_path, monkeypatch):
    """Bag names start with the wall-clock second; a restart in the same second (or a run_id given twice)
    gets a name of its own instead of a recorder that dies on the first episode."""
    import time

    monkeypatch.setattr(time, "strftime", lambda fmt, *a: "20261206-120000")
    first = run_sim(small_config(tmp_path), episodes=1, seed=0)
    second = run_sim(small_config(tmp_path), episodes=1, seed=1)
    again = run_sim(small_config(tmp_path), episodes=1, seed=2, run_id="20261206-120000")
    names = [r.bags[0].name for r in (first, second, again)]
    assert names == [
        "20261206-120000_online_fragile_push_wall_ep00000",
        "20261206-120000-2_online_fragile_push_wall_ep00000",
        "20261206-120000_online_fragile_push_wall_ep00000-2",
    ]
    assert [read_episode(tmp_path / "bags" / n).seed for n in names] == [0, 1, 2]


def test_the_recorder_warns_of_steps_whose_action_never_reached_it(tmp_path):
    """A shield DDS had not yet matched to the recorder: the bag holds those steps' states but not their
    actions, and reading it leaves them out; the recorder says which, once, as it closes the bag."""
    from farl_common.episode_messages import EpisodeMessages
    from farl_common.recorder_node import step_ranges

    rt = InProcessRuntime()
    recorder = rt.add(EpisodeRecorderNode(RecorderParams(out_dir=str(tmp_path), run_id="r")), {})
    rec = EpisodeMessages(rt.msgs, task="bounded_push", kind="online", episode=0, seed=0, layout=[("s", 2)])
    recorder.on_episode_event(rec.start(5))
    for step in range(6):
        recorder.on_state(rec.state(10 + step, step, np.full(2, step)))
        if step == 5:
            break
        if step not in (0, 1, 3):
            recorder.on_action_executed(rec.action(10 + step, step, np.zeros(4)))
        recorder.on_step_feedback(rec.feedback(10 + step, step, 1.0, {}, False, step == 4))
    recorder.on_episode_event(rec.end(20))
    rt.close()
    (warning,) = [r for r in rt.logs if "no executed action" in r.text]
    assert warning.level == "warning" and "step(s) 0-1, 3 of 5" in warning.text
    assert read_episode(tmp_path / "r_online_bounded_push_ep00000").step.tolist() == [2, 4]
    assert step_ranges([0, 1, 2, 7, 9, 10]) == "0-2, 7, 9-10"
