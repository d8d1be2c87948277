"""The messages of one episode, made in the order a graph publishes them.

Shared by the sim robot node (which publishes them) and the demo generator (which writes them
straight to a bag), so a demo bag and a recorded sim bag look the same to every reader.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from farl_common import messages as M
from farl_common.messages import MessageFactory


class EpisodeMessages:
    def __init__(
        self,
        msgs: MessageFactory,
        *,
        task: str,
        kind: str,
        episode: int,
        seed: int,
        layout: Sequence[tuple[str, int]],
        policy_version: int = 0,
        policy: str = "",
    ) -> None:
        self.msgs = msgs
        self.task, self.kind, self.episode, self.seed = task, kind, episode, seed
        self.layout = list(layout)
        self.policy_version = policy_version
        self.policy = policy
        self.steps = 0
        self.episode_return = 0.0
        self.succeeded = False
        self.failed = False

    def _labels(self) -> dict[str, Any]:
        """What acted in this episode: on its events and on every action it publishes."""
        return {"policy_version": self.policy_version, "policy": self.policy}

    def _event(self, t_ns: int, start: bool, **fields: Any) -> Any:
        where = {"episode": self.episode, "task": self.task, "kind": self.kind, "seed": self.seed}
        return M.make_event(self.msgs, t_ns=t_ns, start=start, **where, **self._labels(), **fields)

    def start(self, t_ns: int) -> Any:
        return self._event(t_ns, True)

    def _at(self, t_ns: int, step: int) -> dict[str, int]:
        return {"t_ns": t_ns, "episode": self.episode, "step": step}

    def state(self, t_ns: int, step: int, values: np.ndarray) -> Any:
        return M.make_state(self.msgs, **self._at(t_ns, step), task=self.task, layout=self.layout, values=values)

    def action(self, t_ns: int, step: int, values: np.ndarray, source: str = "policy") -> Any:
        return M.make_action(self.msgs, **self._at(t_ns, step), values=values, source=source, **self._labels())

    def feedback(
        self, t_ns: int, step: int, reward: float, info: dict[str, Any], terminated: bool, truncated: bool
    ) -> Any:
        failure, success = bool(info.get("failure", False)), bool(info.get("success", False))
        self.steps = step + 1
        self.episode_return += float(reward)
        self.failed |= failure
        self.succeeded |= success
        cost = float(info.get("cost", 0.0))
        flags = {"failure": failure, "success": success, "terminated": terminated, "truncated": truncated}
        return M.make_feedback(self.msgs, **self._at(t_ns, step), reward=reward, cost=cost, **flags)

    @property
    def outcome(self) -> str:
        """failure if anything broke; success if the goal was reached and nothing broke; else timeout."""
        if self.failed:
            return "failure"
        return "success" if self.succeeded else "timeout"

    def end(self, t_ns: int, outcome: str | None = None) -> Any:
        return self._event(
            t_ns,
            False,
            outcome=outcome or self.outcome,
            steps=self.steps,
            episode_return=self.episode_return,
        )
