"""FOSP in the graph (`policy.kind: fosp`): its learner trains on the episodes the recorder writes and
publishes its agent; its policy node acts with it, keeps its latent state through an episode, answers a
repeated state the same, and refuses weights it cannot trust."""

from __future__ import annotations

import numpy as np
import pytest

from farl_bringup.graph_spec import graph_spec
from farl_bringup.sim_graph import run_sim
from farl_common import messages as M
from farl_common.bags import read_episode
from farl_common.config import task_config
from farl_common.obs_layout import OBS_LAYOUT
from farl_common.runtime.inprocess import InProcessRuntime
from farl_learning.checkpoint import CheckpointError
from farl_learning.fosp import FOSPAgent
from farl_learning.fosp_policy_node import FOSPPolicyNode, FOSPPolicyParams
from farl_learning.fosp_weights import fosp_from_weights, fosp_weights_message


@pytest.fixture
def fosp_run(tiny_fosp_run):
    return tiny_fosp_run


def fosp_config(tmp_path, run, horizon=20):
    cfg = task_config("safe_reach")
    cfg.policy.kind = "fosp"
    cfg.robot.horizon_steps = horizon
    cfg.recorder.out_dir = str(tmp_path / "bags")
    cfg.learner.fosp_run_dir = str(run)
    cfg.policy.checkpoint = str(tmp_path / "online_fosp.pt")
    return cfg


def test_the_fosp_graph_records_each_episode_and_learns_from_it(fosp_run, tmp_path):
    cfg = fosp_config(tmp_path, fosp_run)
    names = [s.executable for s in graph_spec(cfg, episodes=2)]
    assert "fosp_learner_node" in names and "fosp_policy_node" in names and "shield_node" not in names
    result = run_sim(cfg, episodes=2, seed=0)
    eps = [read_episode(b) for b in sorted(result.bags)]
    assert len(eps) == 2 and all(e.kind == "online" for e in eps)
    # the learner trained on episode 0 before the robot started episode 1, which its new agent played
    assert [e.policy_version for e in eps] == [0, 1]
    assert eps[0].policy.startswith("fosp:") and eps[0].policy != eps[1].policy
    agent, extra = FOSPAgent.load(tmp_path / "online_fosp.pt")
    assert extra["version"] == 2 and agent.offline_actor is not None


def test_the_fosp_policy_node_answers_a_repeated_state_the_same_and_restarts_each_episode(fosp_run, tmp_path):
    rt = InProcessRuntime()
    params = FOSPPolicyParams(checkpoint=str(tmp_path / "none.pt"), initial_checkpoint=str(fosp_run / "fosp.pt"))
    node = rt.add(FOSPPolicyNode(params), {})
    obs = np.random.default_rng(0).normal(size=(3, 39)) * 0.1

    def state(episode, step):
        return M.make_state(
            rt.msgs, t_ns=0, task="safe_reach", episode=episode, step=step, layout=OBS_LAYOUT, values=obs[step]
        )

    answers = []
    node.publish = lambda topic, msg: answers.append(M.action_values(msg))  # what it would send
    for step in (0, 1, 1, 2):
        node.on_state(state(0, step))
    np.testing.assert_allclose(answers[1], answers[2])  # step 1 twice: the same answer
    assert node.policy.steps == 3
    node.on_state(state(1, 0))  # a new episode starts from a fresh latent state
    assert node.policy.steps == 1
    assert node.policy.first is False and len(answers) == 5
    rt.close()


def test_fosp_weights_travel_as_a_message_and_damaged_ones_are_refused(fosp_run):
    rt = InProcessRuntime()
    agent, _ = FOSPAgent.load(fosp_run / "fosp.pt")
    msg = fosp_weights_message(rt.msgs, agent, 3)
    back, version, label = fosp_from_weights(msg, 39)
    assert version == 3 and label == agent.label == back.label
    with pytest.raises(CheckpointError, match="for 39-value states"):
        fosp_from_weights(msg, 40)
    msg.label = "fosp:000000000000"
    with pytest.raises(CheckpointError, match="damaged"):
        fosp_from_weights(msg, 39)
    msg = fosp_weights_message(rt.msgs, agent, 4)
    msg.checkpoint = msg.checkpoint[: len(msg.checkpoint) // 2]
    with pytest.raises(CheckpointError, match="version 4"):
        fosp_from_weights(msg, 39)
    rt.close()
