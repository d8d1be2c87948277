"""FailureBench: MetaWorld tasks whose failures need a human to fix (paper section V.A)."""

from __future__ import annotations

import gymnasium as gym

from farl_sim.tasks import ENV_IDS, TASKS, TaskSpec, get_task

__all__ = ["ENV_IDS", "TASKS", "TaskSpec", "get_task", "make_env", "register_envs"]


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


register_envs()
