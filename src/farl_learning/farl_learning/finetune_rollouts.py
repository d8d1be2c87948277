"""Online fine-tuning in FailureBench: batched rollouts of the task policy through an action filter,
`PPOLearner.update` on them, checkpoints, the episode log, and deterministic evaluation.

Each proposed action goes through an `ActionFilter` before it is executed: the safety shield gives
FARL (eq. 11), the no-op filter gives the plain Uni-O4 baseline. With a `person` (farl_teleop's
scripted person) a human stand-in may take over from the shield's output; their actions stay out of
the policy term as shield swaps do, the episode counts as an IR failure, and each takeover is written
as a recovery episode bag under OUT/takeovers.

Rollouts always end at episode boundaries, so a checkpoint after an update holds everything a
resumed run needs (weights, optimisers, random generators, counters) and a killed run resumes
bit-identically from its last update.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from farl_learning.action_filter import ActionFilter, NoFilter
from farl_learning.checkpoint import load, save_atomic
from farl_learning.nets import GaussianPolicy, ValueNet
from farl_learning.ppo import PPOConfig, PPOLearner, Trajectory
from farl_sim.seeding import episode_seed


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
        return {"return": 0.0, "cost": 0.0, "broke": False, "swaps": 0, "success": False, "takeover_steps": 0}

    def collect(self) -> list[Trajectory]:
        cfg = self.cfg
        obs = [self._reset(i) for i in range(cfg.num_envs)]
        trajs = [Trajectory(swapped=[], rejected=[]) for _ in range(cfg.num_envs)]
        counts = [0] * cfg.num_envs
        stats = [self._new_stats() for _ in range(cfg.num_envs)]
        active = list(range(cfg.num_envs))
        done_trajs: list[Trajectory] = []
        while active:
            o = np.stack([obs[i] for i in active])
            ot = torch.as_tensor(o, dtype=torch.float32)
            sample = self.policy.act(ot, generator=self.gen)
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
            # The policy's own steps keep the clipped draw, as the graph's bags do (the learner node reads
            # them back the same way); a swapped or taken-over step keeps what was executed: it is out
            # of the policy term anyway and enters only the value targets.
            stored = np.where(not_own[:, None], acts, proposed)
            with torch.no_grad():
                logp = self.policy.executed_log_prob(ot, torch.as_tensor(stored, dtype=torch.float32)).numpy()
                val = self.value(ot).numpy()
                # the draws the shield rejected, only where PPO is asked to learn from them
                rejected = np.asarray(res.swapped, dtype=bool) & (cfg.rejected_advantage != 0.0)
                if rejected.any():
                    draw_logp = self.policy.executed_log_prob(
                        ot, torch.as_tensor(proposed, dtype=torch.float32)
                    ).numpy()
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
                t.rejected.append((proposed[j].astype(np.float32), float(draw_logp[j])) if rejected[j] else None)
                counts[i] += 1
                self.steps += 1
                st = stats[i]
                st["return"] += float(r)
                st["swaps"] += int(res.swapped[j])
                st["success"] |= bool(info["success"])
                # a FailureBench failure ends its episode; a SafeReach touch does not, so it is kept here
                st["broke"] |= bool(info["failure"])
                st["cost"] += float(info["cost"])
                if term or trunc:
                    t.terminated, t.last_obs = bool(term), nobs
                    broke, intervened = st["broke"], st["takeover_steps"] > 0
                    self.episodes.append(
                        {
                            "episode": len(self.episodes),
                            "step": self.steps,
                            "return": st["return"],
                            "cost": st["cost"],
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
                    trajs[i] = Trajectory(swapped=[], rejected=[])
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
    horizon_steps: int | None = None,
    action_filter: ActionFilter | None = None,
) -> dict[str, float]:
    """Deterministic (mean-action) episodes: mean return (FOSP's J_r), mean cost (J_c), failure and success
    rates (a success is the goal reached with nothing broken)."""
    from farl_sim import make_env

    env = make_env(task, horizon_steps=horizon_steps)
    filt = action_filter or NoFilter()
    rets, fails, succ, costs = [], [], [], []
    for e in range(episodes):
        obs, _ = env.reset(seed=seed + e)
        total, cost, success, failed = 0.0, 0.0, False, False
        while True:
            a = policy.act(torch.as_tensor(obs[None], dtype=torch.float32), deterministic=True).numpy()
            a = a.astype(np.float64)
            a = filt.filter(obs[None], a).executed[0]
            obs, r, term, trunc, info = env.step(a)
            total += r
            cost += float(info["cost"])
            success |= info["success"]
            failed |= info["failure"]
            if term or trunc:
                break
        rets.append(total)
        costs.append(cost)
        fails.append(failed)
        succ.append(success and not failed)
    env.close()
    return {
        "return": float(np.mean(rets)),
        "cost": float(np.mean(costs)),
        "failure_rate": float(np.mean(fails)),
        "success_rate": float(np.mean(succ)),
    }
