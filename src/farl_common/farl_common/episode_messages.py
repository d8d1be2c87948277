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

    def _event(self, t_ns: int, start: bool, **fields: Any) -> Any:
        return M.make_event(
            self.msgs,
            t_ns=t_ns,
            start=start,
            episode=self.episode,
            task=self.task,
            kind=self.kind,
            policy_version=self.policy_version,
            seed=self.seed,
            **fields,
        )

    def start(self, t_ns: int) -> Any:
        return self._event(t_ns, True)

    def state(self, t_ns: int, step: int, values: np.ndarray) -> Any:
        return M.make_state(
            self.msgs, t_ns=t_ns, task=self.task, episode=self.episode, step=step, layout=self.layout, values=values
        )

    def action(self, t_ns: int, step: int, values: np.ndarray, source: str = "policy") -> Any:
        return M.make_action(
            self.msgs,
            t_ns=t_ns,
            episode=self.episode,
            step=step,
            values=values,
            source=source,
            policy_version=self.policy_version,
            policy=self.policy,
        )

    def feedback(
        self, t_ns: int, step: int, reward: float, info: dict[str, Any], terminated: bool, truncated: bool
    ) -> Any:
        self.steps = step + 1
        self.episode_return += float(reward)
        self.failed |= bool(info.get("failure", False))
        self.succeeded |= bool(info.get("success", False))
        return M.make_feedback(
            self.msgs,
            t_ns=t_ns,
            episode=self.episode,
            step=step,
            reward=reward,
            cost=float(info.get("cost", 0.0)),
            failure=bool(info.get("failure", False)),
            success=bool(info.get("success", False)),
            terminated=terminated,
            truncated=truncated,
        )

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
            policy=self.policy,
            steps=self.steps,
            episode_return=self.episode_return,
        )
