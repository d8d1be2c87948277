"""FOSP (Cao et al., "Fine-tuning Offline Safe Policy through World Models"), Algorithm 1, top to bottom.

Offline (lines 2-11), per gradient step on a batch of demonstration sequences: the world model by
eq. 1 (`rssm.RSSM.loss`); H-step imagined rollouts of the actor from the posterior states (eq. 6);
TD(lambda) targets from imagined rewards and costs (eq. 8); in-sample expectile values V^r, V^c
(eq. 7); critics Q^r, Q^c on the imagined returns plus the data's one-step targets (eq. 9-11); the
reachability function u (eq. 30); the safe actor by the advantage-weighted closed form with the
augmented-Lagrangian penalty (eq. 16-20); the multipliers (eq. 27).

Online (lines 12-24): the offline actor is frozen and a new one trained; at each step the executed
action is drawn between the two by eq. 21; each episode joins the replay and everything but the
frozen actor keeps training, the new actor with eq. 23's weights on its own imagined actions.

The ablations the paper reports are switches of `FOSPConfig`: `in_sample`, `expansion`,
`reachability` and `penalty`.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from farl_learning import fosp_math as fm
from farl_learning.fosp_data import SequenceBuffer
from farl_learning.nets import LOG_STD_MAX, LOG_STD_MIN, mlp, polyak
from farl_learning.rssm import RSSM, RSSMConfig

CHECKPOINT = "fosp.pt"
RUN_FILE = "fosp_run.json"
"""What `farl pretrain --method fosp` writes last: a run folder without it is unfinished."""


def check_fosp_run(run: str | Path) -> dict[str, Any]:
    """The run's `fosp_run.json` (task, seed, demos, settings); IncompleteRun, in one line, where the
    folder is not a finished FOSP run."""
    from farl_learning.run_manifest import IncompleteRun

    run = Path(run)
    if not (run / RUN_FILE).is_file() or not (run / CHECKPOINT).is_file():
        raise IncompleteRun(
            f"{run}: not a finished FOSP run (no {RUN_FILE} and {CHECKPOINT}); run farl pretrain --method fosp"
        )
    return json.loads((run / RUN_FILE).read_text())


@dataclass
class FOSPConfig:
    """FOSP's settings. Defaults are the paper's Table 4 where it gives one; where farl differs (network
    sizes, budgets for two CPU cores) or the paper is silent, the docstring says so."""

    world_model: RSSMConfig = field(default_factory=RSSMConfig)
    batch_size: int = 16
    """B, sequences per batch (Table 4: 64; 16 on two CPU cores)."""
    batch_length: int = 16
    """T, steps per sequence (Table 4)."""
    horizon: int = 15
    """H, imagined steps (Table 4)."""
    imagine_starts: int = 64
    """Posterior states of each batch that imagination starts from, drawn at random (DreamerV3 starts
    from all B x T; a quarter of them keeps a step within two CPU cores' reach)."""
    wm_lr: float = 3e-4
    """l_wm (Table 4: 1e-4; x3 for a budget of thousands of steps, not a million)."""
    ac_lr: float = 3e-4
    """l_ac, critics and actor (Table 4: 3e-5; x10: at Table 4's rate a few thousand steps leave the
    actor close to where it started)."""
    ref_lr: float = 5e-4
    """l_r, the reachability function (Table 4: 5e-5, x10): faster than the critics and actor, slower
    than the multipliers (Appendix B)."""
    gamma: float = 0.997
    """Discount (Table 4)."""
    lambda_reward: float = 0.95
    lambda_cost: float = 0.95
    kappa: float = 0.8
    """Expectile of eq. 7 (Table 4)."""
    beta1: float = 10.0
    """AWR temperature on the reward advantage (eq. 19, Table 4)."""
    beta2: float = 10.0
    """AWR temperature on the cost advantage (eq. 19, Table 4)."""
    advantage_scale: bool = True
    """Divide each advantage by a running mean of its absolute size before eq. 19/23's temperatures (in the
    spirit of DreamerV3's return normalisation; not in the paper): SafeReach's 0/1 rewards give
    advantages of a few hundredths, which exp(10 A) cannot tell apart, and the actor would clone the
    whole demonstration mix, touches included."""
    max_weight: float = 100.0
    """Cap on each exponential weight of eq. 19 (not in the paper; AWR's usual guard)."""
    gamma_u: float = 0.99
    """REF discount of eq. 30 (Table 4)."""
    pex_inverse_temperature: float = 10.0
    """alpha of eq. 21 (Table 4's 10), used as PEX's inverse temperature (`fosp_math.expansion_probabilities`)."""
    entropy: float = 3e-4
    """eta, the actor's entropy bonus (Table 4)."""
    penalty_growth: float = 5e-9
    """nu, the growth of the penalty multiplier mu per step (Table 4 prints 5^-9, read as 5e-9)."""
    mu0: float = 1e-6
    """Initial penalty multiplier mu^0 (Table 4 prints 1^-6, read as 1e-6)."""
    lambda_p0: float = 0.01
    """Initial Lagrange multiplier lambda_p^0 (Table 4)."""
    hidden: int = 256
    """Actor and critic MLP width (Table 4: 5 layers of 512; here 2 of 256)."""
    layers: int = 2
    slow_critic_tau: float = 0.02
    """Polyak rate of the slow value copies the targets bootstrap from (DreamerV3's; not in the paper)."""
    grad_clip: float = 100.0
    offline_steps: int = 3000
    """N_offline gradient steps (the paper: 1e6 in sim, 5e5 on the robot; sized for two CPU cores)."""
    train_per_episode: int = 40
    """Online gradient steps after each episode (Algorithm 1, lines 16-24)."""
    feasible_threshold: float = 0.05
    """V^c below this counts as feasible (S_f) for the feasible-value ablation."""
    in_sample: bool = True
    """Ablation (i) off: V regresses the imagined lambda-returns (a Dreamer critic), without eq. 7 and eq. 10."""
    expansion: bool = True
    """Ablation (ii) off: fine-tune the offline actor itself online, without eq. 21."""
    reachability: bool = True
    """Ablation (iii) off: u = 0, the actor weighs by the reward advantage and the penalty alone."""
    penalty: Literal["augmented_lagrangian", "feasible_value"] = "augmented_lagrangian"
    """Ablation (iv): feasible_value gates by 1{V^c > feasible_threshold} instead of u and drops Phi."""

    def scaled(self, factor: float) -> FOSPConfig:
        """The same settings with the offline and online gradient budgets multiplied (quick runs)."""
        return replace(
            self,
            offline_steps=max(1, round(self.offline_steps * factor)),
            train_per_episode=max(1, round(self.train_per_episode * factor)),
        )


class Actor(nn.Module):
    """pi(a | s) on the world model's features: a Gaussian with a tanh mean, draws clipped to the box."""

    def __init__(self, feat: int, act_dim: int, hidden: int, layers: int) -> None:
        super().__init__()
        self.net = mlp(feat, 2 * act_dim, hidden, layers, act=nn.SiLU)

    def dist(self, feat: torch.Tensor) -> torch.distributions.Normal:
        mean, log_std = self.net(feat).chunk(2, -1)
        log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (torch.tanh(log_std) + 1)
        return torch.distributions.Normal(torch.tanh(mean), log_std.exp())

    def sample(self, feat: torch.Tensor, deterministic: bool = False, gen: torch.Generator | None = None):
        d = self.dist(feat)
        a = d.mean if deterministic else d.mean + d.stddev * torch.randn(d.mean.shape, generator=gen)
        return a.clamp(-1.0, 1.0)


class Critics(nn.Module):
    """Q^r, Q^c (state-action), V^r, V^c (state) and the reachability function u (state, in [0, 1])."""

    def __init__(self, feat: int, act_dim: int, hidden: int, layers: int) -> None:
        super().__init__()
        self.q = mlp(feat + act_dim, 1, hidden, layers, act=nn.SiLU)
        self.qc = mlp(feat + act_dim, 1, hidden, layers, act=nn.SiLU)
        self.v = mlp(feat, 1, hidden, layers, act=nn.SiLU)
        self.vc = mlp(feat, 1, hidden, layers, act=nn.SiLU)
        self.u = mlp(feat, 1, hidden, layers, act=nn.SiLU)

    def qs(self, feat: torch.Tensor, act: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat([feat, act], -1)
        return self.q(x).squeeze(-1), self.qc(x).squeeze(-1)

    def values(self, feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.v(feat).squeeze(-1), self.vc(feat).squeeze(-1)

    def reach(self, feat: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.u(feat).squeeze(-1))


class FOSPAgent:
    def __init__(self, obs_dim: int, act_dim: int, cfg: FOSPConfig, seed: int = 0) -> None:
        torch.manual_seed(seed)
        self.cfg, self.obs_dim, self.act_dim = cfg, obs_dim, act_dim
        self.gen = torch.Generator().manual_seed(seed)
        self.wm = RSSM(obs_dim, act_dim, cfg.world_model)
        feat = cfg.world_model.feat
        self.actor = Actor(feat, act_dim, cfg.hidden, cfg.layers)
        self.critics = Critics(feat, act_dim, cfg.hidden, cfg.layers)
        self.slow = copy.deepcopy(self.critics).requires_grad_(False)
        self.offline_actor: Actor | None = None  # the frozen pi_psi, once online
        self.lambda_p, self.mu = cfg.lambda_p0, cfg.mu0
        self.steps = {"offline": 0, "online": 0}
        self.adv_scale = {"reward": 1.0, "cost": 1.0}  # running mean |A| (`advantage_scale`)
        self._scale_seen: set[str] = set()
        self.q_max: float | None = None  # eq. 22's normalisers, from the demonstrations (`set_bounds`)
        self.c_max: float | None = None
        self._make_optimisers()

    def _make_optimisers(self) -> None:
        c = self.cfg
        self.wm_opt = torch.optim.Adam(self.wm.parameters(), lr=c.wm_lr, eps=1e-8)
        crit = [p for n, p in self.critics.named_parameters() if not n.startswith("u.")]
        self.critic_opt = torch.optim.Adam(crit, lr=c.ac_lr)
        self.u_opt = torch.optim.Adam(self.critics.u.parameters(), lr=c.ref_lr)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=c.ac_lr)

    def set_bounds(self, buf: SequenceBuffer, horizon_steps: int) -> None:
        """Eq. 22's Q^* and C^*. The paper bounds them by sum_t gamma^t r_max; farl takes the largest
        discounted return and cost of a demonstration where the data has any (a departure): SafeReach's
        reward comes once and ends the episode, so its returns are at most 1 where the paper's bound is
        about 71, and Q / 71 would flatten every choice of eq. 21 to a coin toss."""
        r, c = buf.discounted_maxima(self.cfg.gamma)
        bound = fm.discounted_bound(1.0, self.cfg.gamma, horizon_steps)
        self.q_max = r if r > 1e-6 else bound
        self.c_max = c if c > 1e-6 else bound

    # one gradient step (Algorithm 1, lines 3-11 and 17-24) ----------------------------------------
    def train_step(self, buf: SequenceBuffer) -> dict[str, float]:
        c = self.cfg
        batch = buf.sample(c.batch_size, c.batch_length, self.gen)
        wm_loss, log, post = self.wm.loss(batch, self.gen)  # eq. 1
        self._step(self.wm_opt, wm_loss, self.wm.parameters())
        feat = self.wm.feat(post["h"], post["z"]).detach()  # (B, T, F)

        # eq. 6: imagine H steps of the actor being trained from every posterior state
        actor = self.actor
        h, z = post["h"].detach().flatten(0, 1), post["z"].detach().flatten(0, 1)
        pick = torch.randperm(len(h), generator=self.gen)[: c.imagine_starts]
        h, z = h[pick], z[pick]
        feats, acts = [self.wm.feat(h, z)], []
        with torch.no_grad():
            for _ in range(c.horizon):
                a = actor.sample(feats[-1], gen=self.gen)
                h, z, _ = self.wm.img_step(h, z, a, self.gen)
                acts.append(a)
                feats.append(self.wm.feat(h, z))
            im_feat, im_act = torch.stack(feats), torch.stack(acts)  # (H+1, N, F), (H, N, A)
            nxt = im_feat[1:]
            rew, cost, cont = self.wm.reward(nxt), self.wm.cost(nxt), self.wm.cont(nxt)
            v_next, vc_next = self.slow.values(nxt)
            ret = fm.lambda_returns(rew, v_next, cont, c.gamma, c.lambda_reward)  # eq. 8
            ret_c = fm.lambda_returns(cost, vc_next, cont, c.gamma, c.lambda_cost)

        # the data's own steps: (s_t, a_t) -> r, c, cont on arriving at s_{t+1}, within one episode
        real_s, real_a = feat[:, :-1], batch["action"][:, :-1]
        real_next = feat[:, 1:]
        same = ~batch["first"][:, 1:]
        r1, c1, k1 = batch["reward"][:, 1:], batch["cost"][:, 1:], batch["cont"][:, 1:]

        # eq. 9 (imagined returns) + eq. 10 (one-step targets from the data's rewards) = eq. 11
        q, qc = self.critics.qs(im_feat[:-1], im_act)
        critic_loss = (q - ret).pow(2).mean() + (qc - ret_c).pow(2).mean()
        v_im, vc_im = self.critics.values(im_feat[:-1])
        if c.in_sample:
            with torch.no_grad():
                v_n, vc_n = self.slow.values(real_next)
                y, yc = r1 + c.gamma * k1 * v_n, c1 + c.gamma * k1 * vc_n
                q_im_t, qc_im_t = self.slow.qs(im_feat[:-1], im_act)
                q_re_t, qc_re_t = self.slow.qs(real_s, real_a)
            q_re, qc_re = self.critics.qs(real_s, real_a)
            m = same.float()
            critic_loss = critic_loss + ((q_re - y).pow(2) * m).sum() / m.sum().clamp(min=1)
            critic_loss = critic_loss + ((qc_re - yc).pow(2) * m).sum() / m.sum().clamp(min=1)
            # eq. 7: V^r and V^c as the kappa-expectile of Q over the data's actions and the imagined ones
            v_re, vc_re = self.critics.values(real_s)
            critic_loss = (
                critic_loss + fm.expectile_loss(q_im_t, v_im, c.kappa) + fm.expectile_loss(q_re_t, v_re, c.kappa)
            )
            # cost is minimised: V^c is the kappa-expectile of -Q^c, leaning to the data's least costly actions
            # (the in-sample best, as V^r leans to the most rewarding); eq. 7 is written for the reward side
            critic_loss = critic_loss + fm.expectile_loss(-qc_im_t, -vc_im, c.kappa)
            critic_loss = critic_loss + fm.expectile_loss(-qc_re_t, -vc_re, c.kappa)
        else:
            critic_loss = critic_loss + (v_im - ret).pow(2).mean() + (vc_im - ret_c).pow(2).mean()
        self._step(self.critic_opt, critic_loss, self.critics.parameters())

        # eq. 30: u(s) = max{1[s in S_v], gamma_u u(s')} on imagined and real steps
        with torch.no_grad():
            u_next_im = self.slow.reach(nxt)
            viol_im = self.wm.cost(im_feat[:-1])
            target_im = fm.reachability_target(viol_im, u_next_im * cont, c.gamma_u)
            u_next_re = self.slow.reach(real_next) * same.float()
            target_re = fm.reachability_target(batch["cost"][:, :-1], u_next_re, c.gamma_u)
        u_loss = F.binary_cross_entropy(self.critics.reach(im_feat[:-1]).clamp(1e-6, 1 - 1e-6), target_im)
        u_loss = u_loss + F.binary_cross_entropy(self.critics.reach(real_s).clamp(1e-6, 1 - 1e-6), target_re)
        self._step(self.u_opt, u_loss, self.critics.u.parameters())

        online = self.offline_actor is not None or self.steps["online"] > 0
        actor_loss, phi = self._actor_loss(real_s, real_a, same, im_feat[:-1], online)
        self._step(self.actor_opt, actor_loss, self.actor.parameters())
        polyak(self.slow, self.critics, c.slow_critic_tau)

        # eq. 27 and mu's growth
        with torch.no_grad():
            vc_mean = float(self.critics.values(real_s)[1].mean())
        self.lambda_p = fm.lagrange_multiplier_step(self.lambda_p, self.mu, vc_mean)
        self.mu *= 1.0 + c.penalty_growth
        log.update(
            wm=wm_loss.item(), critic=critic_loss.item(), u=u_loss.item(), actor=actor_loss.item(), phi=phi,
            lambda_p=self.lambda_p, v_cost=vc_mean,
        )  # fmt: skip
        return log

    def _gate(self, feat: torch.Tensor) -> torch.Tensor:
        """The weight of the cost side in eq. 16/19/23: u, or 0 without u, or 1{V^c > threshold}."""
        c = self.cfg
        if c.penalty == "feasible_value":
            return (self.critics.values(feat)[1] > c.feasible_threshold).float()
        if not c.reachability:
            return torch.zeros(feat.shape[:-1])
        return self.critics.reach(feat)

    def _scaled(self, adv: torch.Tensor, which: str) -> torch.Tensor:
        if not self.cfg.advantage_scale:
            return adv
        size = float(adv.abs().mean())
        # the first batch sets the scale, later ones move it slowly
        self.adv_scale[which] = size if which not in self._scale_seen else 0.99 * self.adv_scale[which] + 0.01 * size
        self._scale_seen.add(which)
        return adv / max(self.adv_scale[which], 1e-3)

    def _actor_loss(
        self, real_s: torch.Tensor, real_a: torch.Tensor, same: torch.Tensor, im_s: torch.Tensor, online: bool
    ) -> tuple[torch.Tensor, float]:
        c = self.cfg
        if online:
            # eq. 23 on the new actor's own imagined actions: a policy-gradient weight, no behaviour term
            with torch.no_grad():
                a = self.actor.sample(im_s, gen=self.gen)
                q, qc = self.critics.qs(im_s, a)
                v, vc = self.critics.values(im_s)
                adv_r, adv_c = self._scaled(q - v, "reward"), self._scaled(qc - vc, "cost")
                w = fm.online_actor_weights(adv_r, adv_c, self._gate(im_s), c.beta1, c.beta2)
                w = w / w.abs().mean().clamp(min=1e-6)
            d = self.actor.dist(im_s)
            logp = d.log_prob(a).sum(-1)
            return -(w * logp).mean() - c.entropy * d.entropy().sum(-1).mean(), 0.0
        # eq. 16-20 on the data's own actions (the behaviour policy pi_b is the data)
        with torch.no_grad():
            q, qc = self.critics.qs(real_s, real_a)
            v, vc = self.critics.values(real_s)
            gate = self._gate(real_s)
            phi = (
                torch.zeros_like(vc)
                if c.penalty == "feasible_value"
                else fm.augmented_lagrangian_penalty(vc, self.lambda_p, self.mu)
            )
            # eq. 16's feasible part is A^r - Phi(V^c): Phi shifts the reward advantage state by state
            adv_r, adv_c = self._scaled(q - v - phi, "reward"), self._scaled(qc - vc, "cost")
            w = fm.offline_actor_weights(adv_r, adv_c, gate, c.beta1, c.beta2, c.max_weight)
            w = w * same.float()
        d = self.actor.dist(real_s)
        logp = d.log_prob(real_a.clamp(-0.999, 0.999)).sum(-1)
        loss = -(w * logp + c.entropy * d.entropy().sum(-1)).sum() / same.float().sum().clamp(min=1)
        penalty = float((phi * (1 - gate) * same.float()).sum() / same.float().sum().clamp(min=1))
        # eq. 20's last term, Phi (1 - u), does not depend on the actor's parameters: reported, not descended
        return loss, penalty

    def _step(self, opt: torch.optim.Optimizer, loss: torch.Tensor, params) -> None:
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(params), self.cfg.grad_clip)
        opt.step()

    # online (lines 12-15) --------------------------------------------------------------------------
    def start_online(self) -> None:
        """Line 12: freeze the offline actor and start a new one (with expansion), critics carried over."""
        if self.offline_actor is not None or not self.cfg.expansion:
            return
        self.offline_actor = copy.deepcopy(self.actor).requires_grad_(False)
        feat = self.cfg.world_model.feat
        self.actor = Actor(feat, self.act_dim, self.cfg.hidden, self.cfg.layers)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=self.cfg.ac_lr)

    def policy(self, horizon_steps: int, deterministic: bool = False, seed: int = 0) -> FOSPPolicy:
        return FOSPPolicy(self, horizon_steps, deterministic, seed)

    # checkpoints -------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "config": _plain(asdict(self.cfg)),
            "obs_dim": self.obs_dim,
            "act_dim": self.act_dim,
            "wm": self.wm.state_dict(),
            "actor": self.actor.state_dict(),
            "offline_actor": None if self.offline_actor is None else self.offline_actor.state_dict(),
            "critics": self.critics.state_dict(),
            "slow": self.slow.state_dict(),
            "lambda_p": self.lambda_p,
            "mu": self.mu,
            "adv_scale": dict(self.adv_scale),
            "q_max": self.q_max,
            "c_max": self.c_max,
            "steps": dict(self.steps),
        }

    def save(self, path: str | Path, **extra: Any) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save({**self.state_dict(), "extra": extra}, tmp)
        tmp.replace(path)
        return path

    @property
    def label(self) -> str:
        """The label of the actions this agent plays (`fosp:<fingerprint>` of everything acting uses)."""
        from farl_learning.checkpoint import weights_fingerprint

        parts = {"wm": self.wm, "actor": self.actor, "critics": self.critics}
        if self.offline_actor is not None:
            parts["offline_actor"] = self.offline_actor
        return f"fosp:{weights_fingerprint(nn.ModuleDict(parts))}"

    @classmethod
    def load(cls, path: str | Path) -> tuple[FOSPAgent, dict[str, Any]]:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no FOSP checkpoint here (farl pretrain --method fosp writes one)")
        try:
            sd = torch.load(path, weights_only=True)
        except Exception as err:  # noqa: BLE001 - any unpickling failure is a damaged file to the user
            raise ValueError(f"{path}: not a readable FOSP checkpoint ({err.__class__.__name__}: {err})") from None
        return cls.from_state(sd), dict(sd.get("extra") or {})

    @classmethod
    def from_state(cls, sd: dict[str, Any]) -> FOSPAgent:
        """An agent from `state_dict()`'s keys (a file's, or a PolicyWeights message's)."""
        cfg_d = dict(sd["config"])
        cfg = FOSPConfig(**{**cfg_d, "world_model": RSSMConfig(**cfg_d["world_model"])})
        agent = cls(sd["obs_dim"], sd["act_dim"], cfg)
        agent.wm.load_state_dict(sd["wm"])
        agent.critics.load_state_dict(sd["critics"])
        agent.slow.load_state_dict(sd["slow"])
        if sd["offline_actor"] is not None:
            agent.offline_actor = Actor(cfg.world_model.feat, agent.act_dim, cfg.hidden, cfg.layers)
            agent.offline_actor.load_state_dict(sd["offline_actor"])
            agent.offline_actor.requires_grad_(False)
        agent.actor.load_state_dict(sd["actor"])
        agent.lambda_p, agent.mu, agent.steps = sd["lambda_p"], sd["mu"], dict(sd["steps"])
        agent.q_max, agent.c_max = sd.get("q_max"), sd.get("c_max")
        if sd.get("adv_scale"):
            agent.adv_scale, agent._scale_seen = dict(sd["adv_scale"]), set(sd["adv_scale"])
        agent._make_optimisers()
        return agent


