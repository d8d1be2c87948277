"""The learned graph in process: policy -> shield -> robot, recorder, learner with hot reload."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from farl_bringup.graph_spec import graph_spec
from farl_bringup.sim_graph import run_sim
from farl_common import typestore as T
from farl_common.bags import load_dataset, read_episode
from farl_common.config import task_config
from farl_common.obs_layout import GRIPPER, OBS_DIM
from farl_common.runtime.inprocess import InProcessRuntime
from farl_common.runtime.node import NodeError
from farl_learning.checkpoint import load, save_atomic, to_bytes, weights_fingerprint
from farl_learning.learner_node import LearnerNode, LearnerParams
from farl_learning.policy_node import PolicyNode, PolicyParams
from farl_learning.uni_o4 import policy_from_checkpoint
from farl_safety_shield.shield_node import ShieldNode, ShieldParams


def learned_config(tmp_path, run, horizon=40, min_new_steps=60):
    cfg = task_config("fragile_push_wall")
    cfg.policy.kind = "learned"
    cfg.robot.horizon_steps = horizon
    cfg.recorder.out_dir = str(tmp_path / "bags")
    cfg.learner.run_dir = str(run)
    cfg.learner.min_new_steps = min_new_steps
    return cfg


def weights_msg(rt, data, version, label=None):
    """A policy_weights message as the learner publishes it, for checkpoint `data`."""
    payload = {k: v for k, v in data.items() if k != "format"}
    label = label or f"learned:{weights_fingerprint(policy_from_checkpoint(data))}"
    blob = np.frombuffer(to_bytes(payload), dtype=np.uint8)
    return rt.msgs.new(T.WEIGHTS, version=version, label=label, checkpoint=blob)


@pytest.fixture
def run_copy(tiny_run, tmp_path):
    dst = tmp_path / "run"
    shutil.copytree(tiny_run, dst)
    return dst


def test_learned_graph_learns_online_and_records_shield_decisions(run_copy, tmp_path):
    cfg = learned_config(tmp_path, run_copy)
    names = [s.executable for s in graph_spec(cfg)]
    assert names == ["episode_recorder_node", "robot_node", "learner_node", "policy_node", "shield_node"]
    result = run_sim(cfg, episodes=4, seed=0, run_id="L")
    versions = [e["policy_version"] for e in result.episodes]
    assert versions[0] == 0 and versions[-1] >= 1 and versions == sorted(versions)
    assert (run_copy / "online_policy.pt").is_file()
    for bag in result.bags:
        ep = read_episode(bag)
        assert np.all(np.isfinite(ep.risk)) and len(ep.risk) == len(ep)
        # the shield also judged the answer to the final state, which the robot never executed
        assert 0 <= result.episodes[int(bag.name[-5:])]["swaps"] - ep.swapped.sum() <= 1
    ds = load_dataset(tmp_path / "bags")
    assert len(ds) == sum(e["steps"] for e in result.episodes)


def test_missing_critic_means_every_step_is_recovered(run_copy, tmp_path):
    (run_copy / "world_model.pt").unlink()
    result = run_sim(learned_config(tmp_path, run_copy, horizon=10, min_new_steps=10**6), episodes=1, seed=0)
    ep = read_episode(result.bags[0])
    assert ep.swapped.all() and np.isnan(ep.risk).all()
    assert result.episodes[0]["swaps"] == ep.swapped.sum() + 1 == len(ep) + 1


def test_no_critic_and_no_recovery_means_the_robot_holds_still(run_copy, tmp_path):
    (run_copy / "world_model.pt").unlink()
    (run_copy / "recovery_policy.pt").unlink()
    cfg = learned_config(tmp_path, run_copy, horizon=10, min_new_steps=10**6)
    rt = InProcessRuntime()
    nodes = [rt.add(s.node_class(s.params), s.topics) for s in graph_spec(cfg, episodes=1)]
    rt.run(until_s=5.0)
    robot = nodes[1]
    assert robot.step == 0 and robot.held_ticks > 0
    assert any("holds still" in r.text for r in rt.logs)
    rt.close()


def test_policy_node_takes_the_learners_weights_and_keeps_its_policy_when_they_are_bad(run_copy):
    """The policy comes in the message (no file is read): damaged bytes, weights that do not match their
    label, and a policy for other states are refused, and the node acts on with the policy it had."""
    rt = InProcessRuntime()
    node = rt.add(
        PolicyNode(
            PolicyParams(checkpoint=str(run_copy / "online.pt"), initial_checkpoint=str(run_copy / "task_policy.pt"))
        ),
        {},
    )
    before = node.policy
    data = load(run_copy / "task_policy.pt")
    changed = {**data, "policy": {k: v + 0.05 for k, v in data["policy"].items()}}
    damaged = weights_msg(rt, changed, 1)
    damaged.checkpoint = damaged.checkpoint[: len(damaged.checkpoint) // 2]
    node.on_weights(damaged)
    node.on_weights(weights_msg(rt, changed, 1, label="learned:000000000000"))
    node.on_weights(weights_msg(rt, {**changed, "obs_dim": OBS_DIM + 1}, 1, label="learned:other"))
    assert node.policy is before and node.version == 0 and node.reload_errors == 3
    assert not (run_copy / "online.pt").exists()
    node.on_weights(weights_msg(rt, changed, 1))
    assert node.version == 1
    assert weights_fingerprint(node.policy) == weights_fingerprint(policy_from_checkpoint(changed))
    assert node.policy_label == f"learned:{weights_fingerprint(node.policy)}"
    node.on_weights(weights_msg(rt, data, 0))  # a learner that started again: it says which policy acts
    assert node.version == 0 and node.policy_label == f"learned:{weights_fingerprint(policy_from_checkpoint(data))}"
    with pytest.raises(Exception, match="not found"):
        rt.add(PolicyNode(PolicyParams(checkpoint=str(run_copy / "x.pt"), initial_checkpoint="")), {})


def test_learner_trains_only_on_its_own_policys_episodes(run_copy, tmp_path):
    """Scripted episodes in the learner's bag folder look online (kind online, version 0) but are the
    expert's actions: their EpisodeEvent names the scripted policy, and the learner leaves them out."""
    scripted = learned_config(tmp_path, run_copy, horizon=15)
    scripted.policy.kind = "scripted"
    run_sim(scripted, episodes=2, seed=0, run_id="S")
    learned = run_sim(learned_config(tmp_path, run_copy, horizon=15, min_new_steps=10**6), episodes=1, seed=5)
    labels = {read_episode(b).policy for b in (tmp_path / "bags").iterdir() if not b.name.startswith(".")}
    assert labels == {"scripted:fragile_push_wall:expert", read_episode(learned.bags[0]).policy}
    own = read_episode(learned.bags[0])
    assert own.policy.startswith("learned:") and own.kind == "online"

    rt = InProcessRuntime()
    learner = rt.add(LearnerNode(LearnerParams(run_dir=str(run_copy), bag_dir=str(tmp_path / "bags"))), {})
    assert learner.label == own.policy  # the same weights give the same label in another node
    learner.on_episode_recorded(rt.msgs.new("std_msgs/msg/String", data=str(learned.bags[0])))
    assert learner.pending_steps == len(own)
    assert learner.skipped_off_policy == 2 and learner.foreign == {"scripted:fragile_push_wall:expert": 2}
    assert sum("leaving out" in r.text for r in rt.logs) == 1  # one line per foreign policy, not per bag
    rt.close()


