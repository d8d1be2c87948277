"""The FOSP policy node (`policy.kind: fosp`): answers each state with FOSP's action. The policy is
recurrent: the world model filters each state in, so the node keeps its latent state through an
episode and starts afresh at each new one; a state sent twice (the robot repeats one it got no
usable answer to) is answered again from the same latent state, not filtered in twice. With policy
expansion each action is drawn between the frozen offline actor's and the new actor's (eq. 21).

It takes each new agent the FOSP learner publishes on `policy_weights`; weights that do not load, or
do not match their label or the graph's state size, are reported and the current agent stays. A state
with NaN gets no action (the robot then holds still)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from farl_common.recorder_wait import RecorderWaitParams
from farl_common.runtime.node import NodeError, entry_point
from farl_learning.fosp import FOSPAgent, refuse_image_agent
from farl_learning.fosp_weights import fosp_from_weights
from farl_learning.policy_node import LearnerFollower


@dataclass
class FOSPPolicyParams(RecorderWaitParams):
    checkpoint: str = field(
        default="runs/safe_reach/fosp/online_fosp.pt",
        metadata={"doc": "agent to start with, where it exists (the FOSP learner's, on one machine)"},
    )
    initial_checkpoint: str = field(
        default="runs/safe_reach/fosp/fosp.pt",
        metadata={"doc": "agent to start with where `checkpoint` does not exist (farl pretrain --method fosp)"},
    )
    horizon_steps: int = field(default=80, metadata={"doc": "episode length (eq. 22's bound where the run has none)"})
    deterministic: bool = field(default=False, metadata={"doc": "mean actions and likelier choice (evaluation)"})
    seed: int = field(default=0, metadata={"doc": "seed of the latent draws, action noise and eq. 21's choice"})


class FOSPPolicyNode(LearnerFollower):
    Params = FOSPPolicyParams

    def on_start(self) -> None:
        p = self.params
        path = p.checkpoint if Path(p.checkpoint).exists() else p.initial_checkpoint
        try:
            agent, extra = FOSPAgent.load(path)
        except (FileNotFoundError, ValueError) as err:
            raise NodeError(str(err)) from None  # no agent at start: the graph must not run blind
        refuse_image_agent(agent, path)
        self.version = int(extra.get("version", 0))
        self._use(agent)
        self._last: tuple[int, int] | None = None

    def _use(self, agent: FOSPAgent) -> None:
        self.agent = agent
        self.label = agent.label
        self.obs_dim = agent.obs_dim
        self.policy = agent.policy(self.params.horizon_steps, self.params.deterministic, self.params.seed)

    def take_weights(self, msg: Any) -> None:
        agent, self.version, _ = fosp_from_weights(msg, self.obs_dim)
        self._use(agent)  # the next state starts a fresh latent state with it
        self._last = None

    def on_state(self, msg: Any) -> None:
        if not self.recorder_ready(msg):  # before the latent state moves: the state comes again
            return
        key = (int(msg.episode), int(msg.step))
        if self._last is not None and key == self._last:
            self.policy.undo()
        elif self._last is None or key[0] != self._last[0] or key[1] == 0:
            self.policy.reset()
        self._last = key
        super().on_state(msg)

    def act(self, obs: np.ndarray) -> np.ndarray:
        return self.policy(obs)


main = entry_point(FOSPPolicyNode)
