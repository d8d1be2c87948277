"""The learned policy node: answers each state with the task policy's action and hot-reloads the
checkpoint when the learner announces a new version. A checkpoint that fails to load is reported
and the current policy stays; a state with NaN gets no action (the robot then holds still)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from farl_common.acting_node import ActingNode
from farl_common.runtime.node import entry_point
from farl_common.shared_inputs import POLICY_VERSION_INPUT
from farl_learning.checkpoint import CheckpointError, load, weights_fingerprint
from farl_learning.uni_o4 import policy_from_checkpoint


@dataclass
class PolicyParams:
    checkpoint: str = field(
        default="runs/fragile_push_wall/run/online_policy.pt",
        metadata={"doc": "policy checkpoint; reloaded when a new version is announced"},
    )
    initial_checkpoint: str = field(
        default="runs/fragile_push_wall/run/task_policy.pt",
        metadata={"doc": "used until the learner has written `checkpoint`"},
    )
    deterministic: bool = field(default=False, metadata={"doc": "mean action (evaluation) or sampled (learning)"})
    seed: int = field(default=0, metadata={"doc": "action-noise seed"})


class PolicyNode(ActingNode):
    name = "policy"
    Params = PolicyParams
    inputs = (*ActingNode.inputs, POLICY_VERSION_INPUT)

    def on_start(self) -> None:
        path = self.params.checkpoint
        if not Path(path).exists() and self.params.initial_checkpoint:
            path = self.params.initial_checkpoint
        data = load(path)  # no policy at start: fail loudly, the graph must not run blind
        self.policy = policy_from_checkpoint(data)
        self.label = f"learned:{weights_fingerprint(self.policy)}"
        self.version = int(data.get("version", 0))
        self.obs_dim = int(data["obs_dim"])
        self.gen = torch.Generator().manual_seed(self.params.seed)
        self.reload_errors = 0

    @property
    def policy_version(self) -> int:
        return self.version

    @property
    def policy_label(self) -> str:
        return self.label

    def on_version(self, msg: Any) -> None:
        if int(msg.data) <= self.version:
            return
        try:
            data = load(self.params.checkpoint)
            policy = policy_from_checkpoint(data)
        except (CheckpointError, KeyError, RuntimeError) as err:
            self.reload_errors += 1
            self.log("error", f"keeping policy version {self.version}: {err}")
            return
        self.policy, self.version = policy, int(data.get("version", msg.data))
        self.label = f"learned:{weights_fingerprint(policy)}"
        self.log("info", f"policy version {self.version} loaded")

    def act(self, obs: np.ndarray) -> np.ndarray:
        obs_t = torch.as_tensor(obs[None], dtype=torch.float32)
        action = self.policy.act(obs_t, deterministic=self.params.deterministic, generator=self.gen)
        return action[0].numpy().astype(np.float64)


main = entry_point(PolicyNode)