def refuse_image_agent(agent: FOSPAgent, path: str | Path) -> None:
    """The ROS 2 graph's FOSP nodes act and learn on the state: an agent whose world model reads camera
    images is refused in one line (a NodeError), never run without its images."""
    from farl_common.runtime.node import NodeError

    if agent.cfg.world_model.image_size is not None:
        size = agent.cfg.world_model.image_size
        raise NodeError(
            f"{path}: this FOSP agent reads {size}x{size} camera images, and the ROS 2 graph's FOSP policy and "
            "learner act on the state; pre-train the graph's run without --image-size"
        )


def _plain(d: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(d))


class FOSPPolicy:
    """Acting with a FOSP agent in an environment: the world model filters each state in (the policy is
    recurrent), and with expansion each action is drawn between the frozen offline actor's and the new
    actor's by eq. 21 (the likelier one when deterministic)."""

    def __init__(self, agent: FOSPAgent, horizon_steps: int, deterministic: bool = False, seed: int = 0) -> None:
        self.agent, self.deterministic = agent, deterministic
        self.gen = torch.Generator().manual_seed(seed)  # its own: acting never shifts training's draws
        bound = fm.discounted_bound(1.0, agent.cfg.gamma, horizon_steps)
        self.q_max = agent.q_max or bound
        self.c_max = agent.c_max or bound
        self.reset()

    def reset(self) -> None:
        self.h, self.z = self.agent.wm.initial(1)
        self.prev = torch.zeros(1, self.agent.act_dim)
        self.first = True
        self.picked_offline = 0
        self.steps = 0
        self._before: tuple[Any, ...] | None = None

    def undo(self) -> None:
        """Forget the last step, so the same state can be answered again (a state sent twice)."""
        if self._before is not None:
            self.h, self.z, self.prev, self.first, self.steps, gen_state, picked = self._before
            self.gen.set_state(gen_state)
            self.picked_offline = picked
            self._before = None

    @torch.no_grad()
    def __call__(self, obs: np.ndarray, image: np.ndarray | None = None) -> np.ndarray:
        """The action for state `obs`; a world model that reads images also needs the camera `image` seen
        with it (S x S x 3 uint8)."""
        ag = self.agent
        x = torch.as_tensor(np.asarray(obs, np.float32)).reshape(1, -1)
        if not torch.isfinite(x).all():
            raise ValueError("a state with NaN or infinite values: FOSP does not act on it")
        pixels = None
        size = ag.cfg.world_model.image_size
        if size is not None:
            if image is None or np.shape(image) != (size, size, 3) or np.asarray(image).dtype != np.uint8:
                got = "none" if image is None else f"{np.shape(image)} {np.asarray(image).dtype}"
                raise ValueError(f"this FOSP policy reads {size}x{size}x3 uint8 camera images; got {got}")
            pixels = torch.as_tensor(np.ascontiguousarray(np.asarray(image).transpose(2, 0, 1)))[None]
        self._before = (self.h, self.z, self.prev, self.first, self.steps, self.gen.get_state(), self.picked_offline)
        first = torch.tensor([self.first])
        # the latent is drawn as in training even when acting deterministically: the actor and critics
        # never saw the posterior's most likely classes alone, only draws
        self.h, self.z, _, _ = ag.wm.obs_step(self.h, self.z, self.prev, ag.wm.embed(x, pixels), first, self.gen)
        self.first = False
        feat = ag.wm.feat(self.h, self.z)
        a = ag.actor.sample(feat, self.deterministic, self.gen)
        if ag.offline_actor is not None:
            a_off = ag.offline_actor.sample(feat, self.deterministic, self.gen)
            cand = torch.cat([a_off, a])  # (2, A): k = psi, psi'
            q, qc = ag.critics.qs(feat.expand(2, -1), cand)
            p = fm.expansion_probabilities(
                fm.normalised_q(q, qc, self.q_max, self.c_max), ag.cfg.pex_inverse_temperature
            )
            k = int(p.argmax()) if self.deterministic else int(torch.multinomial(p, 1, generator=self.gen))
            a = cand[k : k + 1]
            self.picked_offline += int(k == 0)
        self.prev = a
        self.steps += 1
        return a[0].numpy().astype(np.float64)


