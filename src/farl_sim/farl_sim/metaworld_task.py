"""What FailureBench's and SafeReach's environments share: a MetaWorld Sawyer scene set up to show its
goal and run for the task's episode length, FailureBench's spaces, the action check, and rendering."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from farl_common.obs_layout import OBS_DIM

ACTION_DIM = 4


class MetaWorldTask(gym.Env):
    """Base of a task env wrapping a MetaWorld scene `self._mw` (set by `_wrap`)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 80}
    render_mode: str | None = None

    def _wrap(self, mw, horizon_steps: int) -> None:
        if not 1 <= horizon_steps <= 500:
            raise ValueError(f"horizon_steps must be in [1, 500] (MetaWorld's limit), got {horizon_steps}")
        self.horizon_steps = horizon_steps
        self._mw = mw
        # MetaWorld hides the goal unless a benchmark task says otherwise; we want it seen.
        mw._partially_observable = False
        # step() clips observations to a cached space built while the goal was hidden (zeros).
        mw.__dict__.pop("sawyer_observation_space", None)
        mw._set_task_called = True
        mw.max_path_length = horizon_steps
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(OBS_DIM,), dtype=np.float64)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(ACTION_DIM,), dtype=np.float32)

    @staticmethod
    def _checked(action: np.ndarray) -> np.float32:
        """The action as MetaWorld takes it, clipped to the box; NaN or a wrong size is refused."""
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.shape != (ACTION_DIM,) or not np.all(np.isfinite(a)):
            raise ValueError(f"action must be {ACTION_DIM} finite floats, got {a!r}")
        return np.clip(a, -1.0, 1.0).astype(np.float32)

    def render(self):
        if self.render_mode != "rgb_array":
            raise RuntimeError("create the env with render_mode='rgb_array' to render frames")
        return self._mw.render()

    def close(self) -> None:
        self._mw.close()
