"""Online fine-tuning with PPO and GAE (paper Sec. III-B), CleanRL style: one file, top to bottom.

The policy and value start from the offline checkpoint (Uni-O4). Each proposed action goes through
an `ActionFilter` before it is executed: the safety shield gives FARL (eq. 11), the no-op filter
gives the plain Uni-O4 baseline. PPO trains on the executed transitions (the safe transitions of
eq. 11) with the clipped objective of eq. 3; on the policy's own steps the policy term uses the raw
Gaussian draw and its log-probability (clipped only when executed, as CleanRL does), while steps
the shield or a person replaced stay out of it and count in the value targets only.
With `lagrangian=True` it is PPO-Lagrangian: a cost critic and a multiplier that grows while the
failure rate per episode exceeds `cost_limit`.

With a `person` (farl_teleop's scripted person) a human stand-in may take over from the shield's
output; their actions stay out of the policy term as shield swaps do, the episode counts as an IR
failure, and each takeover is written as a recovery episode bag under OUT/takeovers.

Rollouts always end at episode boundaries, so a checkpoint after an update holds everything a
resumed run needs (weights, optimisers, random generators, counters) and a killed run resumes
bit-identically from its last update.
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from farl_learning.action_filter import ActionFilter, NoFilter
from farl_learning.checkpoint import load, save_atomic
from farl_learning.nets import GaussianPolicy, ValueNet
from farl_sim.seeding import episode_seed


@dataclass
class PPOConfig:
    """Online PPO settings."""

    total_steps: int = 100_000
    """Environment steps of fine-tuning."""
    num_envs: int = 4
    """Environments stepped in lock-step, so policy and shield run batched."""
    steps_per_env: int = 200
    """Each update collects at least this many steps per environment (finishing its episode)."""
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
    ent_coef: float = 0.0
    reward_scale: float = 0.1
    """Must match the offline critics' scale (the value network is initialised from them)."""
    lagrangian: bool = False
    cost_limit: float = 0.1
    """PPO-Lagrangian: allowed failures per episode."""
    lagrange_lr: float = 0.05
    horizon_steps: int = 200
    seed: int = 0
    rate_hz: float = 5.0
    """Control rate: the clock a scripted person's reaction and release times run on."""


@dataclass
class Trajectory:
    obs: list[np.ndarray]
    act: list[np.ndarray]
    logp: list[float]
    val: list[float]
    rew: list[float]
    cost: list[float]
    terminated: bool = False
    last_obs: np.ndarray | None = None
    swapped: list[bool] | None = None
    """Per step: True where the executed action came from the recovery side, not the task policy."""


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
        """A trajectory from logged transitions, with log-probs and values of the current networks.

        Bags hold the executed (clipped) action, not the raw Gaussian draw, so the learner node's
        log-probabilities are of the clipped action: exact wherever the draw stayed inside the box."""
        o = torch.as_tensor(np.asarray(obs), dtype=torch.float32)
        a = torch.as_tensor(np.asarray(act), dtype=torch.float32)
        with torch.no_grad():
            logp = self.policy.log_prob(o, a).numpy()
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
        info = {"pi_loss": 0.0, "v_loss": 0.0, "clip_frac": 0.0, "approx_kl": 0.0}
        train_policy = self.updates >= cfg.value_warmup_updates
        for _ in range(cfg.epochs):
            if train_policy and info["approx_kl"] > cfg.target_kl:
                break
            perm = torch.randperm(n, generator=self.gen)
            for s in range(0, n, cfg.minibatch_size):
                mb = perm[s : s + cfg.minibatch_size]
                dist = self.policy.dist(OBS[mb])
                new_lp = dist.log_prob(A[mb]).sum(-1)
                ratio = torch.exp(new_lp - LP[mb])
                a_mb = ADV[mb]
                if self.cost_value is not None:
                    a_mb = (a_mb - self.lagrange * CADV[mb]) / (1 + self.lagrange)
                surrogate = torch.min(ratio * a_mb, ratio.clamp(1 - cfg.clip_eps, 1 + cfg.clip_eps) * a_mb)
                w = OWN[mb]
                pi_loss = -(surrogate * w).sum() / w.sum().clamp(min=1.0)
                pi_loss = pi_loss - cfg.ent_coef * dist.entropy().sum(-1).mean()
                if train_policy:
                    self.pi_opt.zero_grad()
                    pi_loss.backward()
                    torch.nn.utils.clip_grad_norm_(self.policy.parameters(), cfg.max_grad_norm)
                    self.pi_opt.step()
                with torch.no_grad():
                    info["approx_kl"] = float((((ratio - 1) - torch.log(ratio)) * w).sum() / w.sum().clamp(min=1.0))
                v_loss = ((self.value(OBS[mb]) - RET[mb]) ** 2).mean()
                if self.cost_value is not None:
                    v_loss = v_loss + ((self.cost_value(OBS[mb]) - CRET[mb]) ** 2).mean()
                self.v_opt.zero_grad()
                v_loss.backward()
                self.v_opt.step()
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


