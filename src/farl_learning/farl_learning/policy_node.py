"""The learned policy node: answers each state with the task policy's action and hot-reloads the
checkpoint when the learner announces a new version. A checkpoint that fails to load is reported
and the current policy stays; a state with NaN gets no action (the robot then holds still)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from farl_common import messages as M
from farl_common import typestore as T
from farl_common.runtime.node import Input, Node, Output
from farl_learning.checkpoint import CheckpointError, load
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


class PolicyNode(Node):
    name = "policy"
    Params = PolicyParams
    inputs = (
        Input("state", T.STATE, "on_state"),
        Input("policy_version", "std_msgs/msg/UInt32", "on_version", qos="events"),
    )
    outputs = (Output("action_proposed", T.ACTION),)

    def on_start(self) -> None:
        path = self.params.checkpoint
        if not Path(path).exists() and self.params.initial_checkpoint:
            path = self.params.initial_checkpoint
        data = load(path)  # no policy at start: fail loudly, the graph must not run blind
        self.policy = policy_from_checkpoint(data)
        self.version = int(data.get("version", 0))
        self.obs_dim = int(data["obs_dim"])
        self.gen = torch.Generator().manual_seed(self.params.seed)
        self.refused = 0
        self.reload_errors = 0

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
        self.log("info", f"policy version {self.version} loaded")

    def on_state(self, msg: Any) -> None:
        try:
            obs = M.finite_vector(M.state_values(msg), self.obs_dim, f"state of step {msg.step}")
        except ValueError as err:
            self.refused += 1
            self.log("error", f"no action: {err}")
            return
        with torch.no_grad():
            mean, log_std = self.policy(torch.as_tensor(obs[None], dtype=torch.float32))
            a = (
                mean
                if self.params.deterministic
                else mean + log_std.exp() * torch.randn(mean.shape, generator=self.gen)
            )
        action = np.clip(a[0].numpy().astype(np.float64), -1.0, 1.0)
        self.publish(
            "action_proposed",
            M.make_action(
                self.msgs,
                t_ns=self.now_ns(),
                episode=int(msg.episode),
                step=int(msg.step),
                values=action,
                policy_version=self.version,
            ),
        )


def main(args: list[str] | None = None) -> int:
    from farl_common.runtime.rclpy_host import run_node

    return run_node(PolicyNode, args)
