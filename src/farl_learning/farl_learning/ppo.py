"""PPO with GAE for online fine-tuning (paper Sec. III-B), CleanRL style: the config, the trajectory,
the advantage estimate and the update, top to bottom. `farl_learning.finetune_rollouts` collects the
trajectories in FailureBench; the learner node collects them from episode bags.

The policy and value start from the offline checkpoint (Uni-O4). PPO trains on the executed
transitions (the safe transitions of eq. 11) with the clipped objective of eq. 3; on the policy's own
steps the policy term takes the draw as executed, clipped to the action box, with its clipped-action
likelihood (`GaussianPolicy.executed_log_prob`): an episode bag holds nothing else, and both learners
must learn the same way. Steps the shield or a person replaced stay out of it and count in the value
targets only (optionally, the draws the shield rejected enter it with a fixed negative advantage,
`PPOConfig.rejected_advantage`). With `lagrangian=True` it is PPO-Lagrangian: a cost critic and a
multiplier that grows while the failure rate per episode exceeds `cost_limit`.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from farl_learning.nets import GaussianPolicy, ValueNet, clipped_log_prob, gradient_step


@dataclass
class PPOConfig:
    """Online PPO settings: the one schedule of both online learners, `farl finetune` (and `farl bench`)
    in FailureBench and the learner node in the ROS 2 graph (`online_ppo_config` builds it for both)."""

    total_steps: int = 100_000
    """Environment steps of fine-tuning."""
    num_envs: int = 4
    """Environments stepped in lock-step, so policy and shield run batched."""
    steps_per_env: int = 200
    """Each update collects at least this many steps per environment (finishing its episode): an update's
    batch is `batch_steps` = num_envs x steps_per_env transitions, in FailureBench and in the graph."""
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_eps: float = 0.2
    epochs: int = 4
    minibatch_size: int = 256
    policy_lr: float = 3e-6
    """Small: fine-tuning must improve the offline policy, not wash it out. Measured on Fragile Push
    Wall over 30k steps: 3e-6 raised the training return quarter by quarter (539 -> 678) and kept the
    evaluation at 891 (success 60%); 1e-5 and 3e-5 let it fall below 400 within the same budget."""
    value_lr: float = 1e-4
    max_grad_norm: float = 0.5
    target_kl: float = 0.01
    """Stop an update's epochs early once the policy moved this far (approximate KL) from the one
    that collected the data: fine-tuning should improve the offline policy, not replace it."""
    value_warmup_updates: int = 3
    """First updates train only the value network: the offline V was fitted to the demonstrator,
    not to this policy, and its errors would steer the first policy updates."""
    learn_log_std: bool = False
    """Keep the exploration noise the offline policy learned (True lets PPO change it)."""
    recovery_in_policy_loss: bool = False
    """Whether steps where the shield swapped in the recovery action enter the policy term of eq. 3.
    They always enter the value targets and GAE (the task policy's earlier actions are judged by what
    followed, rescue included); but PPO's ratio assumes the task policy drew the action, which it did
    not, so by default they are left out of the policy gradient."""
    rejected_advantage: float = 0.0
    """Where the shield swapped, the task policy's rejected draw enters the policy term with this
    advantage, in units of the batch's normalised advantages (negative: such proposals become less
    likely), as a shield's rejection is punished in Alshiekh et al. (2018). 0 leaves them out."""
    anchor_coef: float = 0.0
    """Weight of KL(pre-trained policy || policy), averaged over every state of the batch, swapped ones
    included, added to the policy loss: it holds the policy near the offline one where the policy term
    does not reach (the states where the shield acted). 0 leaves it out, as the paper's PPO does.
    Measured on Bounded Push with a shield stricter than calibrated (a quarter of the steps swapped),
    1e5 steps: without it the policy evaluated alone fell from 1186 to 546 and 65; with 0.1, 1133 and
    1256; with 1, 1241 and 1293. At the calibrated shield 1 cost a quarter of the training return and
    0.1 none, but both had more failure episodes than without (0.1: 7.5, 1: 5.0, against 3.3; 2-3 seeds):
    so it stays off unless the shield swaps on many steps (README, Bounded Push)."""
    ent_coef: float = 0.0
    reward_scale: float = 0.1
    """Must match the offline critics' scale (the value network is initialised from them)."""
    lagrangian: bool = False
    cost_limit: float = 0.1
    """PPO-Lagrangian: allowed failures per episode."""
    lagrange_lr: float = 0.05
    horizon_steps: int | None = None
    """Episode length; None: the task's own (200 for FailureBench, 80 for SafeReach)."""
    seed: int = 0
    rate_hz: float = 5.0
    """Control rate: the clock a scripted person's reaction and release times run on."""

    def __post_init__(self) -> None:
        # a learner node takes these from ROS parameters: a wrong sign or a NaN would not fail, it would
        # silently train something else (a negative anchor pushes the policy away from the offline one)
        positive = ("total_steps", "num_envs", "steps_per_env", "epochs", "minibatch_size", "clip_eps")
        positive += ("policy_lr", "value_lr", "max_grad_norm", "target_kl", "reward_scale", "rate_hz")
        unit = ("gamma", "gae_lambda")
        at_least_zero = ("value_warmup_updates", "anchor_coef", "ent_coef", "cost_limit", "lagrange_lr")
        for name in positive + unit + at_least_zero:
            value = getattr(self, name)
            if not math.isfinite(value):
                raise ValueError(f"PPOConfig.{name} must be finite, got {value!r}")
            if name in positive and value <= 0:
                raise ValueError(f"PPOConfig.{name} must be > 0, got {value!r}")
            if name in unit and not 0 <= value <= 1:
                raise ValueError(f"PPOConfig.{name} must be in [0, 1], got {value!r}")
            if name in at_least_zero and value < 0:
                raise ValueError(f"PPOConfig.{name} must be >= 0, got {value!r}")

    @property
    def batch_steps(self) -> int:
        """Transitions per update: FailureBench collects them from `num_envs` environments at once, the
        learner node from episode bags as they are recorded."""
        return self.num_envs * self.steps_per_env


