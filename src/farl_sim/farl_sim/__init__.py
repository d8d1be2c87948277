"""FailureBench: MetaWorld tasks whose failures need a human to fix (paper section V.A)."""

from __future__ import annotations

import importlib.util
import os

import gymnasium as gym

from farl_sim.tasks import ENV_IDS, TASKS, TaskSpec, get_task

__all__ = ["ENV_IDS", "TASKS", "TaskSpec", "choose_gl_backend", "get_task", "make_env", "register_envs"]


def choose_gl_backend() -> str:
    """MuJoCo's offscreen OpenGL: `MUJOCO_GL` if set, else EGL (a GPU's, or Mesa's software one).

    Mesa's software renderers (llvmpipe, behind EGL without a GPU and behind OSMesa) and triton, which
    torch imports on its first optimiser step, each bring an LLVM: loaded renderer first, the process
    segfaults on triton's import; triton first, both work. So triton is imported here, before any
    GL context exists."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    if os.environ["MUJOCO_GL"] in ("egl", "osmesa") and importlib.util.find_spec("triton") is not None:
        import triton  # noqa: F401
    return os.environ["MUJOCO_GL"]


def register_envs() -> None:
    """Register the `FailureBench/*-v0` ids, and FOSP's `FOSP/SafeReach*-v0` beside them, with gymnasium
    (idempotent), each with its episode length.

    The env checker is off by default (it re-checks every step's spaces); `make_env(..., check=True)`
    and the tests turn it on."""
    from farl_sim.safe_reach_tasks import SAFE_REACH

    for spec in TASKS.values():
        _register(spec.env_id, "farl_sim.failure_env:FailureBenchEnv", {"task": spec.name}, spec.horizon_steps)
    for spec in SAFE_REACH.values():
        _register(spec.env_id, "farl_sim.safe_reach:SafeReachEnv", {"variant": spec.name}, spec.horizon_steps)


def _register(env_id: str, entry_point: str, kwargs: dict, steps: int) -> None:
    # the entry point is a string: MetaWorld and MuJoCo load on gym.make, not on import
    if env_id not in gym.registry:
        gym.register(
            id=env_id, entry_point=entry_point, kwargs=kwargs, max_episode_steps=steps, disable_env_checker=True
        )


def make_env(task: str, horizon_steps: int | None = None, check: bool = False, **kwargs) -> gym.Env:
    """`gym.make` of a FailureBench task by name or id, or of a SafeReach variant by name. `horizon_steps`
    shortens or lengthens the episode (the time limit and MetaWorld's path length alike); `check` turns
    gymnasium's env checker on. The FailureBench env itself (`hazard_distance_m`, `spec_task`, MuJoCo data)
    is `env.unwrapped`."""
    from farl_sim.safe_reach_tasks import SAFE_REACH, get_safe_reach

    spec = get_safe_reach(task) if task in SAFE_REACH else get_task(task)
    horizon = horizon_steps or spec.horizon_steps
    return gym.make(
        spec.env_id, max_episode_steps=horizon, horizon_steps=horizon, disable_env_checker=not check, **kwargs
    )


choose_gl_backend()
register_envs()