# running it -----------------------------------------------------------------------------------------
EnvFactory = Callable[[], Any]


def run_episode(env, policy: FOSPPolicy, seed: int) -> dict[str, Any]:
    """One episode; returns its states, actions, rewards, costs and summary (J_r, J_c, success)."""
    obs, _ = env.reset(seed=seed)
    policy.reset()
    sees = policy.agent.cfg.world_model.image_size is not None  # from images: the env renders each state
    images = [env.render()] if sees else []
    states, actions, rewards, costs = [obs], [], [], []
    terminated = False
    success = failure = False
    while True:
        a = policy(obs, images[-1] if sees else None)
        obs, r, terminated, truncated, info = env.step(a)
        states.append(obs)
        if sees:
            images.append(env.render())
        actions.append(a)
        rewards.append(float(r))
        costs.append(float(info.get("cost", 0.0)))
        success |= bool(info.get("success", False))
        failure |= bool(info.get("failure", False))
        if terminated or truncated:
            break
    return {
        "states": np.array(states),
        "actions": np.array(actions),
        "rewards": np.array(rewards),
        "costs": np.array(costs),
        "images": np.array(images) if sees else None,
        "terminated": bool(terminated),
        "return": float(sum(rewards)),
        "cost": float(sum(costs)),
        "success": success,
        "failure": failure,
        "steps": len(actions),
        "offline_picks": policy.picked_offline,
    }


