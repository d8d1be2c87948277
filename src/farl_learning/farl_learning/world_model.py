"""The latent world model with a constraint head (paper eq. 4-9), TD-MPC2 style, in one module::

    z = h(s)                    encoder, SimNorm latent
    z' = d(z, a)                latent dynamics
    R(z, a), Q(z, a)            reward and value heads: logits over two-hot symlog bins
    C(z, a)                     constraint head: probability that (s, a) is an IR failure (or, with
                                constraint_reach K, that one comes within K steps: a departure)
    S(z)                        decoder back to the (normalised) state

Trained on H-step windows of task and failure demonstrations with the lambda-weighted sum of
eq. 4 over the step losses of eq. 5-9. The consistency target of eq. 7 is the next state's latent
under the slowly updated (Polyak) target copy of the encoder by default, a departure from TD-MPC2
and the paper (which use the online encoder under no_grad; `consistency_target="online"`): on the
main job's data it calibrated as well or better (README, departures). The value target (eq. 6)
bootstraps with the next action taken in the data (a SARSA target) through the target copy's Q head.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import trange

from farl_learning.data import Transitions
from farl_learning.nets import Normalizer, gradient_step, mlp, polyak
from farl_learning.two_hot import TwoHot


@dataclass
class WorldModelConfig:
    """World model settings (coefficients c1..c5 of eq. 5-9, lambda of eq. 4)."""

    latent_dim: int = 128
    simnorm_group: int = 8
    """SimNorm: the latent is a concatenation of softmaxes over groups of this size."""
    hidden: int = 256
    horizon: int = 5
    """H of eq. 4: steps rolled out in latent space per training window."""
    lam: float = 0.5
    """lambda of eq. 4: weight decay of later steps."""
    c_reward: float = 0.5
    c_value: float = 0.1
    c_consistency: float = 20.0
    c_constraint: float = 10.0
    c_decoder: float = 1.0
    gamma: float = 0.99
    reward_scale: float = 0.1
    num_bins: int = 101
    vmin: float = -10.0
    vmax: float = 10.0
    steps: int = 4000
    batch_size: int = 256
    lr: float = 3e-4
    grad_clip: float = 20.0
    target_tau: float = 0.01
    """Polyak rate of the target copy whose Q head gives the value target (eq. 6)."""
    consistency_target: Literal["online", "polyak"] = "polyak"
    """Encoder of eq. 7's target latent: polyak (the target copy; measured as good or better here) or
    online (under no_grad, as TD-MPC2 and the paper). bench/compare_consistency_target.py measures both."""
    failure_fraction: float = 0.25
    """Share of training windows drawn to contain a failure (failures are rare in the data)."""
    constraint_reach: int = 0
    """0: the constraint head learns c_i, whether step i is a failure (eq. 8). K > 0, a departure: it
    learns whether a failure comes within K steps (the label is 1 on the K steps before one as well),
    so C_H sums risks that reach past H. K = 2 on two pre-trainings: C_H's missed held-out failures 21%
    -> 3% and 31% -> 23%, failure episodes 17-24% fewer, but more swaps and lower return, and still
    three times Q_risk's failures at its swap rate on one (README, "The constraint head's reach")."""
    seed: int = 0


class SimNorm(nn.Module):
    def __init__(self, group: int) -> None:
        super().__init__()
        self.group = group

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        return F.softmax(x.view(*shape[:-1], -1, self.group), -1).view(shape)


