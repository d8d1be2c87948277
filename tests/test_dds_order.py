"""What the graph must not assume under DDS, where topics are not ordered with respect to each other and
nodes start when they start: checked on the node classes in process, with the messages in each order."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from farl_common import messages as M
from farl_common import typestore as T
from farl_common.bags import read_episode
from farl_common.episode_messages import EpisodeMessages
from farl_common.obs_layout import GRIPPER, OBS_DIM
from farl_common.recorder_node import EpisodeRecorderNode, RecorderParams
from farl_common.runtime.inprocess import InProcessRuntime
from farl_common.runtime.node import Input, Node
from farl_robot.robot_node import RobotNode, RobotParams
from farl_safety_shield.shield_node import ShieldNode, ShieldParams
from farl_sim.scripted_policy_node import ScriptedPolicyNode, ScriptedPolicyParams


class Sink(Node):
    """Takes in what a node under test publishes on `action_executed` and `episode_recorded`."""

    name = "sink"
    inputs = (
        Input("action_executed", T.ACTION, "on_action"),
        Input("episode_recorded", "std_msgs/msg/String", "on_recorded", qos="events"),
    )

    def on_start(self) -> None:
        self.actions: list[tuple[int, int, str]] = []
        self.recorded: list[tuple[str, bool]] = []

    def on_action(self, msg: Any) -> None:
        self.actions.append((int(msg.episode), int(msg.step), M.action_source(msg)))

    def on_recorded(self, msg: Any) -> None:
        path = Path(msg.data)
        # whole: its END is in it (a bag without one reads as "aborted")
        self.recorded.append((msg.data, path.is_dir() and read_episode(path).outcome != "aborted"))


def _episode(rt: InProcessRuntime, episode: int = 0) -> EpisodeMessages:
    return EpisodeMessages(rt.msgs, task="fragile_push_wall", kind="online", episode=episode, seed=0, layout=[])


def _obs() -> np.ndarray:
    obs = np.zeros(OBS_DIM)
    obs[GRIPPER] = 1.0
    return obs


@pytest.mark.parametrize("proposal_first", [False, True], ids=["state-first", "proposal-first"])
def test_the_shield_decides_whichever_of_state_and_proposal_arrives_first(tiny_run, proposal_first) -> None:
    rt = InProcessRuntime()
    shield = rt.add(ShieldNode(ShieldParams(run_dir=str(tiny_run))), {})
    sink = rt.add(Sink(), {})
    ep = _episode(rt)
    for step in range(3):
        state, proposal = ep.state(step, step, _obs()), ep.action(step, step, np.zeros(4))
        for msg in (proposal, state) if proposal_first else (state, proposal):
            (shield.on_proposal if msg is proposal else shield.on_state)(msg)
    rt.run(until_s=1.0)
    assert [a[:2] for a in sink.actions] == [(0, 0), (0, 1), (0, 2)]
    assert shield.decisions == 3 and shield.unmatched == 0
    assert not any("dropped" in r.text for r in rt.logs)
    rt.close()


def test_the_shield_lets_go_of_proposals_the_robot_has_moved_past(tiny_run) -> None:
    """A second answer to a state the robot sent again (the graph was starting) waits, and goes quietly
    once a later step is decided; proposals piling up with no states at all are dropped with a warning."""
    rt = InProcessRuntime()
    shield = rt.add(ShieldNode(ShieldParams(run_dir=str(tiny_run))), {})
    ep = _episode(rt)
    shield.on_proposal(ep.action(0, 0, np.zeros(4)))
    shield.on_state(ep.state(1, 0, _obs()))  # decided
    shield.on_proposal(ep.action(2, 0, np.zeros(4)))  # the policy's answer to the same state, sent again
    assert shield.decisions == 1 and len(shield.proposals) == 1
    shield.on_state(ep.state(3, 1, _obs()))
    shield.on_proposal(ep.action(4, 1, np.zeros(4)))
    assert shield.decisions == 2 and not shield.proposals and not shield.states and shield.unmatched == 0
    for step in range(2, 2 + 17):  # states lost on the way: only proposals arrive
        shield.on_proposal(ep.action(10 + step, step, np.zeros(4)))
    assert shield.unmatched == 1 and len(shield.proposals) == 16
    assert [r.text for r in rt.logs if "never met" in r.text] == [
        "proposal for episode 0 step 2 never met its state: dropped"
    ]
    rt.close()


def test_the_recorder_announces_each_bag_once_it_is_whole_and_in_place(tmp_path) -> None:
    """The learner reads what the recorder announces: at the moment of the announcement the bag is under
    its final name and reads whole. A discarded episode is not announced."""
    rt = InProcessRuntime()
    rt.add(EpisodeRecorderNode(RecorderParams(out_dir=str(tmp_path), run_id="R")), {})
    sink = rt.add(Sink(), {})
    recorder = rt.nodes[0]
    for episode in range(2):
        ep = _episode(rt, episode)
        recorder.on_episode_event(ep.start(episode * 100))
        recorder.on_state(ep.state(episode * 100 + 1, 0, _obs()))
        if episode == 1:
            recorder.on_operator_mark(rt.msgs.new("std_msgs/msg/String", data="discard"))
        recorder.on_episode_event(ep.end(episode * 100 + 2))
    rt.run(until_s=1.0)
    assert sink.recorded == [(str(tmp_path / "R_online_fragile_push_wall_ep00000"), True)]
    rt.close()


def test_an_episode_that_ended_before_its_first_step_reads_as_empty(tmp_path) -> None:
    """An episode aborted at step 0 (a robot error) is a bag with a state and no step: the learner reads
    it as empty and leaves it out, instead of failing on it."""
    rt = InProcessRuntime()
    recorder = rt.add(EpisodeRecorderNode(RecorderParams(out_dir=str(tmp_path), run_id="R")), {})
    ep = _episode(rt)
    recorder.on_episode_event(ep.start(0))
    recorder.on_state(ep.state(1, 0, _obs()))
    recorder.on_episode_event(ep.end(2, "aborted"))
    empty = read_episode(recorder.closed[0])
    assert len(empty) == 0 and empty.action.shape == (0, 0) and empty.outcome == "aborted"
    rt.close()


def _robot_graph(wait_for_learner: bool, episodes: int = 2, **params) -> tuple[InProcessRuntime, RobotNode]:
    rt = InProcessRuntime()
    robot = rt.add(
        RobotNode(RobotParams(horizon_steps=4, episodes=episodes, wait_for_learner=wait_for_learner, **params)),
        {},
    )
    rt.add(ScriptedPolicyNode(ScriptedPolicyParams()), {"action_proposed": "action_executed"})
    return rt, robot


def test_the_robot_plays_each_episode_with_the_version_the_learner_announced_for_it() -> None:
    """Learned graph: no episode before the learner's first word; the next one only after its answer to
    the last; an action of an older version than announced is refused."""
    rt, robot = _robot_graph(wait_for_learner=True)
    version = lambda v: rt.msgs.new("std_msgs/msg/UInt32", data=v)
    rt.run(until_s=2.0)
    assert robot.rec is None and robot.episode == -1  # waiting for the learner
    robot.on_version(version(0))
    rt.run(until_s=6.0)
    assert [e["policy_version"] for e in robot.finished] == [0]
    assert robot.rec is None and robot.episode == 0  # episode 0 over: waiting for the learner's answer
    robot.on_version(version(1))
    rt.run(until_s=8.0)
    assert robot.episode == 1 and robot.step == 0  # the scripted policy's actions are version 0
    said = [r for r in rt.logs if "answered by policy version 0 while the learner has announced version 1" in r.text]
    assert len(said) == 1 and said[0].level == "info"
    assert robot.refused >= 8  # asked again at every tick (5 Hz), never executed
    assert any("no valid action for" in r.text and r.level == "warning" for r in rt.logs)  # it lasted: a warning
    rt.close()


def test_a_learner_that_goes_silent_is_waited_for_once_until_it_answers_again() -> None:
    """Two machines, the link to the learner down: the robot waits `learner_timeout_s` once, then plays
    episode after episode with the policy there is; when the learner answers again it waits for it again."""
    rt, robot = _robot_graph(wait_for_learner=True, episodes=50, learner_timeout_s=3.0)
    version = lambda v: rt.msgs.new("std_msgs/msg/UInt32", data=v)
    robot.on_version(version(0))
    rt.run(until_s=3.0)
    assert len(robot.finished) == 1 and robot.rec is None  # waiting for the answer to episode 0
    rt.run(until_s=10.0)
    n = len(robot.finished)
    assert n >= 5  # gave up once, after 3 s, then episode after episode
    assert sum("no answer from the learner for 3 s" in r.text for r in rt.logs) == 1
    robot.on_version(version(0))
    assert any("the learner answers again" in r.text for r in rt.logs)
    rt.run(until_s=12.5)
    assert len(robot.finished) <= n + 1 and robot.rec is None  # the episode under way ends; the next waits
    rt.close()


def test_without_a_learner_the_robot_goes_from_episode_to_episode() -> None:
    rt, robot = _robot_graph(wait_for_learner=False)
    rt.run(until_s=10.0)
    assert len(robot.finished) == 2 and rt.shutdown_requested
    rt.close()


def test_no_episode_starts_before_the_recorder_takes_the_robots_topics(tmp_path) -> None:
    """A recorder in another process is matched some time after the rest of the graph: the robot waits
    for it, so the bag holds the episode from step 0; a recorder that never comes is waited for once,
    `learner_timeout_s`, and the robot goes on saying its episodes go unrecorded."""
    rt, robot = _robot_graph(wait_for_learner=False, episodes=1, wait_for_recorder="episode_recorder")
    rt.run(until_s=2.0)
    assert robot.rec is None and robot.episode == -1
    assert sum("holding episode 0 until the recorder episode_recorder takes state" in r.text for r in rt.logs) == 1
    recorder = rt.add(EpisodeRecorderNode(RecorderParams(out_dir=str(tmp_path), run_id="r")), {})
    rt.run(until_s=10.0)
    assert len(robot.finished) == 1 and rt.shutdown_requested and recorder.skipped == []
    (bag,) = tmp_path.iterdir()
    assert read_episode(bag).step.tolist() == [0, 1, 2, 3]
    rt.close()

    # Neither learner nor recorder: one timeout, the two waits side by side, then the episode.
    rt, robot = _robot_graph(wait_for_learner=True, episodes=1, wait_for_recorder="recorder", learner_timeout_s=3.0)
    rt.run(until_s=2.5)
    assert robot.rec is None
    rt.run(until_s=3.5)
    assert robot.rec is not None
    rt.run(until_s=10.0)
    assert len(robot.finished) == 1
    assert (
        sum(
            "recorder has not taken state, " in r.text and "for 3 s" in r.text and r.level == "warning" for r in rt.logs
        )
        == 1
    )
    rt.close()


def test_policy_and_shield_hold_their_first_answers_until_the_recorder_takes_them(tmp_path, tiny_run) -> None:
    """Each a process of its own, the policy and the shield are matched to the recorder when DDS gets to
    it: until then a state gets no answer (the robot sends it again), so the bag has every step's action."""
    rt = InProcessRuntime()
    named = {"wait_for_recorder": "episode_recorder"}
    policy = rt.add(ScriptedPolicyNode(ScriptedPolicyParams(**named)), {})
    shield = rt.add(ShieldNode(ShieldParams(run_dir=str(tiny_run), **named)), {})
    sink = rt.add(Sink(), {})
    ep = _episode(rt)
    for node in (policy, shield):
        node.on_state(ep.state(0, 0, _obs()))
    shield.on_proposal(ep.action(0, 0, np.zeros(4)))
    rt.run(until_s=1.0)
    assert sink.actions == [] and shield.decisions == 0
    assert sum("holding episode 0 until the recorder episode_recorder" in r.text for r in rt.logs) == 2
    rt.add(EpisodeRecorderNode(RecorderParams(out_dir=str(tmp_path))), {})
    for node in (policy, shield):
        node.on_state(ep.state(1, 0, _obs()))  # the robot sends the state again
    rt.run(until_s=2.0)
    assert shield.decisions == 1 and sink.actions == [(0, 0, "policy")]  # the policy's answer, decided
    rt.close()


