"""Offline pre-training of a policy, Uni-O4 style (paper Sec. III-A, eq. 3).

1. State normalisation from the data, frozen afterwards.
2. An ensemble of Gaussian behaviour-cloning policies (each on its own bootstrap of the data).
3. IQL-style critics on the demonstrations: an expectile value V(s) and twin Q(s, a).
4. Multi-step clipped-ratio policy improvement (eq. 3) of each member against its behaviour
   policy pi_k, with advantages A = min Q - V; after each round an offline policy evaluation
   (the fitted Q at the policy's mean action, over held states) keeps the new policy only if it
   improved and stayed within a KL trust region of pi_k; it then becomes the next behaviour policy.
5. The member with the best evaluation is the result; V comes along to initialise PPO's critic.

Read it top to bottom; `UniO4Config` documents every knob. Defaults are CPU-sized versions of the
Uni-O4 paper's (its ensemble of 4, clip 0.25, expectile 0.7, gamma 0.99).
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from tqdm import trange

from farl_learning.data import Transitions
from farl_learning.nets import GaussianPolicy, Normalizer, QNet, ValueNet, gradient_step, polyak, share_normalizer

MIN_TRANSITIONS = 16


@dataclass
class UniO4Config:
    """Offline Uni-O4 pipeline settings."""

    ensemble_size: int = 4
    """Behaviour-cloning policies trained on separate bootstraps."""
    hidden: int = 256
    """Width of every hidden layer (two layers, LayerNorm, Mish)."""
    batch_size: int = 256
    bc_steps: int = 2000
    """Gradient steps of behaviour cloning per ensemble member."""
    bc_lr: float = 3e-4
    critic_steps: int = 3000
    critic_lr: float = 3e-4
    gamma: float = 0.99
    expectile: float = 0.7
    """IQL expectile of V: 0.5 is SARSA's mean, towards 1 the best action in the data."""
    target_tau: float = 0.005
    """Polyak rate of the target Q."""
    reward_scale: float = 0.1
    """MetaWorld's 0..10 per-step rewards, scaled for the critics (and for PPO, which reuses V)."""
    improve_rounds: int = 5
    """Rounds of policy improvement; each ends with an offline evaluation that may reject it."""
    improve_steps: int = 200
    """Gradient steps of eq. 3 per round."""
    improve_lr: float = 3e-6
    """Small on purpose: the critics only know the demonstrated actions, and larger steps walk the
    policy off the data where the offline evaluation cannot see the damage (measured: 1e-4 turned a
    BC policy with 100% success into one that no longer reaches the puck, while its OPE rose)."""
    clip_eps: float = 0.25
    """epsilon of eq. 3: how far the ratio pi / pi_k may move."""
    max_kl: float = 0.02
    """Trust region of the acceptance test: a round whose policy moved further than this (mean KL to
    its behaviour policy over the data's states) is rejected even if its evaluation improved."""
    eval_states: int = 2048
    """States drawn once from the data for the offline policy evaluation."""
    seed: int = 0


@dataclass
class OfflinePolicy:
    policy: GaussianPolicy
    value: ValueNet
    q: QNet
    config: UniO4Config
    history: list[dict[str, float]]

    def checkpoint(self, kind: str) -> dict[str, Any]:
        return {
            "kind": kind,
            "obs_dim": self.policy.norm.mean.numel(),
            "act_dim": self.policy.log_std.numel(),
            "hidden": self.config.hidden,
            "policy": self.policy.state_dict(),
            "value": self.value.state_dict(),
            "q": self.q.state_dict(),
            "config": asdict(self.config),
            "history": self.history,
            "version": 0,
        }


def policy_from_checkpoint(data: dict[str, Any]) -> GaussianPolicy:
    p = GaussianPolicy(data["obs_dim"], data["act_dim"], data["hidden"])
    p.load_state_dict(data["policy"])
    return p.eval()


def value_from_checkpoint(data: dict[str, Any]) -> ValueNet:
    v = ValueNet(data["obs_dim"], data["hidden"])
    v.load_state_dict(data["value"])
    return v


def _expectile_loss(diff: torch.Tensor, tau: float) -> torch.Tensor:
    w = torch.where(diff > 0, tau, 1 - tau)
    return (w * diff.pow(2)).mean()


def evaluate_offline(policy: GaussianPolicy, q: QNet, states: torch.Tensor) -> float:
    """Offline policy evaluation: mean of min-Q at the policy's mean action."""
    with torch.no_grad():
        mean, _ = policy(states)
        return float(q(states, mean).min(0).values.mean())


