"""Risk critics: how likely is (s, a) to lead to an IR failure soon. All batched in torch.

- `WorldModelRisk` (FARL, eq. 10): encode s, roll the latent H steps with the task policy acting
  on decoded states, sum gamma_risk^i * C(z_i, a_i).
- `QRiskCritic` (Recovery RL, eq. 15-16): Q_risk(s, a) = c + (1 - c) * gamma_risk * Q_risk(s', pi(s')),
  the discounted probability of a future failure; trained offline on the same data. (The paper's
  eq. 16 prints (1 - gamma_safe) where Recovery RL has (1 - c) * gamma_safe; this follows Recovery RL.)
- `ReachabilityCritic` (FOSP, eq. 5 and 30): the reachability estimation function as a Q function,
  U(s, a) = max(c, gamma_u * U(s', a')), trained in-sample as FOSP trains u_xi (eq. 30): a' is the
  action the data took next, so U is the (discounted) chance that the *demonstrated* behaviour goes
  on to enter the violation set, and a trajectory that ended without one is 0 there. With FailureBench's
  0/1 cost, max and Recovery RL's sum give the same backup; what tells the two apart is the policy
  each is evaluated under: pi for Q_risk, the data's behaviour for U.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from tqdm import trange

from farl_common.shield_settings import ShieldSettings
from farl_learning.data import Transitions
from farl_learning.nets import GaussianPolicy, Normalizer, QNet, gradient_step, polyak, share_normalizer
from farl_learning.world_model import WorldModel
from farl_safety_shield.fused_rollout import FusedRollout, Unfusable


class WorldModelRisk:
    """C_H of eq. 10, for a batch of (state, proposed action).

    `risk` runs the fused inference path (`fused_rollout.FusedRollout`, the same numbers with about
    half the torch calls); `risk_unfused` is eq. 10 written through the world model's modules, the
    reference it is tested against."""

    name = "world_model"
    follows_policy = True
    """C_H rolls out the task policy, so a new version of it changes the risk (`set_policy`)."""

    def __init__(self, wm: WorldModel, task_policy: GaussianPolicy, horizon: int, gamma_risk: float):
        self.wm, self.horizon, self.gamma = wm.eval(), horizon, gamma_risk
        self.set_policy(task_policy)

    def set_policy(self, policy: GaussianPolicy) -> None:
        """Roll out `policy` from now on (the learner's newest version)."""
        self.policy = policy.eval()
        try:
            self.fused: FusedRollout | None = FusedRollout(self.wm, self.policy, self.horizon, self.gamma)
        except Unfusable:
            self.fused = None

    @torch.inference_mode()
    def risk(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        if self.fused is None:
            return self.risk_unfused(obs, action)
        return self.fused(obs, action)

    @torch.inference_mode()
    def risk_unfused(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.imagine(obs, action)[1].sum(-1)

    @torch.inference_mode()
    def imagine(self, obs: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Eq. 10's rollout, to look at: the states at t .. t + H, `obs` then the world model's decoded
        ones (B, H + 1, obs_dim), and the discounted constraint probabilities gamma^i p_i (B, H + 1)
        whose sum is C_H."""
        z = self.wm.encode(obs)
        a = action
        states, terms = [obs], []
        for i in range(self.horizon + 1):  # i = t .. t + H, as in eq. 1 and 10
            terms.append(self.gamma**i * self.wm.constraint_prob(z, a))
            if i == self.horizon:
                break
            z = self.wm.next(z, a)
            states.append(self.wm.decode(z))
            a = self.policy(states[-1])[0]  # E_pi approximated at the policy's mean
        return torch.stack(states, 1), torch.stack(terms, 1)


@dataclass
class RiskQConfig:
    """Offline training of Q_risk / reachability critics."""

    hidden: int = 256
    steps: int = 3000
    batch_size: int = 256
    lr: float = 3e-4
    gamma_risk: float = ShieldSettings.gamma_risk
    """Discount of the critics' risk backup: the shield's gamma_risk, so Q_risk and C_H weigh the future alike."""
    target_tau: float = 0.005
    failure_fraction: float = 0.25
    """Share of each batch drawn from failing transitions (failures are rare)."""
    seed: int = 0


class _QCritic:
    backup: Literal["sum", "max"] = "sum"
    in_sample = False
    """Bootstrap with the data's next action (FOSP's REF) instead of the task policy's (Recovery RL)."""
    follows_policy = False
    """Q_risk and U are trained offline under the pre-trained policy (Recovery RL, FOSP) and stay fixed."""

    def __init__(self, q: QNet, cfg: RiskQConfig) -> None:
        self.q, self.cfg = q.eval(), cfg

    def set_policy(self, policy: GaussianPolicy) -> None:
        raise TypeError(f"the {self.name} critic is trained under a fixed policy; it cannot take a new one")

    @torch.inference_mode()
    def risk(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.q(obs, action).max(0).values  # pessimistic over the twin heads

    def checkpoint(self) -> dict[str, Any]:
        return {
            "kind": f"risk_{self.name}",
            "backup": self.backup,
            "obs_dim": self.q.norm.mean.numel(),
            "act_dim": self.q.heads[0][0].in_features - self.q.norm.mean.numel(),
            "config": asdict(self.cfg),
            "state": self.q.state_dict(),
        }

    @classmethod
    def from_checkpoint(cls, data: dict[str, Any]) -> _QCritic:
        cfg = RiskQConfig(**data["config"])
        q = QNet(data["obs_dim"], data["act_dim"], cfg.hidden, n=2, out_sigmoid=True)
        q.load_state_dict(data["state"])
        return cls(q, cfg)

    @classmethod
    def train(
        cls, data: Transitions, policy: GaussianPolicy, cfg: RiskQConfig | None = None, progress: bool = True, log=None
    ) -> _QCritic:
        cfg = cfg or RiskQConfig()
        torch.manual_seed(cfg.seed)
        gen = torch.Generator().manual_seed(cfg.seed)
        q = QNet(data.obs.shape[1], data.action.shape[1], cfg.hidden, n=2, out_sigmoid=True)
        share_normalizer(Normalizer.fit(data.obs.numpy()), q)
        target = copy.deepcopy(q).requires_grad_(False)
        opt = torch.optim.Adam(q.parameters(), lr=cfg.lr)
        fail_idx = torch.nonzero(data.cost > 0.5).squeeze(-1)
        n_fail = int(cfg.batch_size * cfg.failure_fraction) if len(fail_idx) else 0
        for step in trange(cfg.steps, desc=f"{cls.name} critic", disable=not progress, leave=False):
            idx = torch.randint(0, len(data), (cfg.batch_size - n_fail,), generator=gen)
            if n_fail:
                idx = torch.cat([idx, fail_idx[torch.randint(0, len(fail_idx), (n_fail,), generator=gen)]])
            s, a = data.obs[idx], data.action[idx]
            with torch.no_grad():
                y = cls.backup_target(
                    target, policy, cfg.gamma_risk, data.cost[idx], data.next_obs[idx], data.next_action[idx],
                    data.has_next_action[idx],
                )  # fmt: skip
            loss = F.binary_cross_entropy(q(s, a).clamp(1e-6, 1 - 1e-6), y.clamp(0, 1).expand(2, -1))
            gradient_step(opt, loss)
            polyak(target, q, cfg.target_tau)
            if log is not None and step % 100 == 0:
                log.add_scalar(f"{cls.name}/loss", float(loss.detach()), step)
        return cls(q, cfg)

    @classmethod
    def backup_target(
        cls,
        target,
        policy,
        gamma: float,
        c: torch.Tensor,
        s2: torch.Tensor,
        a2: torch.Tensor,
        has_next: torch.Tensor,
    ) -> torch.Tensor:
        """The regression target for (s, a) with cost c, next state s2, and the data's next action a2
        where the data goes on (`has_next`)."""
        if cls.in_sample:  # FOSP eq. 30: along the data's own trajectory; past its end, nothing more
            nxt = torch.where(has_next, target(s2, a2).max(0).values, torch.zeros_like(c))
        else:  # Recovery RL: what the task policy would do next
            nxt = target(s2, policy(s2)[0]).max(0).values
        if cls.backup == "sum":  # Recovery RL, eq. 15-16
            return c + (1 - c) * gamma * nxt
        return torch.maximum(c, gamma * nxt * (1 - c))  # FOSP's reachability, eq. 30


class QRiskCritic(_QCritic):
    name = "q_risk"
    backup = "sum"


class ReachabilityCritic(_QCritic):
    name = "reachability"
    backup = "max"
    in_sample = True
