"""C_H's rollout (eq. 10) as few, direct tensor operations: the shield's inference path.

`WorldModelRisk.risk_unfused` rolls the world model through its modules: one decision is a few
hundred small torch calls whose cost is mostly per-call overhead (about 10x one Q_risk forward,
bench/bench_shield.py). This computes the same numbers (to 1e-5, tested) with about half the calls:

- the constraint head C and the dynamics d read the same (z, a): their first layers are one matrix
  product, their later layers one batched product over the two heads (C's one output padded to d's);
- the decoder S's last layer absorbs the world model's de-normalisation and the policy's
  normalisation, so decoded states go straight into the policy's network (after its clamp);
- no `nn.Module` calls: layers are applied from their tensors with `torch.nn.functional`;
- the whole rollout is recorded once as a TorchScript graph (`torch.jit.trace`), which runs those
  calls without Python between them. torch marks `jit.trace` deprecated; where it is missing or
  fails, the same function runs eagerly (`traced` is None), with the same numbers.

The world model is frozen online, so its merged tensors are made once; the policy's own layers are
inputs of the graph, its live parameters passed on every call (PPO updates them in place), and only
its frozen normaliser is folded in (`WorldModelRisk.set_policy` rebuilds this for a new policy object).
"""

from __future__ import annotations

import copy
import warnings

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


Frozen = tuple[list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, float]], torch.Tensor, torch.Tensor]
"""A frozen `nets.mlp`: per hidden block (W^T, b, LayerNorm weight, bias, eps), then the last W^T, b."""


def _frozen(mods: list[nn.Module], last: tuple[torch.Tensor, torch.Tensor] | None = None) -> Frozen:
    """`mods`' tensors with each weight stored transposed (x @ W^T as one addmm from contiguous memory
    is about 40% faster than F.linear at batch 1); `last` replaces the final layer's weight and bias."""
    blocks = [
        (lin.weight.t().contiguous(), lin.bias, ln.weight, ln.bias, ln.eps)
        for lin, ln in zip(mods[:-1:3], mods[1:-1:3], strict=True)
    ]
    w, b = last if last is not None else (mods[-1].weight, mods[-1].bias)
    return blocks, w.t().contiguous(), b


def _mlp(x: torch.Tensor, net: Frozen) -> torch.Tensor:
    blocks, w_last, b_last = net
    for wt, b, g, beta, eps in blocks:
        x = F.mish(F.layer_norm(torch.addmm(b, x, wt), (wt.shape[1],), g, beta, eps))
    return torch.addmm(b_last, x, w_last)


class FusedRollout:
    """C_H for a batch of (state, proposed action), as `WorldModelRisk.risk_unfused` computes it."""

    @torch.no_grad()
    def __init__(self, wm: WorldModel, policy: GaussianPolicy, horizon: int, gamma_risk: float) -> None:
        if not isinstance(policy, GaussianPolicy):
            raise Unfusable(f"the rolled-out policy is a {type(policy).__name__}, not a GaussianPolicy")
        wm = copy.deepcopy(wm).requires_grad_(False)  # frozen online; a graph keeps only such constants
        self.horizon, self.weights = horizon, [gamma_risk**i for i in range(horizon + 1)]
        self.wm_norm, self.group = wm.norm, wm.cfg.simnorm_group
        enc, dyn = wm.encoder, wm.dynamics
        if not (isinstance(enc[-1], SimNorm) and isinstance(dyn[-1], SimNorm)):
            raise Unfusable("encoder and dynamics must end in SimNorm")
        self.encoder = _frozen(_layers(enc[0]))
        c, d = _layers(wm.constraint), _layers(dyn[0])
        self.constraint = _frozen(c)
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
        decoder = _layers(wm.decoder)
        pol = _layers(policy.net)
        self.policy_eps = [m.eps for m in pol[1::3]]
        self.policy_params = tuple(p.detach() for p in policy.net.parameters())  # aliases: updates show
        if len(self.policy_params) != 4 * len(self.policy_eps) + 2:
            raise Unfusable("the policy's network has parameters beyond its Linear and LayerNorm layers")
        # S's last layer, then (x * std_wm + mean_wm - mean_pi) / std_pi: one affine map folded into it
        scale = wm.norm.std / policy.norm.std
        last = decoder[-1]
        folded = (
            last.weight * scale[:, None],
            (last.bias * wm.norm.std + wm.norm.mean - policy.norm.mean) / policy.norm.std,
        )
        self.decoder = _frozen(decoder, folded)
        self.traced = self._trace(wm.norm.mean.numel(), policy.net[-1].out_features)

    def _trace(self, obs_dim: int, act_dim: int) -> torch.jit.ScriptFunction | None:
        example = (torch.zeros(1, obs_dim), torch.zeros(1, act_dim), *self.policy_params)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # jit.trace's deprecation notice, once per policy
                return torch.jit.trace(self._rollout, example, check_trace=False)
        except (AttributeError, RuntimeError, TypeError):  # a torch without (or refusing) the tracer
            return None

    def _policy_mean(self, x: torch.Tensor, params: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """tanh(f(x)) of the policy's `nets.mlp` from its parameters (Linear w, b, LayerNorm w, b; ...)."""
        for k, eps in enumerate(self.policy_eps):
            w, b, g, beta = params[4 * k : 4 * k + 4]
            x = F.mish(F.layer_norm(F.linear(x, w, b), (w.shape[0],), g, beta, eps))
        return torch.tanh(F.linear(x, params[-2], params[-1]))

    def _simnorm(self, x: torch.Tensor) -> torch.Tensor:
        # no batch size in any shape: the recorded graph serves every batch
        return F.softmax(x.unflatten(-1, (-1, self.group)), -1).flatten(-2)

    def _constraint_and_next(self, z: torch.Tensor, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.addmm(self.first[1], torch.cat([z, a], -1), self.first[0]).unflatten(-1, (2, self.hidden))
        x = x.transpose(0, 1)
        for eps, g, b, w, wb in self.blocks:  # x: (2 heads, batch, hidden)
            x = F.mish(torch.addcmul(b, F.layer_norm(x, (self.hidden,), eps=eps), g))
            x = torch.baddbmm(wb, x, w)
        return torch.sigmoid(x[0, :, 0]), self._simnorm(x[1])

    def __call__(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        run = self.traced if self.traced is not None else self._rollout
        return run(obs, action, *self.policy_params)

    def _rollout(self, obs: torch.Tensor, action: torch.Tensor, *policy_params: torch.Tensor) -> torch.Tensor:
        norm = self.wm_norm
        z = self._simnorm(_mlp(((obs - norm.mean) / norm.std).clamp(-10.0, 10.0), self.encoder))
        a = action
        total = torch.zeros_like(obs[:, 0])
        for i in range(self.horizon):
            c, z = self._constraint_and_next(z, a)
            total.add_(c, alpha=self.weights[i])
            pi_in = _mlp(z, self.decoder).clamp(-10.0, 10.0)
            a = self._policy_mean(pi_in, policy_params)  # E_pi at the policy's mean, as in the module path
        last = torch.sigmoid(_mlp(torch.cat([z, a], -1), self.constraint).squeeze(-1))
        return total.add_(last, alpha=self.weights[self.horizon])
