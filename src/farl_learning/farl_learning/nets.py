"""Small networks shared by the offline and online learners: MLPs, a Gaussian policy, critics, and
the frozen observation normaliser (its statistics come from the demonstrations and never change)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

LOG_STD_MIN, LOG_STD_MAX = -5.0, 1.0


def mlp(
    inp: int, out: int, hidden: int = 256, layers: int = 2, act: type[nn.Module] = nn.Mish, layer_norm: bool = True
) -> nn.Sequential:
    mods: list[nn.Module] = []
    d = inp
    for _ in range(layers):
        mods += [nn.Linear(d, hidden)]
        if layer_norm:
            mods.append(nn.LayerNorm(hidden))
        mods.append(act())
        d = hidden
    mods.append(nn.Linear(d, out))
    return nn.Sequential(*mods)


class Normalizer(nn.Module):
    """z-scores observations with statistics fitted once on the offline data, then frozen."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    @classmethod
    def fit(cls, obs: np.ndarray) -> Normalizer:
        n = cls(obs.shape[1])
        n.mean.copy_(torch.as_tensor(obs.mean(0), dtype=torch.float32))
        # Constant features (padding slots) keep std 1, so they stay zero rather than blow up.
        std = obs.std(0)
        n.std.copy_(torch.as_tensor(np.where(std < 1e-6, 1.0, std), dtype=torch.float32))
        return n

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return ((obs - self.mean) / self.std).clamp(-10.0, 10.0)


class GaussianPolicy(nn.Module):
    """pi(a|s) = N(tanh(f(s)), diag(exp(log_std))): the mean stays in the action box and draws are
    clipped to it, so PPO's likelihood is of the clipped draw (`executed_log_prob`)."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: int = 256, layers: int = 2, init_log_std: float = -1.0):
        super().__init__()
        self.norm = Normalizer(obs_dim)
        self.net = mlp(obs_dim, act_dim, hidden, layers)
        self.log_std = nn.Parameter(torch.full((act_dim,), init_log_std))

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean = torch.tanh(self.net(self.norm(obs)))
        return mean, self.log_std.clamp(LOG_STD_MIN, LOG_STD_MAX).expand_as(mean)

    def dist(self, obs: torch.Tensor) -> torch.distributions.Normal:
        mean, log_std = self(obs)
        return torch.distributions.Normal(mean, log_std.exp())

    def log_prob(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        return self.dist(obs).log_prob(act).sum(-1)

    def executed_log_prob(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """log pi(a|s) of an action as executed, a draw clipped to [-1, 1] (`clipped_log_prob`). An
        episode bag holds only the clipped action, so both online learners, the learner node reading
        bags and `farl finetune`, take their PPO ratios (eq. 3) from this one likelihood."""
        return clipped_log_prob(self.dist(obs), act)

    @torch.no_grad()
    def act(
        self, obs: torch.Tensor, deterministic: bool = False, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """One action per row of `obs`: the mean, or one Gaussian draw from `generator` (torch's default
        one if None). A draw is not clipped here: the caller clips it to the action box, and the
        envelope and the robot bound what is executed further."""
        mean, log_std = self(obs)
        if deterministic:
            return mean
        return mean + log_std.exp() * torch.randn(mean.shape, generator=generator)


def clipped_log_prob(dist: torch.distributions.Normal, act: torch.Tensor) -> torch.Tensor:
    """log-likelihood of `act` under `dist` with every draw clipped to [-1, 1]: the Gaussian density
    inside the box; on a bound, the log of the probability mass beyond it, which every draw past the
    bound was clipped to (the clipped-action likelihood of Fujita and Maeda, 2018). Summed over the
    action's dimensions."""
    mean, std = dist.mean, dist.stddev
    upper = torch.special.log_ndtr((mean - 1.0) / std)  # log P(draw >= 1)
    lower = torch.special.log_ndtr((-1.0 - mean) / std)  # log P(draw <= -1)
    on_bound = 1.0 - 1e-6
    lp = torch.where(act >= on_bound, upper, torch.where(act <= -on_bound, lower, dist.log_prob(act)))
    return lp.sum(-1)


class ValueNet(nn.Module):
    def __init__(self, obs_dim: int, hidden: int = 256, layers: int = 2) -> None:
        super().__init__()
        self.norm = Normalizer(obs_dim)
        self.net = mlp(obs_dim, 1, hidden, layers)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(self.norm(obs)).squeeze(-1)


class QNet(nn.Module):
    """Q(s, a); `n` heads for twin/ensemble critics, returned stacked on dim 0."""

    def __init__(
        self, obs_dim: int, act_dim: int, hidden: int = 256, layers: int = 2, n: int = 2, out_sigmoid: bool = False
    ) -> None:
        super().__init__()
        self.norm = Normalizer(obs_dim)
        self.heads = nn.ModuleList(mlp(obs_dim + act_dim, 1, hidden, layers) for _ in range(n))
        self.out_sigmoid = out_sigmoid

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        x = torch.cat([self.norm(obs), act], -1)
        q = torch.stack([h(x).squeeze(-1) for h in self.heads])
        return torch.sigmoid(q) if self.out_sigmoid else q


def share_normalizer(norm: Normalizer, *modules: nn.Module) -> None:
    """Copy fitted statistics into every module's normaliser (each keeps its own buffers for saving)."""
    for m in modules:
        for sub in m.modules():
            if isinstance(sub, Normalizer) and sub is not norm:
                sub.mean.copy_(norm.mean)
                sub.std.copy_(norm.std)


def gradient_step(opt: torch.optim.Optimizer, loss: torch.Tensor, clip: tuple[Any, float] | None = None) -> None:
    """One optimiser step on `loss`; `clip` = (parameters, max norm) clips their gradient first."""
    opt.zero_grad()
    loss.backward()
    if clip is not None:
        torch.nn.utils.clip_grad_norm_(clip[0], clip[1])
    opt.step()


@torch.no_grad()
def polyak(target: nn.Module, source: nn.Module, tau: float) -> None:
    """Move a target network's weights a fraction `tau` towards the online network's."""
    for p, pt in zip(source.parameters(), target.parameters(), strict=True):
        pt.lerp_(p, tau)
