"""Where the shield's replacement action comes from: the frozen recovery policy, or MPPI over the
world model (sample action sequences, score them by predicted reward, drop those whose risk
exceeds eps_safe, and take a reward-weighted average of the first actions of the rest)."""

from __future__ import annotations

import torch

from farl_learning.nets import GaussianPolicy
from farl_learning.world_model import WorldModel


class PolicyRecovery:
    name = "policy"

    def __init__(self, policy: GaussianPolicy) -> None:
        self.policy = policy.eval()

    @torch.inference_mode()
    def actions(self, obs: torch.Tensor) -> torch.Tensor:
        return self.policy(obs)[0]


class MPPIRecovery:
    name = "mppi"

    def __init__(
        self,
        wm: WorldModel,
        recovery: GaussianPolicy,
        eps_safe: float,
        horizon: int,
        gamma_risk: float,
        samples: int = 64,
        noise_std: float = 0.3,
        temperature: float = 0.5,
        seed: int = 0,
    ) -> None:
        self.wm, self.recovery = wm.eval(), recovery.eval()
        self.eps_safe, self.horizon, self.samples = eps_safe, horizon, samples
        self.noise_std, self.gamma, self.temperature = noise_std, gamma_risk, temperature
        self.gen = torch.Generator().manual_seed(seed)

    @torch.inference_mode()
    def actions(self, obs: torch.Tensor) -> torch.Tensor:
        B, N, H = obs.shape[0], self.samples, self.horizon
        base = self.recovery(obs)[0]  # (B, A): sequences are sampled around the recovery policy
        A = base.shape[-1]
        noise = torch.randn(H, B, N, A, generator=self.gen) * self.noise_std
        noise[:, :, 0] = 0.0  # sample 0 is the recovery policy itself
        z = self.wm.encode(obs).unsqueeze(1).expand(B, N, -1).reshape(B * N, -1)
        seq = (base.unsqueeze(1) + noise).clamp(-1, 1)  # (H, B, N, A), first action around base
        reward = torch.zeros(B * N)
        risk = torch.zeros(B * N)
        for i in range(H):
            a = seq[i].reshape(B * N, A)
            za = torch.cat([z, a], -1)
            reward += self.wm.two_hot.decode(self.wm.reward(za))
            risk += self.gamma**i * self.wm.constraint_prob(z, a)
            z = self.wm.next(z, a)
        reward, risk = reward.view(B, N), risk.view(B, N)
        score = reward / self.temperature
        score = torch.where(risk <= self.eps_safe, score, torch.full_like(score, -1e9))
        # If no sample is safe enough, the least risky one.
        none_safe = (risk > self.eps_safe).all(1)
        score[none_safe] = -risk[none_safe] * 1e3
        w = torch.softmax(score, 1)
        return (w.unsqueeze(-1) * seq[0]).sum(1)
