"""Demonstrations of the three kinds, as `farl demos` writes them."""

from __future__ import annotations

import numpy as np
import pytest

from farl_common.bags import load_dataset, read_episode
from farl_common.obs_layout import HAND, OBJECT_XY, PREVIOUS_OBJECT_XY
from farl_sim import TASKS, make_env
from farl_sim.demos import STILL_M, _about_to_strike, _preroll, generate_demos
from farl_sim.experts import failure_driver
from farl_sim.hazards import hazard_distance_m


def episodes_of(demo_dir, kind):
    return [read_episode(p) for p in sorted(demo_dir.glob(f"{kind}_*"))]


def test_task_demos_are_successful_medium_expert(demo_dir):
    eps = episodes_of(demo_dir, "task")
    assert len(eps) == 2 and all(e.outcome == "success" and not e.failed for e in eps)
    # medium expert: noisy, so actions are not exactly the deterministic script's
    assert all(np.abs(e.action[:, :3]).std() > 0.05 for e in eps)


def test_recovery_demos_start_near_failure_and_end_safe(demo_dir):
    spec = TASKS["fragile_push_wall"]
    for e in episodes_of(demo_dir, "recovery"):
        assert hazard_distance_m(spec, e.obs[0]) <= spec.near_failure_m + 1e-6
        assert e.outcome == "success" and not e.failed and e.kind == "recovery"
        assert len(e) == 40


def test_bounded_soccer_recovery_demos_hold_still_where_the_driver_would_strike(tmp_path):
    """A struck ball rolls on without slowing, so Bounded Soccer's recovery is not to strike it."""
    spec = TASKS["bounded_soccer"]
    generate_demos("bounded_soccer", "recovery", 2, tmp_path, seed=0, progress=False)
    eps = episodes_of(tmp_path, "recovery")
    assert len(eps) == 2
    driver = failure_driver(spec)
    for e in eps:
        first = e.obs[0]
        assert np.linalg.norm(first[HAND][:2] - first[OBJECT_XY]) <= spec.strike_m
        assert np.all(e.action == 0.0) and e.outcome == "success" and not e.failed
        # The hand's own lag may still nudge the ball (up to 3 cm here); it ends at rest all the same.
        assert np.linalg.norm(e.obs[-1][OBJECT_XY] - e.obs[-1][PREVIOUS_OBJECT_XY]) < STILL_M
        # The start is near failure: the driver, let go on from it, puts the ball out of bounds.
        env = make_env("bounded_soccer")
        obs, _ = env.reset(seed=int(e.seed))
        obs = _preroll(env, obs, driver, _about_to_strike(spec.strike_m))
        np.testing.assert_allclose(obs, first, atol=1e-5)
        for _ in range(spec.horizon_steps):
            obs, _, terminated, truncated, info = env.step(driver(obs))
            if terminated or truncated:
                break
        env.close()
        assert info["failure"]


def test_failure_demos_end_in_a_failure(demo_dir):
    for e in episodes_of(demo_dir, "failure"):
        assert e.failed and e.done[-1] and e.cost[-1] == 1.0 and e.cost[:-1].sum() == 0


@pytest.mark.parametrize("task", sorted(TASKS))
def test_every_task_makes_every_kind(tmp_path, task):
    for kind in ("task", "recovery", "failure"):
        s = generate_demos(task, kind, 1, tmp_path, seed=1, progress=False)
        assert len(s.written) == 1
    ds = load_dataset(tmp_path)
    assert {e.kind for e in ds.episodes} == {"task", "recovery", "failure"}


def test_demos_are_deterministic_under_a_seed(tmp_path):
    for d, seed in (("a", 3), ("b", 3), ("c", 4)):
        generate_demos("bounded_push", "task", 2, tmp_path / d, seed=seed, progress=False)
    a, b, c = (load_dataset(tmp_path / d) for d in "abc")
    np.testing.assert_array_equal(a.obs, b.obs)
    np.testing.assert_array_equal(a.action, b.action)
    assert a.obs.shape != c.obs.shape or not np.allclose(a.obs, c.obs)