def test_the_learner_node_is_farl_finetunes_learner(run_copy, tmp_path):
    """One PPO schedule: the learner node updates on the batch, epochs, learning rates, warm-up and
    reward scale `farl finetune` runs, and takes its own steps as FailureBench keeps them (the clipped
    draw it proposed, with the clipped-action likelihood); the executed action where the shield swapped."""
    from dataclasses import asdict

    from farl_bringup.pipeline import finetune

    trainer = finetune(run_copy, 1, out=tmp_path / "ft", progress=False)
    trainer.close()
    rt = InProcessRuntime()
    learner = rt.add(LearnerNode(LearnerParams(run_dir=str(run_copy), bag_dir=str(tmp_path / "bags"))), {})
    differ = ("total_steps", "seed", "lagrangian")
    assert {k: v for k, v in asdict(learner.learner.cfg).items() if k not in differ} == {
        k: v for k, v in asdict(trainer.cfg).items() if k not in differ
    }
    assert learner.batch_steps == trainer.cfg.batch_steps == trainer.steps == 800

    cfg = learned_config(tmp_path, run_copy, horizon=40, min_new_steps=10**6)
    cfg.shield.eps_safe = 0.0  # swaps on every step: its risks set a threshold that swaps on half
    cfg.shield.eps_safe = float(np.median(read_episode(run_sim(cfg, episodes=1, seed=3, run_id="all").bags[0]).risk))
    played = run_sim(cfg, episodes=1, seed=3, run_id="half")
    ep = read_episode(played.bags[0])
    learner.on_episode_recorded(rt.msgs.new("std_msgs/msg/String", data=str(played.bags[0])))
    assert len(learner.pending) == 2  # the all-swapped episode too: it counts in the value targets
    traj = learner.pending[-1]  # bags are read in name order: "all_...", then "half_..."
    own = ~np.asarray(traj.swapped)
    assert own.any() and (~own).any(), ep.swapped
    np.testing.assert_array_equal(np.asarray(traj.act)[own], ep.proposed_action[own])
    np.testing.assert_array_equal(np.asarray(traj.act)[~own], ep.action[~own])
    with torch.no_grad():
        want = learner.learner.policy.executed_log_prob(torch.as_tensor(ep.obs), torch.as_tensor(np.asarray(traj.act)))
    np.testing.assert_allclose(traj.logp, want.numpy(), rtol=1e-6)
    rt.close()


