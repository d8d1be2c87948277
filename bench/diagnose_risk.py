"""Which part of C_H (eq. 10) misses the failures that Q_risk catches: a diagnostic on held-out demos.

    .venv/bin/python bench/diagnose_risk.py --run RUN --held HELDOUT [--horizon 5] [--lookahead 5]

Scores every held-out step the way `farl calibrate-shield` does (positives: the `lookahead` steps
before a failure; negatives: the steps of failure-free task episodes) with five risks, chooses each
one's threshold as calibration does (`calibrate.choose_eps`, at most `--max-false-alarm`), and
prints the share of positives each misses:

- `C_H`: eq. 10 as the shield computes it (latent rollout, the task policy acting after step 0);
- `C_H, demo actions`: the same latent rollout driven by the actions the demo took next, so the task
  policy's part is gone and only the model's dynamics and constraint head remain;
- `constraint head, true states`: sum of gamma^i C(enc(s_{t+i}), a_{t+i}) over the recorded steps,
  so the dynamics' part is gone too and only the constraint head remains;
- `constraint head, now`: C(enc(s_t), a_t) alone (H = 0);
- `Q_risk`: the Recovery RL critic of the same run;
- `C_H + Q_risk at step H + 1`: C_H with the discounted Q_risk of the state the rollout ends in
  added (a tail to the finite sum, not a shield option today).

The windows that run past an episode's end stop there (a failure episode ends at its failure).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch


def _windows(episodes, horizon: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(obs, act, mask) of shape (N, H + 1, ...): each step's next H + 1 recorded steps, mask 0 past the end."""
    obs, act, mask = [], [], []
    for ep in episodes:
        n = len(ep)
        for t in range(n):
            idx = np.minimum(np.arange(t, t + horizon + 1), n - 1)
            obs.append(ep.obs[idx])
            act.append(ep.action[idx])
            mask.append((np.arange(t, t + horizon + 1) < n).astype(np.float32))
    return np.stack(obs), np.stack(act), np.stack(mask)


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Prints the table; returns each risk's missed-failure rate."""

    from farl_common.bags import load_dataset
    from farl_common.shield_settings import ShieldSettings
    from farl_common.torch_threads import use_threads
    from farl_safety_shield.calibrate import choose_eps, positive_start, split_held_out
    from farl_safety_shield.loader import load_critic

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--held", type=Path, required=True)
    ap.add_argument("--horizon", type=int, default=5)
    ap.add_argument("--lookahead", type=int, default=5)
    ap.add_argument("--gamma-risk", type=float, default=ShieldSettings.gamma_risk)
    ap.add_argument("--max-false-alarm", type=float, default=0.05)
    args = ap.parse_args(argv)
    use_threads(1)

    pos_eps, neg_eps = split_held_out(load_dataset(args.held))
    settings = ShieldSettings(critic="world_model", horizon_steps=args.horizon, gamma_risk=args.gamma_risk)
    ch = load_critic(args.run, settings)
    q = load_critic(args.run, ShieldSettings(critic="q_risk"))
    wm, g, h = ch.wm, args.gamma_risk, args.horizon
    disc = torch.tensor([g**i for i in range(h + 1)])

    @torch.inference_mode()
    def scores(episodes, last_only: int | None) -> dict[str, np.ndarray]:
        obs, act, mask = (torch.as_tensor(x) for x in _windows(episodes, h))
        if last_only is not None:  # the positives: the `lookahead` steps before each failure
            keep = np.concatenate([np.arange(len(ep)) >= positive_start(ep, last_only) for ep in episodes])
            obs, act, mask = obs[keep], act[keep], mask[keep]
        now_o, now_a = obs[:, 0], act[:, 0]
        out = {"C_H": ch.risk(now_o, now_a).numpy()}
        z, total = wm.encode(now_o), torch.zeros(len(obs))
        for i in range(h + 1):
            total += disc[i] * mask[:, i] * wm.constraint_prob(z, act[:, i])
            if i < h:
                z = wm.next(z, act[:, i])
        out["C_H, demo actions"] = total.numpy()
        n, k = obs.shape[:2]
        heads = wm.constraint_prob(wm.encode(obs.reshape(n * k, -1)), act.reshape(n * k, -1)).reshape(n, k)
        out["constraint head, true states"] = (heads * mask * disc).sum(1).numpy()
        out["constraint head, now"] = heads[:, 0].numpy()
        out["Q_risk"] = q.risk(now_o, now_a).numpy()
        # C_H with Q_risk at the rollout's end, as TD-MPC2 ends its return with Q: not a shield option
        z, a = wm.encode(now_o), now_a
        for _ in range(h + 1):
            z = wm.next(z, a)
            a = ch.policy(wm.decode(z))[0]
        out["C_H + Q_risk at step H + 1"] = out["C_H"] + g ** (h + 1) * q.risk(wm.decode(z), a).numpy()
        return out

    pos, neg = scores(pos_eps, args.lookahead), scores(neg_eps, None)
    print(f"{args.run}: {len(pos['C_H'])} positive and {len(neg['C_H'])} negative held-out steps, H = {h}")
    print("| risk | false alarms | missed failures |\n|---|---|---|")
    missed = {}
    for name in pos:
        c = choose_eps(pos[name], neg[name], args.max_false_alarm)
        missed[name] = c.missed
        print(f"| {name} | {c.false_alarm:.1%} | {c.missed:.1%} |")
    return missed


if __name__ == "__main__":
    main()
