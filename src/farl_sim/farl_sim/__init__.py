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
    """Register the four `FailureBench/*-v0` ids with gymnasium (idempotent)."""
    for spec in TASKS.values():
        if spec.env_id not in gym.registry:
            gym.register(
                id=spec.env_id,
                entry_point="farl_sim.failure_env:FailureBenchEnv",
                kwargs={"task": spec.name},
                disable_env_checker=True,
            )


def make_env(task: str, **kwargs):
    """Build a FailureBench env by task name or id."""
    from farl_sim.failure_env import FailureBenchEnv

    return FailureBenchEnv(get_task(task), **kwargs)


choose_gl_backend()
register_envs()