def test_the_shield_rolls_out_the_policy_it_was_told_to(run_copy):
    """With policy_checkpoint the world-model critic takes each policy the learner publishes; without
    it the critic keeps the pre-trained policy and says so once; Q_risk never takes a new policy."""
    online = run_copy / "online.pt"
    data = load(run_copy / "task_policy.pt")
    changed = {**data, "policy": {k: v + 0.05 for k, v in data["policy"].items()}}
    obs, act = torch.zeros(1, OBS_DIM), torch.zeros(1, 4)
    obs[0, GRIPPER] = 1.0
    rt = InProcessRuntime()
    version = weights_msg(rt, changed, 1)

    save_atomic(online, data)
    follow = rt.add(ShieldNode(ShieldParams(run_dir=str(run_copy), policy_checkpoint=str(online))), {})
    before = weights_fingerprint(follow.shield.critic.policy)
    risk_before = follow.shield.critic.risk(obs, act)
    online.unlink()  # the weights come in the message: nothing is read from disk
    follow.on_weights(version)
    assert weights_fingerprint(follow.shield.critic.policy) == weights_fingerprint(policy_from_checkpoint(changed))
    assert weights_fingerprint(follow.shield.critic.policy) != before
    assert not torch.equal(follow.shield.critic.risk(obs, act), risk_before)
    assert any("following the learner's versions" in r.text for r in rt.logs)

    frozen = rt.add(ShieldNode(ShieldParams(run_dir=str(run_copy))), {})
    kept = frozen.shield.critic.policy
    frozen.on_weights(version)
    frozen.on_weights(weights_msg(rt, data, 2))
    assert frozen.shield.critic.policy is kept
    assert sum("keeps rolling out the pre-trained" in r.text for r in rt.logs) == 1

    save_atomic(online, data)
    qrisk = rt.add(ShieldNode(ShieldParams(run_dir=str(run_copy), critic="q_risk", policy_checkpoint=str(online))), {})
    qrisk.on_weights(version)  # nothing to follow: no reload, no error
    assert not qrisk.shield.critic.follows_policy
    with pytest.raises(TypeError, match="fixed policy"):
        qrisk.shield.critic.set_policy(kept)
    assert not any(r.level == "error" for r in rt.logs)
    rt.close()


def test_policy_label_follows_the_weights(run_copy):
    rt = InProcessRuntime()
    path = str(run_copy / "task_policy.pt")
    a = rt.add(PolicyNode(PolicyParams(checkpoint=path, initial_checkpoint="")), {})
    b = rt.add(PolicyNode(PolicyParams(checkpoint=path, initial_checkpoint="", seed=3)), {})
    assert a.policy_label == b.policy_label and a.policy_label.startswith("learned:")
    with torch.no_grad():
        next(b.policy.parameters()).add_(1e-6)
    assert weights_fingerprint(b.policy) != weights_fingerprint(a.policy)
    rt.close()


def test_a_restarted_learner_resumes_its_version_and_keeps_only_its_untrained_episodes(run_copy, tmp_path):
    """A learner restarted after an update resumes at the saved version with the saved weights; of the
    bags already there it takes back exactly those its current policy played and has not trained on."""
    cfg = learned_config(tmp_path, run_copy, horizon=20, min_new_steps=30)
    first = run_sim(cfg, episodes=3, seed=0)
    rt = InProcessRuntime()
    params = LearnerParams(run_dir=str(run_copy), bag_dir=str(tmp_path / "bags"), min_new_steps=30)
    learner = rt.add(LearnerNode(params), {})
    assert learner.version >= 1
    assert any(f"resuming online learning at policy version {learner.version}" in r.text for r in rt.logs)
    saved = load(run_copy / "online_policy.pt", "task_policy")
    assert learner.label == f"learned:{weights_fingerprint(policy_from_checkpoint(saved))}"
    learner.on_episode_recorded(rt.msgs.new("std_msgs/msg/String", data=str(first.bags[-1])))
    current = [e for e in first.episodes if e["policy_version"] == learner.version]
    assert learner.pending_steps == sum(e["steps"] for e in current)
    assert learner.skipped_off_policy == len(first.episodes) - len(current)  # trained on already
    rt.close()
    second = run_sim(cfg, episodes=1, seed=10)  # the graph goes on from the saved version
    assert second.episodes[0]["policy_version"] == learner.version


@pytest.mark.parametrize(("name", "value"), [("anchor_coef", -0.5), ("policy_lr", 0.0), ("epochs", 0)])
def test_the_learner_refuses_a_parameter_out_of_range_before_it_loads_anything(name, value, tmp_path):
    with pytest.raises(NodeError, match=name):
        LearnerNode(LearnerParams(run_dir=str(tmp_path / "no_run"), **{name: value}))