def train_uni_o4(
    data: Transitions, cfg: UniO4Config | None = None, progress: bool = True, log=None, tag: str = "policy"
) -> OfflinePolicy:
    cfg = cfg or UniO4Config()
    if len(data) < MIN_TRANSITIONS:
        raise ValueError(f"{tag}: {len(data)} transitions are too few to learn from (need {MIN_TRANSITIONS})")
    if len(data) < cfg.batch_size:  # sampling is with replacement; a batch larger than the data only repeats it
        cfg = UniO4Config(**{**asdict(cfg), "batch_size": len(data)})
    gen = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    obs_dim, act_dim = data.obs.shape[1], data.action.shape[1]
    norm = Normalizer.fit(data.obs.numpy())
    history: list[dict[str, float]] = []

    # 2. Behaviour cloning ensemble -------------------------------------------------------------
    members = []
    for m in range(cfg.ensemble_size):
        pol = GaussianPolicy(obs_dim, act_dim, cfg.hidden)
        share_normalizer(norm, pol)
        opt = torch.optim.Adam([p for n, p in pol.named_parameters()], lr=cfg.bc_lr)
        boot = torch.randint(0, len(data), (len(data),), generator=gen)
        for step in trange(
            cfg.bc_steps, desc=f"{tag}: BC {m + 1}/{cfg.ensemble_size}", disable=not progress, leave=False
        ):
            idx = boot[torch.randint(0, len(boot), (cfg.batch_size,), generator=gen)]
            loss = -pol.log_prob(data.obs[idx], data.action[idx]).mean()
            gradient_step(opt, loss)
            if log is not None and step % 100 == 0:
                log.add_scalar(f"{tag}/bc_nll_{m}", float(loss.detach()), step)
        members.append(pol)

    # 3. IQL critics --------------------------------------------------------------------------
    value, q = ValueNet(obs_dim, cfg.hidden), QNet(obs_dim, act_dim, cfg.hidden, n=2)
    share_normalizer(norm, value, q)
    q_target = copy.deepcopy(q).requires_grad_(False)
    v_opt = torch.optim.Adam(value.parameters(), lr=cfg.critic_lr)
    q_opt = torch.optim.Adam(q.parameters(), lr=cfg.critic_lr)
    for step in trange(cfg.critic_steps, desc=f"{tag}: critics", disable=not progress, leave=False):
        b = data.sample(cfg.batch_size, gen)
        with torch.no_grad():
            q_t = q_target(b["obs"], b["action"]).min(0).values
        v_loss = _expectile_loss(q_t - value(b["obs"]), cfg.expectile)
        gradient_step(v_opt, v_loss)
        with torch.no_grad():
            target = cfg.reward_scale * b["reward"] + cfg.gamma * (1 - b["done"]) * value(b["next_obs"])
        q_loss = F.mse_loss(q(b["obs"], b["action"]), target.expand(2, -1))
        gradient_step(q_opt, q_loss)
        polyak(q_target, q, cfg.target_tau)
        if log is not None and step % 100 == 0:
            log.add_scalar(f"{tag}/v_loss", float(v_loss.detach()), step)
            log.add_scalar(f"{tag}/q_loss", float(q_loss.detach()), step)

    # 4. Clipped-ratio improvement with offline evaluation (eq. 3) -----------------------------
    eval_states = data.obs[torch.randint(0, len(data), (cfg.eval_states,), generator=gen)]
    best, best_score = None, -float("inf")
    for m, current in enumerate(members):
        score = evaluate_offline(current, q, eval_states)
        history.append({"member": m, "round": 0, "ope": score, "accepted": 1.0})
        for r in range(1, cfg.improve_rounds + 1):
            behaviour = copy.deepcopy(current).requires_grad_(False)
            candidate = copy.deepcopy(current)
            opt = torch.optim.Adam(candidate.parameters(), lr=cfg.improve_lr)
            for _ in trange(cfg.improve_steps, desc=f"{tag}: improve {m + 1}.{r}", disable=not progress, leave=False):
                s = data.obs[torch.randint(0, len(data), (cfg.batch_size,), generator=gen)]
                with torch.no_grad():
                    a = behaviour.act(s)
                    adv = q(s, a).min(0).values - value(s)
                    adv = (adv - adv.mean()) / (adv.std() + 1e-6)
                    logp_old = behaviour.log_prob(s, a)
                ratio = torch.exp(candidate.log_prob(s, a) - logp_old)
                loss = -torch.min(ratio * adv, ratio.clamp(1 - cfg.clip_eps, 1 + cfg.clip_eps) * adv).mean()
                gradient_step(opt, loss)
            new_score = evaluate_offline(candidate, q, eval_states)
            with torch.no_grad():
                kl = float(
                    torch.distributions.kl_divergence(candidate.dist(eval_states), behaviour.dist(eval_states))
                    .sum(-1)
                    .mean()
                )
            accepted = new_score > score and kl <= cfg.max_kl
            history.append({"member": m, "round": r, "ope": new_score, "kl": kl, "accepted": float(accepted)})
            if log is not None:
                log.add_scalar(f"{tag}/ope_member{m}", new_score, r)
            if not accepted:
                break  # Uni-O4: keep only improvements; a rejected round ends this member's search
            current, score = candidate, new_score
        if score > best_score:
            best, best_score = current, score
    assert best is not None
    return OfflinePolicy(best.eval(), value, q, cfg, history)
