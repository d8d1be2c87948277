"""FOSP's replay: episodes as one stream of observations, each with the action that led to it, the
reward and cost received on arriving, whether the episode goes on from it, and whether it starts one.
Offline it holds the demonstrations; online each new episode joins it (Algorithm 1, line 15), so the
offline buffer simply becomes the online one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from farl_common.bags import Dataset


@dataclass
class SequenceBuffer:
    obs_dim: int
    act_dim: int
    obs: list[np.ndarray] = field(default_factory=list)
    prev_action: list[np.ndarray] = field(default_factory=list)
    action: list[np.ndarray] = field(default_factory=list)
    reward: list[float] = field(default_factory=list)
    cost: list[float] = field(default_factory=list)
    cont: list[float] = field(default_factory=list)
    first: list[bool] = field(default_factory=list)
    image_size: int | None = None
    """Side of the square camera images each state comes with (FOSP's 64); None: states only."""
    image: list[np.ndarray] = field(default_factory=list)
    episodes: int = 0
    _cache: dict[str, torch.Tensor] | None = None

    def add_episode(
        self,
        obs: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        costs: np.ndarray,
        terminated: bool,
        images: np.ndarray | None = None,
    ) -> None:
        """One episode: T+1 observations, T actions, rewards and costs; `terminated` when its last step
        ended it (success or failure) rather than the time limit, so nothing follows its last state.
        With `image_size`, `images` holds the camera image (S, S, 3, uint8) seen with each state."""
        obs, actions = np.asarray(obs, np.float32), np.asarray(actions, np.float32)
        steps = len(actions)
        if obs.shape != (steps + 1, self.obs_dim) or actions.shape != (steps, self.act_dim):
            raise ValueError(
                f"an episode needs T+1 states of {self.obs_dim} and T actions of {self.act_dim}; "
                f"got {obs.shape} and {actions.shape}"
            )
        if self.image_size is not None:
            size = self.image_size
            if images is None or np.shape(images) != (steps + 1, size, size, 3):
                got = "none" if images is None else np.shape(images)
                raise ValueError(f"an episode needs T+1 camera images of {size}x{size}x3; got {got}")
            if np.asarray(images).dtype != np.uint8:
                raise ValueError(f"camera images are uint8 pixels, got {np.asarray(images).dtype}")
        elif images is not None:
            raise ValueError("this replay holds states only (image_size None): an episode with images")
        if not (np.all(np.isfinite(obs)) and np.all(np.isfinite(actions))):
            raise ValueError("an episode with NaN or infinite states or actions is not trained on")
        zero = np.zeros(self.act_dim, np.float32)
        for t in range(steps + 1):
            self.obs.append(obs[t])
            self.prev_action.append(actions[t - 1] if t else zero)
            self.action.append(actions[t] if t < steps else zero)
            self.reward.append(float(rewards[t - 1]) if t else 0.0)
            self.cost.append(float(costs[t - 1]) if t else 0.0)
            self.cont.append(0.0 if (t == steps and terminated) else 1.0)
            self.first.append(t == 0)
            if images is not None:
                self.image.append(np.ascontiguousarray(images[t].transpose(2, 0, 1)))  # the CNN's (3, S, S)
        self.episodes += 1
        self._cache = None

    @classmethod
    def from_dataset(cls, ds: Dataset, frames: list[np.ndarray] | None = None) -> SequenceBuffer:
        """The dataset's episodes; with `frames` (one (T+1, S, S, 3) array per episode of `ds.episodes`,
        `farl_common.bag_images.dataset_frames`) each state comes with its camera image."""
        size = None if frames is None else int(frames[0].shape[1]) if frames else None
        buf = cls(ds.obs.shape[1], ds.action.shape[1], image_size=size)
        for i in range(len(ds.episodes)):
            m = ds.episode_index == i
            if not m.any():
                continue
            obs = np.concatenate([ds.obs[m], ds.next_obs[m][-1:]])
            images = frames[i] if frames is not None else None
            buf.add_episode(obs, ds.action[m], ds.reward[m], ds.cost[m], bool(ds.done[m][-1]), images)
        return buf

    def discounted_maxima(self, gamma: float) -> tuple[float, float]:
        """The largest discounted return and discounted cost of any episode held (eq. 22's Q^* and C^*,
        measured rather than bounded)."""
        best_r = best_c = 0.0
        ret = cost = 0.0
        disc = 1.0
        for t in range(len(self)):
            if self.first[t]:
                best_r, best_c = max(best_r, ret), max(best_c, cost)
                ret = cost = 0.0
                disc = 1.0
                continue
            ret += disc * self.reward[t]
            cost += disc * self.cost[t]
            disc *= gamma
        return max(best_r, ret), max(best_c, cost)

    def __len__(self) -> int:
        return len(self.obs)

    def _tensors(self) -> dict[str, torch.Tensor]:
        if self._cache is None:
            f = lambda x: torch.as_tensor(np.asarray(x, np.float32))
            self._cache = {
                "obs": f(self.obs),
                "prev_action": f(self.prev_action),
                "action": f(self.action),
                "reward": f(self.reward),
                "cost": f(self.cost),
                "cont": f(self.cont),
                "first": torch.as_tensor(np.asarray(self.first, bool)),
            }
            if self.image_size is not None:
                self._cache["image"] = torch.as_tensor(np.stack(self.image))  # uint8 (N, 3, S, S)
        return self._cache

    def sample(self, batch: int, length: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
        """`batch` windows of `length` consecutive stream entries; a window may cross into the next
        episode (its `first` flag resets the state there) and always starts from a fresh state."""
        if len(self) < length + 1:
            raise ValueError(f"the replay holds {len(self)} states, fewer than one window of {length}")
        data = self._tensors()
        start = torch.randint(0, len(self) - length, (batch,), generator=gen)
        idx = start[:, None] + torch.arange(length)[None]
        out = {k: v[idx] for k, v in data.items()}
        out["first"] = out["first"].clone()
        out["first"][:, 0] = True
        return out
