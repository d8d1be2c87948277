"""Batches from episode-bag datasets: single transitions, and H-step windows that never cross an
episode boundary (for the world model's multi-step loss, paper eq. 4)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from farl_common.bags import Dataset


@dataclass
class Transitions:
    """A `bags.Dataset` as torch tensors for offline training (world model, Uni-O4 critics, risk
    critics): each step also links to the next action of its episode, and batches are drawn here
    (single steps, or H-step windows). farl_common stays free of torch, so this view lives here."""

    obs: torch.Tensor
    action: torch.Tensor
    reward: torch.Tensor
    cost: torch.Tensor
    done: torch.Tensor
    next_obs: torch.Tensor
    next_action: torch.Tensor
    has_next_action: torch.Tensor
    episode: torch.Tensor

    @classmethod
    def from_dataset(cls, ds: Dataset) -> Transitions:
        n = len(ds)
        ep = ds.episode_index
        same_next = np.zeros(n, dtype=bool)
        same_next[:-1] = ep[1:] == ep[:-1]
        next_action = np.zeros_like(ds.action)
        next_action[:-1] = ds.action[1:]
        t = lambda x, dt=torch.float32: torch.as_tensor(np.asarray(x), dtype=dt)
        return cls(
            t(ds.obs),
            t(ds.action),
            t(ds.reward),
            t(ds.cost),
            t(ds.done),
            t(ds.next_obs),
            t(next_action),
            t(same_next & ~ds.done, torch.bool),
            t(ep, torch.long),
        )

    def __len__(self) -> int:
        return len(self.reward)

    def with_cost_reaching_back(self, steps: int) -> Transitions:
        """The same transitions with the cost also 1 on the `steps` steps before each failure of the same
        episode: "a failure within `steps` steps" (`WorldModelConfig.constraint_reach`)."""
        if steps < 0:
            raise ValueError(f"steps must be >= 0, got {steps}")
        cost = self.cost.clone()
        for k in range(1, min(steps, len(self) - 1) + 1):
            same = self.episode[:-k] == self.episode[k:]
            cost[:-k] = torch.maximum(cost[:-k], self.cost[k:] * same)
        return replace(self, cost=cost)

    def sample(self, batch: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
        idx = torch.randint(0, len(self), (batch,), generator=gen)
        return {k: getattr(self, k)[idx] for k in ("obs", "action", "reward", "cost", "done", "next_obs")}

    def windows(
        self, batch: int, horizon: int, gen: torch.Generator, failure_fraction: float = 0.0
    ) -> dict[str, torch.Tensor]:
        """`batch` windows of `horizon` steps: (H, B, ...) tensors and a validity mask (H, B).

        A step is valid while it stays in its start's episode and no failure came before it.
        `failure_fraction` of the windows are drawn to end at or before a failure, which is rare.
        """
        n = len(self)
        n_fail = round(batch * failure_fraction)
        fail_idx = torch.nonzero(self.cost > 0.5).squeeze(-1)
        starts = torch.randint(0, n, (batch - n_fail if len(fail_idx) else batch,), generator=gen)
        if len(fail_idx) and n_fail:
            pick = fail_idx[torch.randint(0, len(fail_idx), (n_fail,), generator=gen)]
            back = torch.randint(0, horizon, (n_fail,), generator=gen)
            starts = torch.cat([starts, (pick - back).clamp(min=0)])
        k = torch.arange(horizon).unsqueeze(1)
        g = (starts.unsqueeze(0) + k).clamp(max=n - 1)
        valid = self.episode[g] == self.episode[starts].unsqueeze(0)
        valid &= starts.unsqueeze(0) + k < n
        # Nothing after a failure: the episode ended there.
        ended = torch.cumsum(self.done[g].float(), 0) - self.done[g].float()
        valid &= ended < 0.5
        out = {
            name: getattr(self, name)[g]
            for name in ("obs", "action", "reward", "cost", "done", "next_obs", "next_action", "has_next_action")
        }
        out["mask"] = valid.float()
        return out