def test_a_restarted_recorder_is_waited_for_before_the_next_episode(tmp_path) -> None:
    """Nodes die and come back: after the recorder's process ends, the robot holds the next episode
    until a new recorder takes its topics, and the policy holds its answers until the recorder takes
    its actions, so the new recorder's first bag holds that episode from step 0."""
    rt = InProcessRuntime()
    named = {"wait_for_recorder": "episode_recorder"}
    robot = rt.add(RobotNode(RobotParams(horizon_steps=4, episodes=3, learner_timeout_s=60.0, **named)), {})
    policy = rt.add(ScriptedPolicyNode(ScriptedPolicyParams(**named)), {"action_proposed": "action_executed"})
    first = rt.add(EpisodeRecorderNode(RecorderParams(out_dir=str(tmp_path / "a"), run_id="a")), {})
    while not robot.finished:
        rt.run(until_s=rt.now_ns / 1e9 + 0.05)
    rt.run(until_s=rt.now_ns / 1e9 + 0.05)  # the recorder takes the END in
    assert robot.rec is None and len(list((tmp_path / "a").iterdir())) == 1
    rt.remove(first)
    rt.run(until_s=10.0)
    assert len(robot.finished) == 1 and robot.rec is None  # episode 1 waits for a recorder
    assert sum("holding episode 1 until the recorder episode_recorder" in r.text for r in rt.logs) == 1

    # The policy, asked on its own: episode 1's state gets no answer while no recorder takes its actions.
    answered = len(rt.logs)
    ep = _episode(rt, episode=1)
    policy.on_state(ep.state(0, 0, _obs()))
    assert any(
        "holding episode 1 until the recorder episode_recorder takes action_proposed" in r.text
        for r in rt.logs[answered:]
    )

    second = rt.add(EpisodeRecorderNode(RecorderParams(out_dir=str(tmp_path / "b"), run_id="b")), {})
    rt.run(until_s=30.0)
    assert len(robot.finished) == 3 and rt.shutdown_requested and second.skipped == []
    bags = sorted((tmp_path / "b").iterdir())
    assert [read_episode(b).step.tolist() for b in bags] == [[0, 1, 2, 3], [0, 1, 2, 3]]
    rt.close()


