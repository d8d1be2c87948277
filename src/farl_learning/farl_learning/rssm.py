"""FOSP's world model: a recurrent state-space model in the DreamerV3 / SafeDreamer style (FOSP Sec. 3,
eq. 1), with reward, cost and continue heads and an observation decoder::

    h_t = f(h_{t-1}, z_{t-1}, a_{t-1})          deterministic state (GRU)
    z_t ~ q(z_t | h_t, x_t)                     posterior (encoder)
    z^_t ~ p(z_t | h_t)                         prior (dynamics)
    x^_t, r^_t, c^_t, cont^_t  from s_t = (h_t, z_t)

z is a set of categorical latents with straight-through gradients and a 1% uniform mix (DreamerV3).
Its input is the task state (FailureBench's 39 numbers, symlog-squashed) or, with `image_size`, a
camera image (channels first, uint8) beside the state, FOSP's real-robot input, through a small CNN, and
an image decoder that reconstructs it.

Costs, and SafeReach's rewards, are 0/1 events, so their heads are Bernoulli (the exact likelihood
of eq. 1); a dense reward (FailureBench's MetaWorld shaping) is regressed in symlog space instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from farl_learning.nets import mlp
from farl_learning.two_hot import symexp, symlog


@dataclass
class RSSMConfig:
    """World model sizes and loss weights. FOSP's Table 4 values are named where these differ."""

    deter: int = 256
    """Size of the GRU state h."""
    latents: int = 16
    """Number of categorical latents in z (Table 4: 48; fewer, so training fits two CPU cores)."""
    classes: int = 16
    """Classes per latent (Table 4: 48)."""
    hidden: int = 256
    """Width of the MLPs (Table 4: 512 units, 5 layers; here 2 layers)."""
    layers: int = 2
    kl_beta: float = 0.1
    """beta of eq. 1, the representation KL's weight (Table 4)."""
    kl_dynamics: float = 0.5
    """Weight of the dynamics KL (DreamerV3's 0.5; eq. 1 writes it as 1)."""
    free_nats: float = 1.0
    """KL below this many nats is not penalised (DreamerV3's free bits)."""
    unimix: float = 0.01
    binary_reward: bool = True
    """Rewards are 0/1 events (SafeReach): a Bernoulli head; else a symlog regression head."""
    image_size: int | None = None
    """Side of square camera images (FOSP's 64) to encode beside the state; None: state only."""

    @property
    def stoch(self) -> int:
        return self.latents * self.classes

    @property
    def feat(self) -> int:
        return self.deter + self.stoch