class WorldModel(nn.Module):
    def __init__(self, obs_dim: int, act_dim: int, cfg: WorldModelConfig) -> None:
        super().__init__()
        self.act_dim = act_dim
        if cfg.latent_dim % cfg.simnorm_group:
            raise ValueError("latent_dim must be a multiple of simnorm_group")
        self.cfg = cfg
        z, h = cfg.latent_dim, cfg.hidden
        self.norm = Normalizer(obs_dim)
        self.encoder = nn.Sequential(mlp(obs_dim, z, h), SimNorm(cfg.simnorm_group))
        self.dynamics = nn.Sequential(mlp(z + act_dim, z, h), SimNorm(cfg.simnorm_group))
        self.reward = mlp(z + act_dim, cfg.num_bins, h)
        self.q = mlp(z + act_dim, cfg.num_bins, h)
        self.constraint = mlp(z + act_dim, 1, h)
        self.decoder = mlp(z, obs_dim, h)
        self.two_hot = TwoHot(cfg.num_bins, cfg.vmin, cfg.vmax)
        with torch.no_grad():  # start the value and reward heads at zero, as TD-MPC2 does
            self.reward[-1].weight.zero_()
            self.q[-1].weight.zero_()

    def encode(self, obs: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.norm(obs))

    def next(self, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return self.dynamics(torch.cat([z, a], -1))

    def constraint_prob(self, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.constraint(torch.cat([z, a], -1)).squeeze(-1))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Back to raw state units (the decoder works in normalised units)."""
        return self.decoder(z) * self.norm.std + self.norm.mean

    def loss(self, w: dict[str, torch.Tensor], target: WorldModel) -> tuple[torch.Tensor, dict[str, float]]:
        """Eq. 4 over one batch of windows (tensors shaped (H, B, ...), mask (H, B))."""
        cfg = self.cfg
        H = w["obs"].shape[0]
        mask = w["mask"]
        with torch.no_grad():
            encoder = self if cfg.consistency_target == "online" else target
            z_next_target = encoder.encode(w["next_obs"])
            q_next = target.two_hot.decode(target.q(torch.cat([z_next_target, w["next_action"]], -1)))
            bootstrap = w["has_next_action"].float()
            td = cfg.reward_scale * w["reward"] + cfg.gamma * bootstrap * q_next
            # Without a next action in the data (timeout at a window edge) there is no target.
            value_mask = mask * (bootstrap + w["done"]).clamp(max=1.0)
        z = self.encode(w["obs"][0])
        terms = {k: torch.zeros(()) for k in ("reward", "value", "consistency", "constraint", "decoder")}
        weight_sum = torch.zeros(())
        for i in range(H):
            lam = cfg.lam**i
            m = mask[i]
            za = torch.cat([z, w["action"][i]], -1)
            n = m.sum().clamp(min=1.0)
            terms["reward"] = (
                terms["reward"]
                + lam * (self.two_hot.loss(self.reward(za), cfg.reward_scale * w["reward"][i]) * m).sum() / n
            )
            vm = value_mask[i]
            terms["value"] = terms["value"] + lam * (self.two_hot.loss(self.q(za), td[i]) * vm).sum() / vm.sum().clamp(
                min=1.0
            )
            c_logit = self.constraint(za).squeeze(-1)
            c_pred = torch.sigmoid(c_logit)
            terms["constraint"] = terms["constraint"] + lam * (((c_pred - w["cost"][i]) ** 2) * m).sum() / n
            terms["decoder"] = (
                terms["decoder"] + lam * (((self.decoder(z) - self.norm(w["obs"][i])) ** 2).mean(-1) * m).sum() / n
            )
            z = self.next(z, w["action"][i])
            terms["consistency"] = terms["consistency"] + lam * (((z - z_next_target[i]) ** 2).mean(-1) * m).sum() / n
            weight_sum = weight_sum + lam
        total = (
            cfg.c_reward * terms["reward"]
            + cfg.c_value * terms["value"]
            + cfg.c_consistency * terms["consistency"]
            + cfg.c_constraint * terms["constraint"]
            + cfg.c_decoder * terms["decoder"]
        ) / weight_sum
        return total, {k: float(v.detach() / weight_sum) for k, v in terms.items()}


def train_world_model(
    data: Transitions, cfg: WorldModelConfig | None = None, progress: bool = True, log=None
) -> tuple[WorldModel, list[dict[str, float]]]:
    cfg = cfg or WorldModelConfig()
    if cfg.constraint_reach < 0:
        raise ValueError(f"constraint_reach must be >= 0, got {cfg.constraint_reach}")
    if cfg.constraint_reach:
        data = data.with_cost_reaching_back(cfg.constraint_reach)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    wm = WorldModel(data.obs.shape[1], data.action.shape[1], cfg)
    fitted = Normalizer.fit(data.obs.numpy())
    wm.norm.load_state_dict(fitted.state_dict())
    target = copy.deepcopy(wm).requires_grad_(False)
    opt = torch.optim.Adam(wm.parameters(), lr=cfg.lr)
    history = []
    for step in trange(cfg.steps, desc="world model", disable=not progress, leave=False):
        w = data.windows(cfg.batch_size, cfg.horizon, gen, cfg.failure_fraction)
        w = {k: v for k, v in w.items()}
        loss, parts = wm.loss(w, target)
        gradient_step(opt, loss, (wm.parameters(), cfg.grad_clip))
        polyak(target, wm, cfg.target_tau)
        if step % 50 == 0 or step == cfg.steps - 1:
            history.append({"step": step, "loss": float(loss.detach()), **parts})
            if log is not None:
                log.add_scalar("world_model/loss", float(loss.detach()), step)
                for k, v in parts.items():
                    log.add_scalar(f"world_model/{k}", v, step)
    return wm.eval(), history


def world_model_checkpoint(wm: WorldModel, history: list[dict[str, float]]) -> dict[str, Any]:
    return {
        "kind": "world_model",
        "obs_dim": wm.norm.mean.numel(),
        "act_dim": wm.constraint[0].in_features - wm.cfg.latent_dim,
        "config": asdict(wm.cfg),
        "state": wm.state_dict(),
        "history": history,
    }


def world_model_from_checkpoint(data: dict[str, Any]) -> WorldModel:
    wm = WorldModel(data["obs_dim"], data["act_dim"], WorldModelConfig(**data["config"]))
    wm.load_state_dict(data["state"])
    return wm.eval()