def test_a_recorder_gone_while_the_operator_has_yet_to_start_holds_the_episode(tmp_path) -> None:
    """Teleop: the robot may wait minutes for the operator's start. A recorder found before that and gone
    by then holds the episode: the robot asks DDS each tick until the episode starts, not once."""
    rt = InProcessRuntime()
    robot = rt.add(
        RobotNode(RobotParams(horizon_steps=4, episodes=1, wait_for_start=True, wait_for_recorder="episode_recorder")),
        {},
    )
    rt.add(ScriptedPolicyNode(ScriptedPolicyParams()), {"action_proposed": "action_executed"})
    first = rt.add(EpisodeRecorderNode(RecorderParams(out_dir=str(tmp_path / "a"))), {})
    rt.run(until_s=2.0)
    assert robot.rec is None and not any("holding episode" in r.text for r in rt.logs)  # found; no start yet
    rt.remove(first)
    robot.on_mark(rt.msgs.new("std_msgs/msg/String", data="start"))
    rt.run(until_s=4.0)
    assert robot.rec is None and any("holding episode 0 until the recorder" in r.text for r in rt.logs)
    rt.add(EpisodeRecorderNode(RecorderParams(out_dir=str(tmp_path / "b"))), {})
    rt.run(until_s=10.0)
    (bag,) = (tmp_path / "b").iterdir()
    assert read_episode(bag).step.tolist() == [0, 1, 2, 3]
    rt.close()


