"""The learned policy node: answers each state with the task policy's action, and takes each new policy
the learner publishes on `policy_weights` (transient local: a policy node that starts or reconnects
late gets the newest). The weights come over DDS, not from disk, so the node runs on a robot PC that
shares no folder with the learner's machine. Weights that fail to load, or do not match their label or
the graph's state size, are reported and the current policy stays; if the learner goes away the node
keeps acting with the last policy it had. A state with NaN gets no action (the robot then holds still)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from farl_common.acting_node import ActingNode
from farl_common.recorder_wait import RecorderWaitParams
from farl_common.runtime.node import entry_point
from farl_common.shared_inputs import POLICY_WEIGHTS_INPUT
from farl_learning.checkpoint import CheckpointError, load, policy_label
from farl_learning.policy_weights import policy_from_weights
from farl_learning.uni_o4 import policy_from_checkpoint


@dataclass
class PolicyParams(RecorderWaitParams):
    checkpoint: str = field(
        default="runs/fragile_push_wall/run/online_policy.pt",
        metadata={"doc": "policy to start with, where it exists (the learner's, on one machine)"},
    )
    initial_checkpoint: str = field(
        default="runs/fragile_push_wall/run/task_policy.pt",
        metadata={"doc": "policy to start with where `checkpoint` does not exist (the pre-trained one)"},
    )
    deterministic: bool = field(default=False, metadata={"doc": "mean action (evaluation) or sampled (learning)"})
    seed: int = field(default=0, metadata={"doc": "action-noise seed"})


class LearnerFollower(ActingNode):
    """Base of the policy nodes that act with what their learner publishes on `policy_weights`: each
    new policy is taken whenever it is not the one acting now (a restarted learner may start again from
    an earlier version, and it is the learner that says which policy learns); one that cannot be
    trusted is refused in one line and the current one acts on."""

    name = "policy"
    inputs = (*ActingNode.inputs, POLICY_WEIGHTS_INPUT)
    version = 0
    label = ""
    reload_errors = 0

    @property
    def policy_version(self) -> int:
        return self.version

    @property
    def policy_label(self) -> str:
        return self.label

    def take_weights(self, msg: Any) -> None:
        """Act with the message's policy from now on (version and label included); CheckpointError where
        it cannot be trusted."""
        raise NotImplementedError

    def on_weights(self, msg: Any) -> None:
        if (int(msg.version), str(msg.label)) == (self.version, self.label):
            return
        try:
            self.take_weights(msg)
        except CheckpointError as err:
            self.reload_errors += 1
            self.log("error", f"keeping policy version {self.version}: {err}")
            return
        self.log("info", f"policy version {self.version} loaded")


class PolicyNode(LearnerFollower):
    Params = PolicyParams

    def on_start(self) -> None:
        path = self.params.checkpoint
        if not Path(path).exists() and self.params.initial_checkpoint:
            path = self.params.initial_checkpoint
        data = load(path)  # no policy at start: fail loudly, the graph must not run blind
        self.policy = policy_from_checkpoint(data)
        self.label = policy_label(self.policy)
        self.version = int(data.get("version", 0))
        self.obs_dim = int(data["obs_dim"])
        self.gen = torch.Generator().manual_seed(self.params.seed)

    def take_weights(self, msg: Any) -> None:
        self.policy, self.version, self.label = policy_from_weights(msg, self.obs_dim)

    def act(self, obs: np.ndarray) -> np.ndarray:
        obs_t = torch.as_tensor(obs[None], dtype=torch.float32)
        action = self.policy.act(obs_t, deterministic=self.params.deterministic, generator=self.gen)
        return action[0].numpy().astype(np.float64)


main = entry_point(PolicyNode)
