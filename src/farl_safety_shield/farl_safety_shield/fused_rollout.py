"""C_H's rollout (eq. 10) as few, direct tensor operations: the shield's inference path.

`WorldModelRisk.risk_unfused` rolls the world model through its modules: one decision is a few
hundred small torch calls whose cost is mostly per-call overhead (about 10x one Q_risk forward,
bench/bench_shield.py). This computes the same numbers (to 1e-5, tested) with about half the calls:

- the constraint head C and the dynamics d read the same (z, a): their first layers are one matrix
  product normalised by one group norm (a group per head), their hidden layers one batched product
  over the two heads; their last layers stay apart (C has one output, d a latent);
- C's last hidden layer is kept per step; its one-output layer, the sigmoid and the weighted sum
  (eq. 10) run once at the end, over all H + 1 steps;
- the decoder S's last layer absorbs the world model's de-normalisation and the policy's
  normalisation, so decoded states go straight into the policy's network (after its clamp);
- no `nn.Module` calls: layers are applied from their tensors with `torch.nn.functional`;
- the whole rollout is recorded once as a TorchScript graph (`torch.jit.trace`), which runs those
  calls without Python between them. torch marks `jit.trace` deprecated; where it is missing or
  fails, the same function runs eagerly (`traced` is None), with the same numbers.

The world model is frozen online, so its merged tensors are made once; the policy's own layers are
inputs of the graph, its parameters passed on every call (PPO updates them in place: its weights'
transposed copies are redone when their version counters move), and only its frozen normaliser is
folded in (`WorldModelRisk.set_policy` rebuilds this for a new policy object).

What is left is mostly the matrix products: replayed alone they cost about 63% of a fused C_H
(bench/bench_shield.py prints both), since at batch 1 each reads its whole weight matrix from memory.
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


def _hidden(x: torch.Tensor, net: Frozen) -> torch.Tensor:
    """`net` up to its last layer's input."""
    for wt, b, g, beta, eps in net[0]:
        x = F.mish(F.layer_norm(torch.addmm(b, x, wt), (wt.shape[1],), g, beta, eps))
    return x


def _mlp(x: torch.Tensor, net: Frozen) -> torch.Tensor:
    return torch.addmm(net[2], _hidden(x, net), net[1])