def test_a_recorder_given_up_on_is_not_waited_for_again_until_it_is_back(tmp_path) -> None:
    """The policy and the shield hold an episode `GRACE_S` at most; then they answer, saying so once, and
    hold no later episode until the recorder is back, when they say that too."""
    from farl_common.recorder_wait import GRACE_S

    rt = InProcessRuntime()
    policy = rt.add(ScriptedPolicyNode(ScriptedPolicyParams(wait_for_recorder="episode_recorder")), {})
    sink = rt.add(Sink(), {"action_executed": "action_proposed"})
    for episode in range(3):
        ep = _episode(rt, episode=episode)
        policy.on_state(ep.state(0, 0, _obs()))
        rt.now_ns += int((GRACE_S + 1.0) * 1e9)  # nothing else in the graph: the clock moves by hand
        policy.on_state(ep.state(0, 0, _obs()))  # the robot sends the state again
        rt.run()
    assert [a[:2] for a in sink.actions] == [(0, 0), (1, 0), (1, 0), (2, 0), (2, 0)]  # episode 0: held first
    warned = [r for r in rt.logs if "has not taken action_proposed for 30 s" in r.text]
    assert len(warned) == 1 and warned[0].level == "warning"
    rt.add(EpisodeRecorderNode(RecorderParams(out_dir=str(tmp_path))), {})
    policy.on_state(_episode(rt, episode=3).state(0, 0, _obs()))
    assert any("the recorder episode_recorder takes action_proposed again" in r.text for r in rt.logs)
    rt.close()
