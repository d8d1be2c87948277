"""Choosing eps_safe from held-out data (`farl calibrate-shield`).

Positives are the steps of failure episodes that lie within `lookahead` steps of the failure: the
shield should flag them. Negatives are the steps of task episodes that ended without a failure:
flagging them is a false alarm. For each candidate eps_safe the shield's false-alarm rate
P(C_H > eps | negative) and missed-failure rate P(C_H <= eps | positive) follow; the chosen eps is
the one that misses fewest failures while keeping false alarms at or below `max_false_alarm`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from farl_common.bags import Dataset


@dataclass
class Calibration:
    eps_safe: float
    false_alarm: float
    missed: float
    positives: int
    negatives: int
    table: list[tuple[float, float, float]]
    """(eps, false alarm rate, missed-failure rate) over the candidates."""


def risks(critic, obs: np.ndarray, act: np.ndarray, batch: int = 4096) -> np.ndarray:
    out = []
    for s in range(0, len(obs), batch):
        out.append(critic.risk(torch.as_tensor(obs[s : s + batch]), torch.as_tensor(act[s : s + batch])).numpy())
    return np.concatenate(out) if out else np.zeros(0)


def calibrate(critic, data: Dataset, lookahead: int, max_false_alarm: float) -> Calibration:
    pos_obs, pos_act, neg_obs, neg_act = [], [], [], []
    for ep in data.episodes:
        if ep.failed:
            k = max(0, len(ep) - lookahead)
            pos_obs.append(ep.obs[k:])
            pos_act.append(ep.action[k:])
        elif ep.kind == "task":
            neg_obs.append(ep.obs)
            neg_act.append(ep.action)
    if not pos_obs or not neg_obs:
        raise ValueError("calibration needs held-out failure episodes and failure-free task episodes")
    pos = risks(critic, np.concatenate(pos_obs), np.concatenate(pos_act))
    neg = risks(critic, np.concatenate(neg_obs), np.concatenate(neg_act))
    return choose_eps(pos, neg, max_false_alarm)


def choose_eps(pos: np.ndarray, neg: np.ndarray, max_false_alarm: float) -> Calibration:
    """The threshold on these risks that misses fewest positives with at most `max_false_alarm` of the
    negatives above it (the fewest false alarms there are, if no threshold keeps to it)."""
    candidates = np.unique(np.concatenate([np.quantile(neg, np.linspace(0.5, 1.0, 51)), np.linspace(0.0, 1.0, 41)]))
    table = [(float(e), float(np.mean(neg > e)), float(np.mean(pos <= e))) for e in candidates]
    ok = [t for t in table if t[1] <= max_false_alarm] or [min(table, key=lambda t: t[1])]
    best = min(ok, key=lambda t: (t[2], t[1]))
    return Calibration(best[0], best[1], best[2], len(pos), len(neg), table)