def online_ppo_config(offline_config: dict[str, Any], **overrides: Any) -> PPOConfig:
    """The PPO schedule of online learning from a pre-trained run, in FailureBench (`farl finetune`,
    `farl bench`) and in the graph (the learner node) alike: PPOConfig's defaults, the reward scale the
    offline critics were trained at (the value network starts from them), and the caller's `overrides`
    (a method's settings, a seed, a budget)."""
    return PPOConfig(**{**overrides, "reward_scale": offline_config["reward_scale"]})


@dataclass
class Trajectory:
    """One episode (or its part) as PPO consumes it: what the policy saw and did, with the log-probability
    and value of each step under the networks that acted. Filled step by step in simulated rollouts
    (`finetune_rollouts`), or made whole from a bag (`PPOLearner.on_policy_trajectory`). The other
    containers: `bags.Episode` (one bag's arrays and labels), `bags.Dataset` (many, concatenated) and
    `data.Transitions` (a Dataset as torch tensors, with next-step links, for offline training)."""

    obs: list[np.ndarray] = field(default_factory=list)
    act: list[np.ndarray] = field(default_factory=list)
    logp: list[float] = field(default_factory=list)
    val: list[float] = field(default_factory=list)
    rew: list[float] = field(default_factory=list)
    cost: list[float] = field(default_factory=list)
    terminated: bool = False
    last_obs: np.ndarray | None = None
    swapped: list[bool] | None = None
    """Per step: True where the executed action came from the recovery side, not the task policy."""
    rejected: list[tuple[np.ndarray, float] | None] | None = None
    """Per step: the task policy's raw draw and its log-probability where the shield rejected it (kept
    only while `PPOConfig.rejected_advantage` is set)."""


