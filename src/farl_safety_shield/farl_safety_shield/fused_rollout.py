"""C_H's rollout (eq. 10) as few, direct tensor operations: the shield's inference path.

`WorldModelRisk.risk_unfused` rolls the world model through its modules: one decision is a few
hundred small torch calls whose cost is per-call overhead, not arithmetic (8-14x one Q_risk forward,
bench/bench_shield.py). This computes the same numbers (to 1e-5, tested) with about half the calls:

- the constraint head C and the dynamics d read the same (z, a): their first layers are one matrix
  product, their later layers one batched product over the two heads (C's one output padded to d's);
- the decoder S's last layer absorbs the world model's de-normalisation and the policy's
  normalisation, so decoded states go straight into the policy's network (after its clamp);
- no `nn.Module` calls: layers are applied from their tensors with `torch.nn.functional`.

The world model is frozen online, so its merged tensors are made once; the policy's own layers are
read from the policy's live parameters on every call (PPO updates them in place), and only its frozen
normaliser is folded in (`WorldModelRisk.set_policy` rebuilds this for a new policy object).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from farl_learning.nets import GaussianPolicy
from farl_learning.world_model import SimNorm, WorldModel


class Unfusable(ValueError):
    """The networks are not the MLP shapes this path knows (the module path is used instead)."""


def _layers(seq: nn.Sequential) -> list[nn.Module]:
    mods = list(seq)
    ok = len(mods) >= 4 and (len(mods) - 1) % 3 == 0 and isinstance(mods[-1], nn.Linear)
    for k in range(0, len(mods) - 1, 3):
        ok = ok and isinstance(mods[k], nn.Linear) and isinstance(mods[k + 1], nn.LayerNorm)
        ok = ok and isinstance(mods[k + 2], nn.Mish)
    if not ok:
        raise Unfusable("expected Linear, LayerNorm, Mish blocks and a last Linear")
    return mods


def _mlp(x: torch.Tensor, mods: list[nn.Module], last: tuple[torch.Tensor, torch.Tensor] | None = None):
    """An `nets.mlp` from its modules' tensors; `last` replaces the final layer's weight and bias."""
    for k in range(0, len(mods) - 1, 3):
        lin, ln = mods[k], mods[k + 1]
        x = F.mish(F.layer_norm(F.linear(x, lin.weight, lin.bias), ln.normalized_shape, ln.weight, ln.bias, ln.eps))
    w, b = last if last is not None else (mods[-1].weight, mods[-1].bias)
    return F.linear(x, w, b)


class FusedRollout:
    """C_H for a batch of (state, proposed action), as `WorldModelRisk.risk_unfused` computes it."""

    @torch.no_grad()
    def __init__(self, wm: WorldModel, policy: GaussianPolicy, horizon: int, gamma_risk: float) -> None:
        if not isinstance(policy, GaussianPolicy):
            raise Unfusable(f"the rolled-out policy is a {type(policy).__name__}, not a GaussianPolicy")
        self.horizon, self.weights = horizon, [gamma_risk**i for i in range(horizon + 1)]
        self.wm_norm, self.group = wm.norm, wm.cfg.simnorm_group
        enc, dyn = wm.encoder, wm.dynamics
        if not (isinstance(enc[-1], SimNorm) and isinstance(dyn[-1], SimNorm)):
            raise Unfusable("encoder and dynamics must end in SimNorm")
        self.encoder = _layers(enc[0])
        self.constraint = _layers(wm.constraint)
        c, d = self.constraint, _layers(dyn[0])
        if len(c) != len(d) or any(a.weight.shape != b.weight.shape for a, b in zip(c[:-1:3], d[:-1:3], strict=True)):
            raise Unfusable("constraint head and dynamics differ in shape")
        self.hidden = c[0].out_features
        self.first = (torch.cat([c[0].weight, d[0].weight]).t().contiguous(), torch.cat([c[0].bias, d[0].bias]))
        self.blocks = []  # per hidden layer: its two LayerNorms (eps, weight, bias) and the next Linear, stacked
        for k in range(0, len(c) - 1, 3):
            lc, ld = c[k + 1], d[k + 1]
            nxt_c, nxt_d = c[k + 3], d[k + 3]
            if nxt_c is c[-1]:  # C's single logit padded to d's width, in column 0
                wc = torch.zeros(nxt_d.out_features, self.hidden)
                wc[: nxt_c.out_features] = nxt_c.weight
                bc = torch.zeros(nxt_d.out_features)
                bc[: nxt_c.out_features] = nxt_c.bias
            else:
                wc, bc = nxt_c.weight, nxt_c.bias
            self.blocks.append(
                (
                    lc.eps,
                    torch.stack([lc.weight, ld.weight]).unsqueeze(1),
                    torch.stack([lc.bias, ld.bias]).unsqueeze(1),
                    torch.stack([wc.t(), nxt_d.weight.t()]).contiguous(),
                    torch.stack([bc, nxt_d.bias]).unsqueeze(1),
                )
            )
        self.decoder = _layers(wm.decoder)
        self.policy_net = _layers(policy.net)
        # S's last layer, then (x * std_wm + mean_wm - mean_pi) / std_pi: one affine map folded into it
        scale = wm.norm.std / policy.norm.std
        last = self.decoder[-1]
        self.decoder_last = (
            (last.weight * scale[:, None]).contiguous(),
            (last.bias * wm.norm.std + wm.norm.mean - policy.norm.mean) / policy.norm.std,
        )

    def _simnorm(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        return F.softmax(x.view(n, -1, self.group), -1).view(n, -1)

    def _constraint_and_next(self, z: torch.Tensor, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = z.shape[0]
        x = torch.addmm(self.first[1], torch.cat([z, a], -1), self.first[0]).view(n, 2, self.hidden).transpose(0, 1)
        for eps, g, b, w, wb in self.blocks:  # x: (2 heads, batch, hidden)
            x = F.mish(torch.addcmul(b, F.layer_norm(x, (self.hidden,), eps=eps), g))
            x = torch.baddbmm(wb, x, w)
        return torch.sigmoid(x[0, :, 0]), self._simnorm(x[1])

    def __call__(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        norm = self.wm_norm
        z = self._simnorm(_mlp(((obs - norm.mean) / norm.std).clamp(-10.0, 10.0), self.encoder))
        a = action
        total = torch.zeros(obs.shape[0])
        for i in range(self.horizon):
            c, z = self._constraint_and_next(z, a)
            total.add_(c, alpha=self.weights[i])
            pi_in = _mlp(z, self.decoder, self.decoder_last).clamp(-10.0, 10.0)
            a = torch.tanh(_mlp(pi_in, self.policy_net))  # E_pi at the policy's mean, as in the module path
        last = torch.sigmoid(_mlp(torch.cat([z, a], -1), self.constraint).squeeze(-1))
        return total.add_(last, alpha=self.weights[self.horizon])
