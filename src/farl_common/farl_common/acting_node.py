"""Base of every policy node: answers each state with one action for the same episode and step.

A state it cannot trust (wrong size, NaN) gets no action, so the robot holds still rather than act
on it. Subclasses say how to act, which source and policy version to stamp on the command, and
the label that names the policy in the episode bags (EpisodeEvent.policy).
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np

from farl_common import messages as M
from farl_common import typestore as T
from farl_common.recorder_wait import RecorderWait
from farl_common.runtime.node import Node, Output
from farl_common.shared_inputs import STATE_INPUT


class ActingNode(Node):
    inputs = (STATE_INPUT,)
    outputs = (Output("action_proposed", T.ACTION),)
    source = "policy"
    obs_dim: int
    """State size the policy takes; each subclass sets it (from its checkpoint, or its task's layout)."""

    refused = 0

    def act(self, obs: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    @property
    def policy_version(self) -> int:
        return 0

    @property
    def policy_label(self) -> str:
        raise NotImplementedError

    @cached_property
    def _recorder_wait(self) -> RecorderWait:
        return RecorderWait(self, tuple(o.topic for o in self.outputs))

    def recorder_ready(self, msg: Any) -> bool:
        """Whether the recorder takes this node's actions in the state's episode (`RecorderWait`): until
        then a state gets no answer and the robot sends it again."""
        return self._recorder_wait.ready(int(msg.episode))

    def on_state(self, msg: Any) -> None:
        if not self.recorder_ready(msg):
            return
        try:
            obs = M.finite_vector(M.state_values(msg), self.obs_dim, f"state of episode {msg.episode} step {msg.step}")
        except ValueError as err:
            self.refused += 1
            self.log("error", f"no action: {err}")
            return
        action = np.clip(np.asarray(self.act(obs), dtype=np.float64), -1.0, 1.0)
        self.publish(
            "action_proposed",
            M.make_action(
                self.msgs,
                **M.answering(msg, self.now_ns()),
                values=action,
                source=self.source,
                policy_version=self.policy_version,
                policy=self.policy_label,
            ),
        )
