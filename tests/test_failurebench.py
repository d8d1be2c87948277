"""FailureBench: the four tasks step, their failures trigger (by contact or boundary), experts succeed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import mujoco
import numpy as np
import pytest

import farl_sim  # noqa: F401 - registers the gymnasium ids
from farl_common.obs_layout import (
    GOAL_XY,
    HAND,
    OBJECT,
    OBJECT_XY,
    OBS_DIM,
    OBS_LAYOUT,
    OBSTACLE_XY,
    PREVIOUS_OBJECT_XY,
    field_slice,
)
from farl_sim import TASKS, make_env
from farl_sim.experts import failure_driver, task_expert

TASK_NAMES = sorted(TASKS)


def rollout(env, policy, seed: int, steps: int = 200):
    obs, _ = env.reset(seed=seed)
    info: dict = {}
    ever_success = False
    for k in range(steps):
        obs, _, terminated, truncated, info = env.step(policy(obs))
        ever_success |= info["success"]
        if terminated or truncated:
            return k + 1, terminated, ever_success, info
    return steps, False, ever_success, info


@pytest.mark.parametrize("name", TASK_NAMES)
def test_registered_env_steps_with_layout_and_info(name):
    env = gym.make(TASKS[name].env_id, disable_env_checker=False)
    obs, info = env.reset(seed=3)
    assert obs.shape == (OBS_DIM,) and sum(n for _, n in OBS_LAYOUT) == OBS_DIM
    assert np.linalg.norm(obs[field_slice("goal_pos_m")]) > 0.5, "the goal must be visible in the observation"
    _, reward, terminated, truncated, info = env.step(np.zeros(4))
    assert set(info) >= {"cost", "failure", "success"}
    assert info["cost"] in (0.0, 1.0) and isinstance(info["failure"], bool) and isinstance(info["success"], bool)
    assert np.isfinite(reward) and not terminated and not truncated
    env.close()


# MetaWorld's positions have no bounds, so the observation Box is unbounded on purpose.
@pytest.mark.filterwarnings("ignore:.*Box observation space m(in|ax)imum value")
@pytest.mark.parametrize("name", TASK_NAMES)
def test_make_env_is_gym_make_with_the_time_limit_and_passes_the_env_checker(name):
    from gymnasium.utils.env_checker import check_env

    env = make_env(name, horizon_steps=7, check=True)
    assert env.spec.id == TASKS[name].env_id and env.spec.max_episode_steps == 7
    assert gym.make(TASKS[name].env_id).spec.max_episode_steps == TASKS[name].horizon_steps
    env.reset(seed=0)
    ends = [env.step(np.zeros(4))[3] for _ in range(7)]
    assert ends == [False] * 6 + [True]  # truncated at the horizon, not before
    check_env(env.unwrapped, skip_render_check=True)
    env.close()


@pytest.mark.parametrize("name", TASK_NAMES)
def test_straight_at_the_hazard_fails_and_ends_the_episode(name):
    env = make_env(name)
    failed = 0
    for seed in range(3):
        _, terminated, _, info = rollout(env, failure_driver(name), seed)
        if terminated:
            assert info["failure"] and info["cost"] == 1.0 and not info["success"]
            failed += 1
    assert failed >= 2
    env.close()


@pytest.mark.parametrize("name", TASK_NAMES)
def test_expert_succeeds_mostly_without_failing(name):
    env = make_env(name)
    results = [rollout(env, task_expert(name), seed) for seed in range(6)]
    successes = sum(r[2] and not r[1] for r in results)
    failures = sum(r[1] for r in results)
    assert successes >= 5 and failures <= 1, results
    env.close()


def test_reset_is_deterministic_under_a_seed():
    env = make_env("obstructed_push")
    a, _ = env.reset(seed=11)
    b, _ = env.reset(seed=11)
    c, _ = env.reset(seed=12)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_wall_failure_is_a_contact_not_a_distance():
    env = make_env("fragile_push_wall")
    env.reset(seed=0)
    base = env.unwrapped
    m, d = base.mujoco_model, base.mujoco_data
    qadr = m.jnt_qposadr[m.body("obj").jntadr[0]]
    wall_y = d.body("wall").xpos[1]
    d.qpos[qadr : qadr + 3] = [0.1, wall_y - 0.01 - 0.0205, 0.02]  # 0.5 mm short of the wall face
    mujoco.mj_forward(m, d)
    assert not base.in_failure(base._mw._get_obs())
    d.qpos[qadr : qadr + 3] = [0.1, wall_y - 0.01 - 0.015, 0.02]  # pressed 5 mm into it
    mujoco.mj_forward(m, d)
    assert base.in_failure(base._mw._get_obs())


def test_named_fields_read_what_the_simulation_holds():
    """The layout's slices pick the hand, the object, its previous position and the goal out of
    MetaWorld's observation (every consumer reads the state through them)."""
    env = make_env("fragile_push_wall")
    first, _ = env.reset(seed=2)
    obs, *_ = env.step(np.array([0.0, 1.0, 0.0, 0.0]))
    mw = env.unwrapped._mw
    np.testing.assert_allclose(obs[HAND], mw.data.body("hand").xpos, atol=1e-9)
    np.testing.assert_allclose(obs[OBJECT], mw._get_pos_objects()[:3], atol=1e-9)
    np.testing.assert_allclose(obs[PREVIOUS_OBJECT_XY], first[OBJECT_XY], atol=1e-9)
    np.testing.assert_allclose(obs[GOAL_XY], mw._target_pos[:2], atol=1e-9)
    assert not np.allclose(obs[HAND], first[HAND])  # the step moved the hand: a stale slot would show
    env.close()