class _ImageEncoder(nn.Module):
    def __init__(self, size: int, out: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, 16, 4, 2, 1), nn.SiLU(), nn.Conv2d(16, 32, 4, 2, 1), nn.SiLU(),
            nn.Conv2d(32, 64, 4, 2, 1), nn.SiLU(), nn.Conv2d(64, 64, 4, 2, 1), nn.SiLU(), nn.Flatten(),
        )  # fmt: skip
        self.out = nn.Linear(64 * (size // 16) ** 2, out)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        lead = img.shape[:-3]
        y = self.out(self.net(image_target(img.reshape(-1, *img.shape[-3:]))))
        return y.reshape(*lead, -1)


class _ImageDecoder(nn.Module):
    """The encoder mirrored: s_t -> the image's pixels in [-0.5, 0.5] (DreamerV3's unit-variance Gaussian)."""

    def __init__(self, feat: int, size: int) -> None:
        super().__init__()
        self.side = size // 16
        self.inp = nn.Linear(feat, 64 * self.side**2)
        self.net = nn.Sequential(
            nn.SiLU(), nn.ConvTranspose2d(64, 64, 4, 2, 1), nn.SiLU(), nn.ConvTranspose2d(64, 32, 4, 2, 1),
            nn.SiLU(), nn.ConvTranspose2d(32, 16, 4, 2, 1), nn.SiLU(), nn.ConvTranspose2d(16, 3, 4, 2, 1),
        )  # fmt: skip

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        lead = feat.shape[:-1]
        x = self.inp(feat.reshape(-1, feat.shape[-1])).reshape(-1, 64, self.side, self.side)
        y = self.net(x)
        return y.reshape(*lead, *y.shape[-3:])


def image_target(img: torch.Tensor) -> torch.Tensor:
    """uint8 pixels (..., 3, S, S) as the decoder's target in [-0.5, 0.5]."""
    return img.float() / 255.0 - 0.5


class RSSM(nn.Module):
    def __init__(self, obs_dim: int, act_dim: int, cfg: RSSMConfig) -> None:
        super().__init__()
        self.cfg, self.obs_dim, self.act_dim = cfg, obs_dim, act_dim
        h = cfg.hidden
        self.encoder = mlp(obs_dim, h, h, cfg.layers - 1, act=nn.SiLU)
        self.image_encoder = _ImageEncoder(cfg.image_size, h) if cfg.image_size else None
        self.img_in = nn.Sequential(nn.Linear(cfg.stoch + act_dim, h), nn.LayerNorm(h), nn.SiLU())
        self.gru = nn.GRUCell(h, cfg.deter)
        self.prior_net = mlp(cfg.deter, cfg.stoch, h, 1, act=nn.SiLU)
        self.post_net = mlp(cfg.deter + h * (2 if cfg.image_size else 1), cfg.stoch, h, 1, act=nn.SiLU)
        self.decoder = mlp(cfg.feat, obs_dim, h, cfg.layers, act=nn.SiLU)
        self.image_decoder = _ImageDecoder(cfg.feat, cfg.image_size) if cfg.image_size else None
        self.reward_head = mlp(cfg.feat, 1, h, cfg.layers, act=nn.SiLU)
        self.cost_head = mlp(cfg.feat, 1, h, cfg.layers, act=nn.SiLU)
        self.cont_head = mlp(cfg.feat, 1, h, cfg.layers, act=nn.SiLU)

    # latent states ------------------------------------------------------------------------------
    def initial(self, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.zeros(batch, self.cfg.deter), torch.zeros(batch, self.cfg.stoch)

    def _dist_logits(self, raw: torch.Tensor) -> torch.Tensor:
        logits = raw.reshape(*raw.shape[:-1], self.cfg.latents, self.cfg.classes)
        probs = (1 - self.cfg.unimix) * F.softmax(logits, -1) + self.cfg.unimix / self.cfg.classes
        return probs.log()

    def _sample(
        self, logits: torch.Tensor, deterministic: bool = False, gen: torch.Generator | None = None
    ) -> torch.Tensor:
        probs = logits.exp()
        if deterministic:
            idx = probs.argmax(-1)
        else:
            flat = probs.detach().reshape(-1, self.cfg.classes)
            idx = torch.multinomial(flat, 1, generator=gen).reshape(probs.shape[:-1])
        one_hot = F.one_hot(idx, self.cfg.classes).float()
        z = one_hot + probs - probs.detach()  # straight-through gradient
        return z.reshape(*z.shape[:-2], self.cfg.stoch)

    def embed(self, obs: torch.Tensor, image: torch.Tensor | None = None) -> torch.Tensor:
        e = self.encoder(symlog(obs))
        if self.image_encoder is not None:
            if image is None:
                raise ValueError("this world model reads images: pass image= with the state")
            e = torch.cat([e, self.image_encoder(image)], -1)
        return e

    def img_step(
        self, h: torch.Tensor, z: torch.Tensor, action: torch.Tensor, gen: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One imagined step: h' = f(h, z, a), z' ~ p(z' | h'). Returns h', z' and the prior's logits."""
        h = self.gru(self.img_in(torch.cat([z, action], -1)), h)
        logits = self._dist_logits(self.prior_net(h))
        return h, self._sample(logits, gen=gen), logits

    def obs_step(
        self,
        h: torch.Tensor,
        z: torch.Tensor,
        prev_action: torch.Tensor,
        embed: torch.Tensor,
        first: torch.Tensor,
        gen: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Filter one observation in: the state is zeroed where an episode starts (`first`)."""
        keep = (~first).float().unsqueeze(-1)
        h, z, prev_action = h * keep, z * keep, prev_action * keep
        h = self.gru(self.img_in(torch.cat([z, prev_action], -1)), h)
        prior_logits = self._dist_logits(self.prior_net(h))
        post_logits = self._dist_logits(self.post_net(torch.cat([h, embed], -1)))
        return h, self._sample(post_logits, gen=gen), post_logits, prior_logits

    def observe(
        self,
        obs: torch.Tensor,
        prev_action: torch.Tensor,
        first: torch.Tensor,
        image: torch.Tensor | None = None,
        start: tuple[torch.Tensor, torch.Tensor] | None = None,
        gen: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """Posterior states along (B, T) sequences; returns h, z (B, T, ...) and both KL terms' logits."""
        batch, steps = obs.shape[:2]
        embed = self.embed(obs, image)
        h, z = start if start is not None else self.initial(batch)
        hs, zs, posts, priors = [], [], [], []
        for t in range(steps):
            h, z, post, prior = self.obs_step(h, z, prev_action[:, t], embed[:, t], first[:, t], gen)
            hs.append(h)
            zs.append(z)
            posts.append(post)
            priors.append(prior)
        stack = lambda xs: torch.stack(xs, 1)
        return {"h": stack(hs), "z": stack(zs), "post": stack(posts), "prior": stack(priors)}

    @staticmethod
    def feat(h: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return torch.cat([h, z], -1)

    # heads ---------------------------------------------------------------------------------------
    def reward(self, feat: torch.Tensor) -> torch.Tensor:
        """Expected reward on entering this state."""
        raw = self.reward_head(feat).squeeze(-1)
        return torch.sigmoid(raw) if self.cfg.binary_reward else symexp(raw)

    def cost(self, feat: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.cost_head(feat).squeeze(-1))

    def cont(self, feat: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.cont_head(feat).squeeze(-1))

    # eq. 1 ---------------------------------------------------------------------------------------
    def _kl(self, lhs: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
        return (lhs.exp() * (lhs - rhs)).sum(-1).sum(-1)

    def loss(
        self, batch: dict[str, torch.Tensor], gen: torch.Generator | None = None
    ) -> tuple[torch.Tensor, dict[str, float], dict[str, torch.Tensor]]:
        """Eq. 1 on a batch of sequences (obs, prev_action, reward, cost, cont, first: (B, T, ...)):
        reconstruction, reward, cost and continue likelihoods plus the balanced KL. Returns the loss, its
        parts, and the posterior states for the actor-critic to start from."""
        out = self.observe(batch["obs"], batch["prev_action"], batch["first"], batch.get("image"), gen=gen)
        feat = self.feat(out["h"], out["z"])
        recon = (self.decoder(feat) - symlog(batch["obs"])).pow(2).sum(-1).mean()
        if self.image_decoder is not None:  # eq. 1's reconstruction term for the camera image (FOSP's real input)
            pixels = (self.image_decoder(feat) - image_target(batch["image"])).pow(2).sum((-3, -2, -1)).mean()
            recon = recon + pixels
        bce = F.binary_cross_entropy_with_logits
        raw = self.reward_head(feat).squeeze(-1)
        if self.cfg.binary_reward:
            rew = bce(raw, batch["reward"])
        else:
            rew = (raw - symlog(batch["reward"])).pow(2).mean()
        cost = bce(self.cost_head(feat).squeeze(-1), batch["cost"])
        cont = bce(self.cont_head(feat).squeeze(-1), batch["cont"])
        dyn = self._kl(out["post"].detach(), out["prior"]).clamp(min=self.cfg.free_nats).mean()
        rep = self._kl(out["post"], out["prior"].detach()).clamp(min=self.cfg.free_nats).mean()
        loss = recon + rew + cost + cont + self.cfg.kl_dynamics * dyn + self.cfg.kl_beta * rep
        parts = {
            "recon": recon.item(),
            "reward": rew.item(),
            "cost": cost.item(),
            "cont": cont.item(),
            "kl": dyn.item(),
        }
        return loss, parts, out