def evaluate(agent: FOSPAgent, make_env: EnvFactory, episodes: int, seed: int, horizon: int) -> dict[str, float]:
    """Deterministic episodes on `episodes` fixed seeds, in `farl_learning.finetune_rollouts.evaluate`'s
    terms: mean return (FOSP's J_r), mean cost (J_c), failure-episode rate and success rate (the goal
    reached with nothing broken)."""
    env = make_env()
    pol = agent.policy(horizon, deterministic=True)
    try:
        eps = [run_episode(env, pol, seed + k) for k in range(episodes)]
    finally:
        env.close()
    n = max(1, len(eps))
    return {
        "return": sum(e["return"] for e in eps) / n,
        "cost": sum(e["cost"] for e in eps) / n,
        "failure_rate": sum(e["failure"] for e in eps) / n,
        "success_rate": sum(e["success"] and not e["failure"] for e in eps) / n,
    }


def pretrain_offline(
    agent: FOSPAgent, buf: SequenceBuffer, steps: int, progress: Callable[[int, dict[str, float]], None] | None = None
) -> list[dict[str, float]]:
    """Algorithm 1, lines 2-11: `steps` gradient steps on the demonstrations."""
    logs = []
    for k in range(steps):
        log = agent.train_step(buf)
        agent.steps["offline"] += 1
        if progress is not None:
            progress(k, log)
        if k == 0 or k == steps - 1 or (k + 1) % max(1, steps // 10) == 0:
            logs.append({"step": k + 1, **log})
    return logs


def finetune_online(
    agent: FOSPAgent,
    buf: SequenceBuffer,
    make_env: EnvFactory,
    total_steps: int,
    seed: int,
    horizon: int,
    on_episode: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Algorithm 1, lines 12-24, for `total_steps` environment steps. Returns one record per episode with
    its return, cost, the cumulative cost regret rho_c (Appendix D.2) and how often eq. 21 picked the
    frozen offline actor."""
    agent.start_online()
    env = make_env()
    pol = agent.policy(horizon, seed=seed)
    records: list[dict[str, Any]] = []
    done_steps, total_cost, k = 0, 0.0, 0
    t0 = time.perf_counter()
    try:
        while done_steps < total_steps:
            ep = run_episode(env, pol, seed + k)
            k += 1
            buf.add_episode(ep["states"], ep["actions"], ep["rewards"], ep["costs"], ep["terminated"], ep["images"])
            done_steps += ep["steps"]
            agent.steps["online"] += ep["steps"]
            total_cost += ep["cost"]
            for _ in range(agent.cfg.train_per_episode):
                agent.train_step(buf)
            rec = {
                k_: ep[k_] for k_ in ("return", "cost", "success", "failure", "steps", "offline_picks")
            } | {"episode": k - 1, "env_steps": done_steps, "cost_regret": total_cost / done_steps,
                 "wall_s": time.perf_counter() - t0}  # fmt: skip
            records.append(rec)
            if on_episode is not None:
                on_episode(rec)
    finally:
        env.close()
    return records