def gae(rew: np.ndarray, val: np.ndarray, last_val: float, gamma: float, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """Advantages and returns of one trajectory; `last_val` is 0 after a termination."""
    adv = np.zeros_like(rew)
    running = 0.0
    for t in reversed(range(len(rew))):
        nxt = val[t + 1] if t + 1 < len(rew) else last_val
        delta = rew[t] + gamma * nxt - val[t]
        running = delta + gamma * lam * running
        adv[t] = running
    return adv, adv + val


class PPOLearner:
    """The PPO update itself (eq. 3 with GAE advantages), shared by the simulated trainer below and the
    learner node, which feeds it transitions read back from episode bags."""

    def __init__(self, policy: GaussianPolicy, value: ValueNet, cfg: PPOConfig, log: Any = None) -> None:
        """`log`: a TensorBoard SummaryWriter for the update's losses, or None."""
        self.cfg = cfg
        self.policy, self.value = policy, value
        self.cost_value = copy.deepcopy(value) if cfg.lagrangian else None
        if self.cost_value is not None:
            torch.nn.init.zeros_(self.cost_value.net[-1].weight)
            torch.nn.init.zeros_(self.cost_value.net[-1].bias)
        # A frozen log_std must not collect gradients either: nothing would zero them, and their growing
        # sum would enter the gradient-norm clip and shrink every later step.
        policy.log_std.requires_grad_(cfg.learn_log_std)
        self.pi_opt = torch.optim.Adam([p for p in policy.parameters() if p.requires_grad], lr=cfg.policy_lr)
        v_params = list(value.parameters()) + (list(self.cost_value.parameters()) if self.cost_value else [])
        self.v_opt = torch.optim.Adam(v_params, lr=cfg.value_lr)
        # the policy as the learner got it (the offline one), for `anchor_coef`
        self.anchor = copy.deepcopy(policy).requires_grad_(False) if cfg.anchor_coef > 0 else None
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.lagrange = 0.0
        self.updates = 0
        self.log = log

    def state(self) -> dict[str, Any]:
        return {
            "config": asdict(self.cfg),
            "obs_dim": self.policy.norm.mean.numel(),
            "act_dim": self.policy.log_std.numel(),
            "hidden": self.policy.net[0].out_features,
            "policy": self.policy.state_dict(),
            "value": self.value.state_dict(),
            "cost_value": self.cost_value.state_dict() if self.cost_value else None,
            "anchor": self.anchor.state_dict() if self.anchor else None,
            "pi_opt": self.pi_opt.state_dict(),
            "v_opt": self.v_opt.state_dict(),
            "gen": self.gen.get_state(),
            "lagrange": self.lagrange,
            "updates": self.updates,
            "version": self.updates,
        }

    def restore(self, data: dict[str, Any]) -> None:
        self.policy.load_state_dict(data["policy"])
        self.value.load_state_dict(data["value"])
        if self.cost_value is not None and data["cost_value"] is not None:
            self.cost_value.load_state_dict(data["cost_value"])
        if self.anchor is not None and data.get("anchor") is not None:
            self.anchor.load_state_dict(data["anchor"])
        self.pi_opt.load_state_dict(data["pi_opt"])
        self.v_opt.load_state_dict(data["v_opt"])
        self.gen.set_state(data["gen"])
        self.lagrange, self.updates = data["lagrange"], data["updates"]

    def on_policy_trajectory(
        self,
        obs: np.ndarray,
        act: np.ndarray,
        rew: np.ndarray,
        cost: np.ndarray,
        terminated: bool,
        last_obs: np.ndarray,
        swapped: np.ndarray | None = None,
    ) -> Trajectory:
        """A trajectory from logged transitions, with log-probs and values of the current networks:
        `act` is what the policy proposed on its own steps (the clipped draw) and what was executed on
        the `swapped` ones, as `PPOTrainer.collect` keeps them."""
        o = torch.as_tensor(np.asarray(obs), dtype=torch.float32)
        a = torch.as_tensor(np.asarray(act), dtype=torch.float32)
        with torch.no_grad():
            logp = self.policy.executed_log_prob(o, a).numpy()
            val = self.value(o).numpy()
        return Trajectory(
            list(np.asarray(obs)),
            list(np.asarray(act)),
            logp.tolist(),
            val.tolist(),
            (np.asarray(rew) * self.cfg.reward_scale).tolist(),
            np.asarray(cost).tolist(),
            terminated,
            np.asarray(last_obs),
            None if swapped is None else [bool(x) for x in swapped],
        )

    # update --------------------------------------------------------------------------------------
    def update(self, trajs: list[Trajectory], failure_rate: float = 0.0, step: int | None = None) -> dict[str, float]:
        """One PPO update on complete trajectories; `failure_rate` drives PPO-Lagrangian's multiplier."""
        cfg = self.cfg
        obs, act, logp, adv, ret, cadv, cret, own = [], [], [], [], [], [], [], []
        rej_obs, rej_act, rej_logp = [], [], []
        for t in trajs:
            o = np.asarray(t.obs, dtype=np.float32)
            with torch.no_grad():
                last_v = (
                    0.0 if t.terminated else float(self.value(torch.as_tensor(t.last_obs[None], dtype=torch.float32)))
                )
            a, r = gae(np.asarray(t.rew), np.asarray(t.val), last_v, cfg.gamma, cfg.gae_lambda)
            obs.append(o)
            act.append(np.asarray(t.act, dtype=np.float32))
            logp.append(np.asarray(t.logp, dtype=np.float32))
            adv.append(a)
            ret.append(r)
            sw = np.asarray(t.swapped if t.swapped is not None else [False] * len(t.rew), dtype=bool)
            own.append(np.ones(len(t.rew), dtype=bool) if cfg.recovery_in_policy_loss else ~sw)
            if cfg.rejected_advantage != 0.0:
                for k, draw in enumerate(t.rejected or []):
                    if draw is not None:
                        rej_obs.append(o[k])
                        rej_act.append(np.asarray(draw[0], dtype=np.float32))
                        rej_logp.append(draw[1])
            if self.cost_value is not None:
                with torch.no_grad():
                    cv = self.cost_value(torch.as_tensor(o)).numpy()
                ca, cr = gae(np.asarray(t.cost), cv, 0.0, cfg.gamma, cfg.gae_lambda)
                cadv.append(ca)
                cret.append(cr)
        OBS, A, LP = (torch.as_tensor(np.concatenate(x)) for x in (obs, act, logp))
        ADV = torch.as_tensor(np.concatenate(adv), dtype=torch.float32)
        RET = torch.as_tensor(np.concatenate(ret), dtype=torch.float32)
        OWN = torch.as_tensor(np.concatenate(own), dtype=torch.float32)
        ADV = (ADV - ADV.mean()) / (ADV.std() + 1e-8)
        if self.cost_value is not None:
            CADV = torch.as_tensor(np.concatenate(cadv), dtype=torch.float32)
            CADV = CADV - CADV.mean()
            CRET = torch.as_tensor(np.concatenate(cret), dtype=torch.float32)
            self.lagrange = max(0.0, self.lagrange + cfg.lagrange_lr * (failure_rate - cfg.cost_limit))
        n = len(OBS)
        # rejected draws ride along with each minibatch in proportion, so every gradient step sees both
        n_rej = len(rej_obs)
        if n_rej:
            R_OBS = torch.as_tensor(np.stack(rej_obs))
            R_A = torch.as_tensor(np.stack(rej_act))
            R_LP = torch.as_tensor(np.asarray(rej_logp, dtype=np.float32))
        info = {"pi_loss": 0.0, "v_loss": 0.0, "clip_frac": 0.0, "approx_kl": 0.0}
        train_policy = self.updates >= cfg.value_warmup_updates
        for _ in range(cfg.epochs):
            if train_policy and info["approx_kl"] > cfg.target_kl:
                break
            perm = torch.randperm(n, generator=self.gen)
            r_perm = torch.randperm(n_rej, generator=self.gen) if n_rej else None
            for s in range(0, n, cfg.minibatch_size):
                mb = perm[s : s + cfg.minibatch_size]
                dist = self.policy.dist(OBS[mb])
                new_lp = clipped_log_prob(dist, A[mb])
                ratio = torch.exp(new_lp - LP[mb])
                a_mb = ADV[mb]
                if self.cost_value is not None:
                    a_mb = (a_mb - self.lagrange * CADV[mb]) / (1 + self.lagrange)
                surrogate = torch.min(ratio * a_mb, ratio.clamp(1 - cfg.clip_eps, 1 + cfg.clip_eps) * a_mb)
                w = OWN[mb]
                pi_sum, pi_count = (surrogate * w).sum(), w.sum()
                if r_perm is not None:
                    rb = r_perm[s * n_rej // n : min(n, s + cfg.minibatch_size) * n_rej // n]
                    if len(rb):
                        r_ratio = torch.exp(self.policy.executed_log_prob(R_OBS[rb], R_A[rb]) - R_LP[rb])
                        r_adv = cfg.rejected_advantage
                        r_surr = torch.min(r_ratio * r_adv, r_ratio.clamp(1 - cfg.clip_eps, 1 + cfg.clip_eps) * r_adv)
                        pi_sum, pi_count = pi_sum + r_surr.sum(), pi_count + len(rb)
                pi_loss = -pi_sum / pi_count.clamp(min=1.0)
                pi_loss = pi_loss - cfg.ent_coef * dist.entropy().sum(-1).mean()
                if self.anchor is not None:
                    with torch.no_grad():
                        offline = self.anchor.dist(OBS[mb])
                    kl = torch.distributions.kl_divergence(offline, dist).sum(-1).mean()
                    pi_loss = pi_loss + cfg.anchor_coef * kl
                    info["anchor_kl"] = float(kl.detach())
                if train_policy:
                    gradient_step(self.pi_opt, pi_loss, (self.policy.parameters(), cfg.max_grad_norm))
                with torch.no_grad():
                    info["approx_kl"] = float((((ratio - 1) - torch.log(ratio)) * w).sum() / w.sum().clamp(min=1.0))
                v_loss = ((self.value(OBS[mb]) - RET[mb]) ** 2).mean()
                if self.cost_value is not None:
                    v_loss = v_loss + ((self.cost_value(OBS[mb]) - CRET[mb]) ** 2).mean()
                gradient_step(self.v_opt, v_loss)
                info["pi_loss"] = float(pi_loss.detach())
                info["v_loss"] = float(v_loss.detach())
                info["clip_frac"] = float(((ratio - 1).abs() > cfg.clip_eps).float().mean())
        self.updates += 1
        if self.log is not None:  # logged against `step` (env steps so far), else against the update count
            x = self.updates if step is None else step
            for k, v in info.items():
                self.log.add_scalar(f"ppo/{k}", v, x)
            self.log.add_scalar("ppo/lagrange", self.lagrange, x)
        return info
