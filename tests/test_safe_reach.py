"""SafeReach: the FOSP paper's reach-without-touching task in MuJoCo, its variants, drivers and demo mix."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import farl_sim  # noqa: F401  (registers the ids)
from farl_common.bags import load_dataset, read_episode
from farl_common.obs_layout import GOAL_XY, OBJECT_XY, OBSTACLE_XY
from farl_sim.safe_reach import SafeReachEnv, get_safe_reach
from farl_sim.safe_reach_demos import generate_safe_reach_demos, label_of
from farl_sim.safe_reach_experts import DRIVERS, safe_expert
from farl_sim.safe_reach_tasks import SAFE_REACH


@pytest.fixture
def env():
    e = SafeReachEnv("safe_reach")
    yield e
    e.close()


def test_every_variant_is_a_gymnasium_env_with_80_step_episodes():
    for spec in SAFE_REACH.values():
        e = gym.make(spec.env_id)
        obs, _ = e.reset(seed=0)
        assert obs.shape == (39,) and e.spec.max_episode_steps == 80
        e.close()
    with pytest.raises(KeyError, match="safe_reach_cylinders"):
        get_safe_reach("safe_reach_spheres")


def test_the_state_holds_both_obstacles_and_the_target(env):
    obs, _ = env.reset(seed=4)
    poses = env.obstacle_poses()
    np.testing.assert_allclose(obs[OBJECT_XY], poses[0, :2], atol=1e-6)
    np.testing.assert_allclose(obs[OBSTACLE_XY], poses[1, :2], atol=1e-6)
    np.testing.assert_allclose(obs[GOAL_XY], env._mw._target_pos[:2], atol=1e-6)


def _drive_to(env, obs, xy, steps=60):
    costs = []
    for _ in range(steps):
        hand = obs[:2]
        a = np.r_[np.clip((np.asarray(xy) - hand) * 25, -1, 1), 0.0, 1.0]
        obs, r, term, trunc, info = env.step(a)
        costs.append(info["cost"])
        if term or trunc:
            break
    return obs, r, term, info, costs


def test_touching_an_obstacle_costs_one_per_step_and_does_not_end_the_episode(env):
    obs, _ = env.reset(seed=1)
    obs, r, term, info, costs = _drive_to(env, obs, env.obstacle_poses()[0, :2], steps=40)
    assert sum(costs) >= 2 and set(costs) <= {0.0, 1.0}
    assert info["touched"] and not term and r == 0.0
    assert info["failure"] == bool(info["cost"])


def test_the_scripted_expert_reaches_without_touching(env):
    spec = get_safe_reach("safe_reach")
    reached_clean = 0
    for seed in range(8):
        obs, _ = env.reset(seed=seed)
        act = safe_expert(spec)
        for _ in range(80):
            obs, r, term, trunc, info = env.step(act(obs))
            if term or trunc:
                break
        assert not info["touched"], f"seed {seed}: the expert touched an obstacle"
        reached_clean += r == 1.0 and term
    assert reached_clean >= 5


def test_reaching_the_target_pays_one_and_ends_the_episode(env):
    obs, _ = env.reset(seed=2)
    act = DRIVERS["touched_reached"](get_safe_reach("safe_reach"), np.random.default_rng(0))
    total = 0.0
    for _ in range(80):
        obs, r, term, trunc, info = env.step(act(obs))
        total += r
        if term or trunc:
            break
    assert term and total == 1.0 and info["success"] and info["target_distance_m"] <= 0.035


def test_with_three_obstacles_the_state_holds_the_two_nearest_the_hand():
    e = SafeReachEnv("safe_reach_three_obstacles")
    try:
        obs, _ = e.reset(seed=3)
        poses = e.obstacle_poses()
        hand = e._mw.tcp_center[:2]
        near = np.sort(np.argsort(np.linalg.norm(poses[:, :2] - hand, axis=1))[:2])
        np.testing.assert_allclose(obs[OBJECT_XY], poses[near[0], :2], atol=1e-6)
        np.testing.assert_allclose(obs[OBSTACLE_XY], poses[near[1], :2], atol=1e-6)
    finally:
        e.close()


def test_the_four_labels_are_what_an_episode_did():
    assert [label_of(t, r) for t, r in ((False, True), (False, False), (True, True), (True, False))] == [
        "reached_safe",
        "neither",
        "touched_reached",
        "touched_missed",
    ]


def test_demos_come_in_the_asked_mix_labelled_by_what_happened_and_resume(tmp_path):
    counts = {"reached_safe": 2, "neither": 1, "touched_reached": 1, "touched_missed": 1}
    s = generate_safe_reach_demos(tmp_path, counts, seed=3, progress=False)
    assert {k: len(v) for k, v in s.written.items()} == counts
    for label, paths in s.written.items():
        for p in paths:
            ep = read_episode(p)
            touched, reached = bool(ep.cost.sum() > 0), bool(ep.reward.sum() > 0)
            assert ep.kind == ("failure" if touched else "task")
            assert label == label_of(touched, reached)
    assert len(load_dataset(tmp_path).episodes) == 5
    # an interrupted set (one bag lost) completes to the same episodes
    first = sorted(s.written["reached_safe"])[1]
    before = read_episode(first).obs.copy()
    import shutil

    shutil.rmtree(first)
    again = generate_safe_reach_demos(tmp_path, counts, seed=3, progress=False)
    np.testing.assert_array_equal(read_episode(sorted(again.written["reached_safe"])[1]).obs, before)
