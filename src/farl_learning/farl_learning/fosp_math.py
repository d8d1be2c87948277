"""FOSP's equations, each a small function of tensors (Cao et al., "Fine-tuning Offline Safe Policy
through World Models", Sec. 4 and Appendices A-B). `fosp.py` puts them together; the tests hold each
one against a case computed by hand.
"""

from __future__ import annotations

import torch


def expectile_loss(q: torch.Tensor, v: torch.Tensor, kappa: float) -> torch.Tensor:
    """Eq. 7: abs(kappa - 1{q - v < 0}) (q - v)^2, averaged. With kappa > 0.5 it pushes V towards an upper
    expectile of Q over the actions it is given (IQL's in-sample value), so V never needs Q at actions
    the data does not hold."""
    diff = q - v
    weight = torch.where(diff < 0, 1.0 - kappa, kappa)
    return (weight * diff.pow(2)).mean()


def lambda_returns(
    rewards: torch.Tensor, values: torch.Tensor, continues: torch.Tensor, gamma: float, lam: float
) -> torch.Tensor:
    """Eq. 8, TD(lambda) targets along an imagined rollout, from its end backwards:

        R^H = V(s^H),   R^h = r^h + gamma c^h ((1 - lam) V(s^{h+1}) + lam R^{h+1})

    `rewards[h]` and `continues[h]` come with the step from s^h to s^{h+1} (c^h = 0 when that step ends
    the episode, which also cuts the bootstrap) and `values[h]` is V(s^{h+1}); all are (H, ...).
    Returns R^0..R^{H-1}."""
    horizon = rewards.shape[0]
    out = torch.empty_like(rewards)
    nxt = values[-1]
    for h in reversed(range(horizon)):
        nxt = rewards[h] + gamma * continues[h] * ((1.0 - lam) * values[h] + lam * nxt)
        out[h] = nxt
    return out


def reachability_target(violation: torch.Tensor, next_u: torch.Tensor, gamma_u: float) -> torch.Tensor:
    """Eq. 30 (RESPO, Theorem 1): u(s_t) = max{1[s_t in S_v], gamma_u u(s_{t+1})}. The paper's appendix
    writes the indicator on the feasible set S_f; u is the probability of reaching the violation set
    S_v (eq. 5), so the indicator is on S_v, as in RESPO."""
    return torch.maximum(violation, gamma_u * next_u)


def augmented_lagrangian_penalty(v_cost: torch.Tensor, lam_p: float, mu: float) -> torch.Tensor:
    """Eq. 17 (and 29): Phi(V^c, lambda_p, mu) = lambda_p V^c + mu/4 (V^c)^2 where
    lambda_p + mu/2 V^c >= 0, else -lambda_p^2 / mu."""
    active = lam_p + 0.5 * mu * v_cost >= 0
    return torch.where(active, lam_p * v_cost + 0.25 * mu * v_cost.pow(2), torch.full_like(v_cost, -(lam_p**2) / mu))


def lagrange_multiplier_step(lam_p: float, mu: float, v_cost: float) -> float:
    """Eq. 27: lambda_p <- lambda_p + mu/2 V^c, or 0 where that would be negative."""
    return max(0.0, lam_p + 0.5 * mu * v_cost)


def offline_actor_weights(
    adv_reward: torch.Tensor, adv_cost: torch.Tensor, u: torch.Tensor, beta1: float, beta2: float, max_weight: float
) -> torch.Tensor:
    """Eq. 19: w = (1 - u) exp(beta1 A^r) + u exp(-beta2 A^c), the advantage-weighted closed form of the
    safe actor (eq. 18): where a violation is unlikely (u near 0) the reward advantage weighs the data's
    actions, where it is likely the cost advantage does. Each exponential is capped at `max_weight`
    (AWR's usual guard against a few huge weights; the paper leaves it open)."""
    up = torch.exp(beta1 * adv_reward).clamp(max=max_weight)
    down = torch.exp(-beta2 * adv_cost).clamp(max=max_weight)
    return (1.0 - u) * up + u * down


def online_actor_weights(
    adv_reward: torch.Tensor, adv_cost: torch.Tensor, u: torch.Tensor, beta1: float, beta2: float
) -> torch.Tensor:
    """Eq. 23: w = (1 - u) beta1 A^r - u beta2 A^c, the online actor's weight without the behaviour
    constraint (a policy-gradient weight on the new policy's own actions)."""
    return (1.0 - u) * beta1 * adv_reward - u * beta2 * adv_cost


def normalised_q(q_reward: torch.Tensor, q_cost: torch.Tensor, q_max: float, c_max: float) -> torch.Tensor:
    """Eq. 22: Q~ = Q / Q^* - Q^c / C^*, with Q^* and C^* the largest discounted returns."""
    return q_reward / q_max - q_cost / c_max


def expansion_probabilities(q_tilde: torch.Tensor, inverse_temperature: float) -> torch.Tensor:
    """Eq. 21: softmax over the candidate actions' Q~ (last dimension). Table 4's alpha = 10 is PEX's
    inverse temperature (PEX multiplies Q by it): read as a divisor, exp(Q~/10) over Q~ in [-1, 1] would
    make every choice close to a coin toss, whatever the critics say."""
    return torch.softmax(inverse_temperature * q_tilde, dim=-1)


def discounted_bound(per_step_max: float, gamma: float, steps: int) -> float:
    """Q^* = sum_{t=0}^{T} gamma^t r_max (eq. 22's normaliser)."""
    return per_step_max * sum(gamma**t for t in range(steps + 1))