def test_vase_sits_between_start_and_goal_and_is_observed():
    env = make_env("obstructed_push")
    obs, _ = env.reset(seed=5)
    puck, vase, goal = obs[OBJECT_XY], obs[OBSTACLE_XY], obs[GOAL_XY]
    t = np.dot(vase - puck, goal - puck) / np.dot(goal - puck, goal - puck)
    assert 0.3 < t < 0.7
    assert np.linalg.norm(puck + t * (goal - puck) - vase) < 1e-6
    np.testing.assert_allclose(env.unwrapped.mujoco_data.body("farl_vase").xpos[:2], vase)


def test_non_finite_action_is_refused():
    env = make_env("bounded_push")
    env.reset(seed=0)
    with pytest.raises(ValueError, match="finite"):
        env.step(np.array([0.0, np.nan, 0.0, 0.0]))
    with pytest.raises(ValueError):
        env.step(np.zeros(3))


def test_unknown_task_names_the_valid_ones():
    with pytest.raises(KeyError, match="fragile_push_wall"):
        make_env("fragile_push")


def test_offscreen_render_headless():
    code = (
        "import numpy as np\n"
        "from farl_sim import make_env\n"
        "env = make_env('fragile_push_wall', render_mode='rgb_array', image_width=160, image_height=120)\n"
        "env.reset(seed=0)\n"
        "img = env.render()\n"
        "assert img.shape == (120, 160, 3) and img.dtype == np.uint8 and img.std() > 5, (img.shape, img.std())\n"
        "env.close()\n"
        "print('rendered')\n"
    )
    env = {**os.environ, "MUJOCO_GL": os.environ.get("FARL_TEST_MUJOCO_GL", "egl")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0 and "rendered" in out.stdout, out.stderr[-2000:]


def test_a_generated_scene_is_written_once_whatever_the_number_of_processes() -> None:
    """Each process wrote its scene into a new temporary folder and left it behind (a hundred a day on a
    benchmark machine): the same scene now lands in the one folder named by its content."""
    from farl_sim.scene_assets import metaworld_scene, write_scene

    text = metaworld_scene("sawyer_push_v3.xml").replace("</worldbody>", "<!-- a test -->\n</worldbody>", 1)
    first = Path(write_scene("sawyer_push_v3.xml", "farl_scene_test.xml", text))
    scenes = first.parents[2]
    before = sorted(scenes.iterdir())
    assert write_scene("sawyer_push_v3.xml", "farl_scene_test.xml", text) == str(first)
    assert sorted(scenes.iterdir()) == before and not any(p.name.startswith(".") for p in before)
    assert first.read_text() == text and (first.parents[1] / "scene").is_symlink()
    other = write_scene("sawyer_push_v3.xml", "farl_scene_test.xml", text + "<!-- -->")
    assert Path(other).parents[1] != first.parents[1]
    mujoco = pytest.importorskip("mujoco")
    assert mujoco.MjModel.from_xml_path(str(first)).nbody > 0  # the links resolve its includes