def test_demo_clash_and_bad_arguments(tmp_path):
    generate_demos("bounded_push", "task", 1, tmp_path, seed=0, progress=False)
    with pytest.raises(FileExistsError, match="--seed"):
        generate_demos("bounded_push", "task", 1, tmp_path, seed=0, progress=False)
    with pytest.raises(ValueError, match="kind"):
        generate_demos("bounded_push", "online", 1, tmp_path, progress=False)
    with pytest.raises(KeyError):
        generate_demos("push", "task", 1, tmp_path, progress=False)


def test_hazard_distance_matches_the_env():
    env = make_env("bounded_soccer")
    obs, info = env.reset(seed=0)
    assert info["hazard_distance_m"] == pytest.approx(hazard_distance_m(env.unwrapped.spec_task, obs))


def test_failure_demos_from_a_given_policy(tmp_path):
    from farl_sim.experts import failure_driver

    drive = failure_driver("fragile_push_wall")
    s = generate_demos(
        "fragile_push_wall",
        "failure",
        2,
        tmp_path,
        seed=0,
        progress=False,
        policy=lambda obs, rng: drive(obs) + rng.normal(0, 0.01, 4),
    )
    assert len(s.written) == 2 and all(p.name.startswith("failure_policy_") for p in s.written)
    assert all(read_episode(p).failed for p in s.written)
    never = generate_demos(
        "bounded_push",
        "failure",
        2,
        tmp_path / "x",
        progress=False,
        allow_fewer=True,
        policy=lambda obs, rng: np.zeros(4),
    )  # standing still never fails
    assert never.written == [] and never.attempts == 20
    kept = generate_demos(
        "fragile_push_wall",
        "task",
        3,
        tmp_path / "rollouts",
        progress=False,
        policy=lambda obs, rng: drive(obs) if rng.random() < 0.5 else np.zeros(4),
        policy_label="learned:abc",
    )  # task rollouts of a policy are kept whatever their outcome, under the policy's name
    eps = [read_episode(p) for p in kept.written]
    assert len(eps) == 3 and kept.attempts == 3 and all(p.name.startswith("task_policy_") for p in kept.written)
    assert {e.policy for e in eps} == {"learned:abc"} and {e.kind for e in eps} == {"task"}
    with pytest.raises(ValueError, match="task or failure"):
        generate_demos("bounded_push", "recovery", 1, tmp_path, progress=False, policy=lambda o, r: o[:4])


def test_pretraining_takes_its_own_policys_failures_as_many_as_asked(tmp_path):
    import torch

    from farl_bringup.pipeline import POLICY_FAILURE_SEED_OFFSET, PretrainConfig, policy_failures, policy_label
    from farl_learning.nets import GaussianPolicy

    task, out = "fragile_push_wall", tmp_path / "policy_failures"
    obs_dim = make_env(task).observation_space.shape[0]
    torch.manual_seed(0)
    mine, other = GaussianPolicy(obs_dim, 4).eval(), GaussianPolicy(obs_dim, 4).eval()
    drive = failure_driver(task)
    # Three failures under `mine`'s name, as a pre-training that asked for three left them (played by
    # the scripted wall driver, so that they fail at once).
    generate_demos(
        task,
        "failure",
        3,
        out,
        seed=POLICY_FAILURE_SEED_OFFSET,
        progress=False,
        policy=lambda obs, rng: drive(obs),
        policy_label=policy_label(mine),
    )
    kept, errors = policy_failures(task, mine, out, PretrainConfig(policy_failure_episodes=2), 0, False)
    assert [e.path.name for e in kept] == sorted(p.name for p in out.iterdir())[:2] and not errors
    assert len(list(out.iterdir())) == 3 and all(e.failed and e.policy == policy_label(mine) for e in kept)
    # Another policy's pre-training (a random one, which never fails) neither uses nor keeps them.
    kept, _ = policy_failures(task, other, out, PretrainConfig(policy_failure_episodes=1), 0, False)
    assert kept == [] and not any(out.glob("failure_policy_*"))
    cfg = PretrainConfig()
    assert cfg.scaled(0.5).policy_failure_episodes == cfg.policy_failure_episodes // 2
    assert cfg.scaled(0.5, 200).policy_failure_episodes == 200 and cfg.scaled(1.0, 0).policy_failure_episodes == 0
    with pytest.raises(ValueError, match="policy_failures"):
        cfg.scaled(1.0, -1)
