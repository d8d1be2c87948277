"""Where the shield's replacement action comes from (eq. 11): the frozen recovery policy, or, as the
paper's ablation, MPPI planning over the world model."""

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
    """The paper's MPPI ablation (Sec. V, study 2): plan over the world model without the recovery policy.

    Action sequences of H + 1 steps are drawn from a Gaussian (mean 0 at first, then refitted, as
    MPPI does); each is scored by the world model's predicted reward and its risk, the same discounted
    sum of H + 1 constraint terms as C_H (eq. 10); sequences whose risk exceeds eps_safe are dropped
    and the first action is the reward-weighted mean of the safe ones. If none is safe, the least
    risky sequence's first action."""

    name = "mppi"

    def __init__(
        self,
        wm: WorldModel,
        eps_safe: float,
        horizon: int,
        gamma_risk: float,
        samples: int = 256,
        iterations: int = 3,
        init_std: float = 0.5,
        min_std: float = 0.05,
        temperature: float = 0.5,
        seed: int = 0,
        device: str | torch.device | None = None,
    ) -> None:
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.wm = wm.eval().to(self.device)
        self.eps_safe, self.horizon, self.gamma = eps_safe, horizon, gamma_risk
        self.samples, self.iterations, self.temperature = samples, iterations, temperature
        self.init_std, self.min_std = init_std, min_std
        self.gen = torch.Generator(device=self.device).manual_seed(seed)

    def _score(self, z0: torch.Tensor, seq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Predicted reward and risk (eq. 10's sum over i = 0 .. H) of sequences (H + 1, B, N, A)."""
        steps, B, N, A = seq.shape
        z = z0.unsqueeze(1).expand(B, N, -1).reshape(B * N, -1)
        reward = z.new_zeros(B * N)
        risk = z.new_zeros(B * N)
        for i in range(steps):
            a = seq[i].reshape(B * N, A)
            reward += self.wm.two_hot.decode(self.wm.reward(torch.cat([z, a], -1)))
            risk += self.gamma**i * self.wm.constraint_prob(z, a)
            if i < steps - 1:
                z = self.wm.next(z, a)
        return reward.view(B, N), risk.view(B, N)

    @torch.inference_mode()
    def actions(self, obs: torch.Tensor) -> torch.Tensor:
        """One planned action per row of `obs`, on the CPU."""
        B, N, steps = obs.shape[0], self.samples, self.horizon + 1
        z0 = self.wm.encode(obs.to(self.device))
        A = self.wm.act_dim
        mean = z0.new_zeros(steps, B, 1, A)
        std = z0.new_full((steps, B, 1, A), self.init_std)
        for _ in range(self.iterations):
            noise = torch.randn(steps, B, N, A, generator=self.gen, device=self.device)
            seq = (mean + std * noise).clamp(-1, 1)
            reward, risk = self._score(z0, seq)
            safe = risk <= self.eps_safe
            score = torch.where(safe, reward / self.temperature, torch.full_like(reward, -torch.inf))
            none_safe = ~safe.any(1)
            score[none_safe] = -risk[none_safe] / self.temperature  # steer towards the least risky
            w = torch.softmax(score, 1)[None, :, :, None]  # (1, B, N, 1)
            mean = (w * seq).sum(2, keepdim=True)
            std = (w * (seq - mean) ** 2).sum(2, keepdim=True).sqrt().clamp_min(self.min_std)
        least_risky = seq[0, torch.arange(B, device=self.device), risk.argmin(1)]
        return torch.where(none_safe[:, None], least_risky, mean[0, :, 0]).cpu()