class FusedRollout:
    """C_H for a batch of (state, proposed action), as `WorldModelRisk.risk_unfused` computes it."""

    @torch.no_grad()
    def __init__(self, wm: WorldModel, policy: GaussianPolicy, horizon: int, gamma_risk: float) -> None:
        if not isinstance(policy, GaussianPolicy):
            raise Unfusable(f"the rolled-out policy is a {type(policy).__name__}, not a GaussianPolicy")
        wm = copy.deepcopy(wm).requires_grad_(False)  # frozen online; a graph keeps only such constants
        self.horizon, self.weights = horizon, torch.tensor([gamma_risk**i for i in range(horizon + 1)])
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
        if any(lc.eps != ld.eps for lc, ld in zip(c[1::3], d[1::3], strict=True)):
            raise Unfusable("constraint head and dynamics normalise with different eps")
        # the first hidden layer's two LayerNorms over the (batch, 2 x hidden) product: one group norm
        # (a group per head, each with its own affine)
        self.first_norm = (c[1].eps, torch.cat([c[1].weight, d[1].weight]), torch.cat([c[1].bias, d[1].bias]))
        self.blocks = []  # each later hidden layer: the Linear into it and its LayerNorms, stacked per head
        for k in range(3, len(c) - 1, 3):
            self.blocks.append((*self._stacked_linears(c[k], d[k]), *self._stacked_norms(c[k + 1], d[k + 1])))
        # d's last Linear apart from C's (C's one output, from `self.constraint`, runs once per rollout)
        self.last_d = (d[-1].weight.t().contiguous(), d[-1].bias)
        decoder = _layers(wm.decoder)
        pol = _layers(policy.net)
        self.policy_eps = [m.eps for m in pol[1::3]]
        self.policy_live = tuple(policy.net.parameters())
        if len(self.policy_live) != 4 * len(self.policy_eps) + 2:
            raise Unfusable("the policy's network has parameters beyond its Linear and LayerNorm layers")
        self._policy_versions: tuple[int, ...] | None = None
        self.policy_params: tuple[torch.Tensor, ...] = ()
        self._refresh_policy()
        # S's last layer, then (x * std_wm + mean_wm - mean_pi) / std_pi: one affine map folded into it
        scale = wm.norm.std / policy.norm.std
        last = decoder[-1]
        folded = (
            last.weight * scale[:, None],
            (last.bias * wm.norm.std + wm.norm.mean - policy.norm.mean) / policy.norm.std,
        )
        self.decoder = _frozen(decoder, folded)
        self.traced = self._trace(wm.norm.mean.numel(), policy.net[-1].out_features)

    @staticmethod
    def _stacked_norms(lc: nn.LayerNorm, ld: nn.LayerNorm) -> tuple[float, torch.Tensor, torch.Tensor]:
        return lc.eps, torch.stack([lc.weight, ld.weight]).unsqueeze(1), torch.stack([lc.bias, ld.bias]).unsqueeze(1)

    @staticmethod
    def _stacked_linears(lc: nn.Linear, ld: nn.Linear) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.stack([lc.weight.t(), ld.weight.t()]).contiguous(), torch.stack([lc.bias, ld.bias]).unsqueeze(1)

    @torch.no_grad()
    def _refresh_policy(self) -> None:
        """The policy's live parameters as the graph takes them, its weights transposed (see `_frozen`);
        redone only when PPO (or a load) has written to them since, as their version counters tell."""
        versions = tuple(p._version for p in self.policy_live)
        if versions != self._policy_versions:
            self.policy_params = tuple(p.t().contiguous() if p.dim() == 2 else p.detach() for p in self.policy_live)
            self._policy_versions = versions

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
            wt, b, g, beta = params[4 * k : 4 * k + 4]
            x = F.mish(F.layer_norm(torch.addmm(b, x, wt), (wt.shape[1],), g, beta, eps))
        return torch.tanh(torch.addmm(params[-1], x, params[-2]))

    def _simnorm(self, x: torch.Tensor) -> torch.Tensor:
        # no batch size in any shape: the recorded graph serves every batch
        return F.softmax(x.unflatten(-1, (-1, self.group)), -1).flatten(-2)

    def _constraint_and_next(self, z: torch.Tensor, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """C's last hidden layer at (z, a) and the next latent d(z, a), the two heads side by side."""
        x = torch.addmm(self.first[1], torch.cat([z, a], -1), self.first[0])  # (batch, 2 x hidden)
        eps, g, b = self.first_norm
        x = F.mish(F.group_norm(x, 2, g, b, eps))
        x = x.unflatten(-1, (2, self.hidden)).transpose(0, 1)  # (2 heads, batch, hidden)
        for w, wb, eps, g, b in self.blocks:
            x = F.mish(torch.addcmul(b, F.layer_norm(torch.baddbmm(wb, x, w), (self.hidden,), eps=eps), g))
        return x[0], self._simnorm(torch.addmm(self.last_d[1], x[1], self.last_d[0]))

    def __call__(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        self._refresh_policy()
        run = self.traced if self.traced is not None else self._rollout
        return run(obs, action, *self.policy_params)

    def _rollout(self, obs: torch.Tensor, action: torch.Tensor, *policy_params: torch.Tensor) -> torch.Tensor:
        norm = self.wm_norm
        z = self._simnorm(_mlp(((obs - norm.mean) / norm.std).clamp(-10.0, 10.0), self.encoder))
        a = action
        hidden = []  # C's last hidden layer at each step; its one-output layer runs once, on all of them
        for _ in range(self.horizon):
            h, z = self._constraint_and_next(z, a)
            hidden.append(h)
            pi_in = _mlp(z, self.decoder).clamp(-10.0, 10.0)
            a = self._policy_mean(pi_in, policy_params)  # E_pi at the policy's mean, as in the module path
        hidden.append(_hidden(torch.cat([z, a], -1), self.constraint))
        _, w_c, b_c = self.constraint
        logits = torch.addmm(b_c, torch.cat(hidden, 0), w_c)  # ((H + 1) x batch, 1)
        return torch.sigmoid(logits.view(self.horizon + 1, -1)).t().mv(self.weights)
