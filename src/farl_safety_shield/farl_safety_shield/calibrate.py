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


def split_held_out(data: Dataset) -> tuple[list, list]:
    """The held-out episodes that failed (their last steps are the positives) and the task episodes
    that did not (all their steps are negatives); recovery demos are neither."""
    failed = [ep for ep in data.episodes if ep.failed]
    safe = [ep for ep in data.episodes if not ep.failed and ep.kind == "task"]
    if not failed or not safe:
        raise ValueError("calibration needs held-out failure episodes and failure-free task episodes")
    return failed, safe


def positive_start(ep, lookahead: int) -> int:
    """First of the steps of a failed episode the shield should flag: the `lookahead` before the failure."""
    return max(0, len(ep) - lookahead)


def calibrate(critic, data: Dataset, lookahead: int, max_false_alarm: float) -> Calibration:
    failed, safe = split_held_out(data)
    pos = risks(
        critic,
        np.concatenate([ep.obs[positive_start(ep, lookahead) :] for ep in failed]),
        np.concatenate([ep.action[positive_start(ep, lookahead) :] for ep in failed]),
    )
    neg = risks(critic, np.concatenate([ep.obs for ep in safe]), np.concatenate([ep.action for ep in safe]))
    return choose_eps(pos, neg, max_false_alarm)


def choose_eps(pos: np.ndarray, neg: np.ndarray, max_false_alarm: float) -> Calibration:
    """The threshold on these risks that misses fewest positives with at most `max_false_alarm` of the
    negatives above it (the fewest false alarms there are, if no threshold keeps to it)."""
    candidates = np.unique(np.concatenate([np.quantile(neg, np.linspace(0.5, 1.0, 51)), np.linspace(0.0, 1.0, 41)]))
    table = [(float(e), float(np.mean(neg > e)), float(np.mean(pos <= e))) for e in candidates]
    ok = [t for t in table if t[1] <= max_false_alarm] or [min(table, key=lambda t: t[1])]
    best = min(ok, key=lambda t: (t[2], t[1]))
    return Calibration(best[0], best[1], best[2], len(pos), len(neg), table)