class PPOTrainer:
    """Fine-tunes in FailureBench: batched rollouts through the action filter, then `PPOLearner.update`."""

    def __init__(
        self,
        task: str,
        policy: GaussianPolicy,
        value: ValueNet,
        cfg: PPOConfig | None = None,
        action_filter: ActionFilter | None = None,
        out_dir: str | Path | None = None,
        log=None,
        person: Any = None,
    ) -> None:
        """`person`: a `farl_teleop.takeover.PersonAtControls` factory's settings, or None."""
        from farl_sim import make_env

        self.cfg = cfg or PPOConfig()
        self.task = task
        self.policy, self.value = policy, value
        self.learner = PPOLearner(policy, value, self.cfg, log)
        self.gen = self.learner.gen
        self.filter = action_filter or NoFilter()
        self.envs = [make_env(task, horizon_steps=self.cfg.horizon_steps) for _ in range(self.cfg.num_envs)]
        self.steps = 0
        self.next_episode = 0
        self.episodes: list[dict[str, Any]] = []
        self.out_dir = Path(out_dir) if out_dir else None
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        self.log = log
        self.person = person
        self.persons = [person.make(task) for _ in range(self.cfg.num_envs)] if person is not None else None
        self._seeds = [0] * self.cfg.num_envs

    @property
    def updates(self) -> int:
        return self.learner.updates

    # checkpointing -------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            **self.learner.state(),
            "kind": "finetune",
            "task": self.task,
            "filter": self.filter.name,
            "steps": self.steps,
            "next_episode": self.next_episode,
            "episodes": self.episodes,
        }

    def restore(self, data: dict[str, Any]) -> None:
        if data["task"] != self.task or data["filter"] != self.filter.name:
            raise ValueError(
                f"checkpoint is for task {data['task']} with filter {data['filter']}, "
                f"not {self.task} with {self.filter.name}"
            )
        self.learner.restore(data)
        self.steps, self.next_episode, self.episodes = data["steps"], data["next_episode"], list(data["episodes"])
        self._rewrite_episode_log()

    def _rewrite_episode_log(self) -> None:
        """OUT/episodes.jsonl as the checkpoint has it: episodes logged after the last update by a killed
        run are played again on resume, and would otherwise appear twice (or end in a torn line)."""
        if self.out_dir is None:
            return
        path = self.out_dir / "episodes.jsonl"
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text("".join(json.dumps(e) + "\n" for e in self.episodes))
        tmp.replace(path)

    def update(self, trajs: list[Trajectory]) -> dict[str, float]:
        recent = self.episodes[-len(trajs) :]
        rate = float(np.mean([e["failure"] for e in recent])) if recent else 0.0
        return self.learner.update(trajs, rate, step=self.steps)

    @property
    def checkpoint_path(self) -> Path | None:
        return self.out_dir / "finetune.pt" if self.out_dir else None

    def resume_if_possible(self) -> bool:
        p = self.checkpoint_path
        if p is not None and p.exists():
            self.restore(load(p, "finetune"))
            return True
        return False

    # rollouts ------------------------------------------------------------------------------------
    def _reset(self, i: int) -> np.ndarray:
        seed = episode_seed(self.cfg.seed, self.next_episode)
        self.next_episode += 1
        obs, _ = self.envs[i].reset(seed=seed)
        if self.persons is not None:
            self.persons[i].new_episode(obs)
        self._seeds[i] = seed
        return obs

    @staticmethod
    def _new_stats() -> dict[str, Any]:
        return {"return": 0.0, "swaps": 0, "success": False, "takeover_steps": 0}

    def collect(self) -> list[Trajectory]:
        cfg = self.cfg
        obs = [self._reset(i) for i in range(cfg.num_envs)]
        trajs = [Trajectory([], [], [], [], [], [], swapped=[]) for _ in range(cfg.num_envs)]
        counts = [0] * cfg.num_envs
        stats = [self._new_stats() for _ in range(cfg.num_envs)]
        active = list(range(cfg.num_envs))
        done_trajs: list[Trajectory] = []
        while active:
            o = np.stack([obs[i] for i in active])
            ot = torch.as_tensor(o, dtype=torch.float32)
            with torch.no_grad():
                mean, log_std = self.policy(ot)
                sample = mean + log_std.exp() * torch.randn(mean.shape, generator=self.gen)
                proposed = sample.clamp(-1, 1).numpy().astype(np.float64)
            res = self.filter.filter(o, proposed)
            acts, not_own = res.executed.copy(), np.asarray(res.swapped, dtype=bool).copy()
            ending = [False] * len(active)
            if self.persons is not None:
                for j, i in enumerate(active):
                    d = self.persons[i].step(o[j], acts[j], len(trajs[i].rew) / cfg.rate_hz)  # the episode's clock
                    acts[j], ending[j] = d.action, d.released and self.person.takeover_end == "end_episode"
                    not_own[j] |= d.intervened
                    stats[i]["takeover_steps"] += int(d.intervened)
            # As CleanRL: the policy's own steps keep the raw Gaussian draw and its log-probability; only
            # the executed copy is clipped. A swapped or taken-over step keeps what was executed: it is
            # out of the policy term anyway and enters only the value targets.
            stored = np.where(not_own[:, None], acts, sample.numpy().astype(np.float64))
            with torch.no_grad():
                logp = self.policy.log_prob(ot, torch.as_tensor(stored, dtype=torch.float32)).numpy()
                val = self.value(ot).numpy()
            still = []
            for j, i in enumerate(active):
                nobs, r, term, trunc, info = self.envs[i].step(acts[j])
                trunc = trunc or ending[j]
                if self.persons is not None:
                    self.persons[i].record(acts[j], r, info, term, trunc, nobs)
                t = trajs[i]
                t.obs.append(o[j])
                t.act.append(stored[j])
                t.logp.append(float(logp[j]))
                t.val.append(float(val[j]))
                t.rew.append(float(r) * cfg.reward_scale)
                t.cost.append(float(info["cost"]))
                t.swapped.append(bool(not_own[j]))
                counts[i] += 1
                self.steps += 1
                st = stats[i]
                st["return"] += float(r)
                st["swaps"] += int(res.swapped[j])
                st["success"] |= bool(info["success"])
                if term or trunc:
                    t.terminated, t.last_obs = bool(term), nobs
                    broke, intervened = bool(info["failure"]), st["takeover_steps"] > 0
                    self.episodes.append(
                        {
                            "episode": len(self.episodes),
                            "step": self.steps,
                            "return": st["return"],
                            "failure": broke or intervened,  # an IR failure: broken, or a person stepped in
                            "broke": broke,
                            "takeover_steps": st["takeover_steps"],
                            "success": st["success"],
                            "swaps": st["swaps"],
                            "length": len(t.rew),
                            "version": self.updates,
                        }
                    )
                    if self.persons is not None and self.out_dir is not None:
                        self.persons[i].save_takeovers(
                            self.out_dir / "takeovers", self.task, self.episodes[-1]["episode"], self._seeds[i]
                        )
                    self._log_episode(self.episodes[-1])
                    done_trajs.append(t)
                    if counts[i] >= cfg.steps_per_env:
                        continue
                    trajs[i] = Trajectory([], [], [], [], [], [], swapped=[])
                    stats[i] = self._new_stats()
                    nobs = self._reset(i)
                obs[i] = nobs
                still.append(i)
            active = still
        return done_trajs

    def _log_episode(self, ep: dict[str, Any]) -> None:
        if self.log is not None:
            self.log.add_scalar("episode/return", ep["return"], self.steps)
            self.log.add_scalar("episode/failure", float(ep["failure"]), self.steps)
            self.log.add_scalar("episode/swaps", ep["swaps"], self.steps)
        if self.out_dir is not None:
            with (self.out_dir / "episodes.jsonl").open("a") as f:
                f.write(json.dumps(ep) + "\n")

    def train(self, progress: bool = True) -> list[dict[str, Any]]:
        bar = tqdm(
            total=self.cfg.total_steps,
            initial=min(self.steps, self.cfg.total_steps),
            unit="step",
            desc=f"finetune {self.task} [{self.filter.name}]",
            disable=not progress,
        )
        try:
            while self.steps < self.cfg.total_steps:
                before = self.steps
                trajs = self.collect()
                self.update(trajs)
                if self.checkpoint_path is not None:
                    save_atomic(self.checkpoint_path, self.state())
                bar.update(min(self.steps, self.cfg.total_steps) - min(before, self.cfg.total_steps))
                recent = self.episodes[-20:]
                bar.set_postfix(
                    ret=f"{np.mean([e['return'] for e in recent]):.0f}",
                    fail=sum(e["failure"] for e in self.episodes),
                    swaps=f"{np.mean([e['swaps'] for e in recent]):.1f}",
                )
        finally:
            bar.close()
        return self.episodes

    def close(self) -> None:
        for env in self.envs:
            env.close()


def evaluate(
    task: str,
    policy: GaussianPolicy,
    episodes: int = 10,
    seed: int = 10_000,
    horizon_steps: int = 200,
    action_filter: ActionFilter | None = None,
) -> dict[str, float]:
    """Deterministic (mean-action) episodes: mean return, failure and success rates."""
    from farl_sim import make_env

    env = make_env(task, horizon_steps=horizon_steps)
    filt = action_filter or NoFilter()
    rets, fails, succ = [], [], []
    for e in range(episodes):
        obs, _ = env.reset(seed=seed + e)
        total, success, failed = 0.0, False, False
        while True:
            with torch.no_grad():
                a = policy(torch.as_tensor(obs[None], dtype=torch.float32))[0].numpy().astype(np.float64)
            a = filt.filter(obs[None], a).executed[0]
            obs, r, term, trunc, info = env.step(a)
            total += r
            success |= info["success"]
            failed |= info["failure"]
            if term or trunc:
                break
        rets.append(total)
        fails.append(failed)
        succ.append(success and not failed)
    env.close()
    return {"return": float(np.mean(rets)), "failure_rate": float(np.mean(fails)), "success_rate": float(np.mean(succ))}
