"""What the online trainer asks of a safety layer: given states and proposed actions, the actions to
execute. The learning package defines the interface and the no-op filter (plain Uni-O4 / PPO);
the shield in farl_safety_shield implements it, so imports point one way."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass
class FilterResult:
    executed: np.ndarray
    """(B, A) actions to execute."""
    risk: np.ndarray
    """(B,) the critic's risk of the proposed actions (NaN where it could not answer)."""
    swapped: np.ndarray
    """(B,) True where the proposed action was replaced."""


class ActionFilter(Protocol):
    name: str

    def filter(self, obs: np.ndarray, proposed: np.ndarray) -> FilterResult: ...


class NoFilter:
    """Executes what the policy proposes: the Uni-O4 baseline."""

    name = "none"

    def filter(self, obs: np.ndarray, proposed: np.ndarray) -> FilterResult:
        n = len(proposed)
        return FilterResult(np.asarray(proposed, dtype=np.float64), np.zeros(n), np.zeros(n, dtype=bool))
