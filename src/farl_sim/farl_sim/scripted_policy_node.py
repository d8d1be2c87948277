"""A policy node running a scripted policy (task expert, failure driver or recovery mover).

It answers each state with one action for the same episode and step. A state it cannot trust
(wrong size, NaN) gets no action, so the robot holds still rather than act on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from farl_common import messages as M
from farl_common import typestore as T
from farl_common.runtime.node import Input, Node, Output
from farl_sim.experts import failure_driver, recovery_mover, task_expert
from farl_sim.failure_env import OBS_DIM

SCRIPTS = {"expert": task_expert, "failure": failure_driver, "recovery": recovery_mover}


@dataclass
class ScriptedPolicyParams:
    task: str = field(default="fragile_push_wall", metadata={"doc": "FailureBench task"})
    script: str = field(default="expert", metadata={"doc": "expert | failure | recovery"})
    action_noise_std: float = field(default=0.0, metadata={"doc": "Gaussian noise added to each action"})
    seed: int = field(default=0, metadata={"doc": "noise seed"})


class ScriptedPolicyNode(Node):
    name = "scripted_policy"
    Params = ScriptedPolicyParams
    inputs = (Input("state", T.STATE, "on_state"),)
    outputs = (Output("action_proposed", T.ACTION),)

    def on_start(self) -> None:
        if self.params.script not in SCRIPTS:
            raise ValueError(f"script must be one of {sorted(SCRIPTS)}, got {self.params.script!r}")
        self.policy = SCRIPTS[self.params.script](self.params.task)
        self.rng = np.random.default_rng(self.params.seed)
        self.refused = 0

    def on_state(self, msg: Any) -> None:
        try:
            obs = M.finite_vector(M.state_values(msg), OBS_DIM, f"state of episode {msg.episode} step {msg.step}")
        except ValueError as err:
            self.refused += 1
            self.log("error", f"no action: {err}")
            return
        action = np.asarray(self.policy(obs), dtype=np.float64)
        if self.params.action_noise_std > 0:
            action = action + self.rng.normal(0.0, self.params.action_noise_std, size=action.shape)
        action = np.clip(action, -1.0, 1.0)
        self.publish(
            "action_proposed",
            M.make_action(
                self.msgs,
                t_ns=self.now_ns(),
                episode=int(msg.episode),
                step=int(msg.step),
                values=action,
                source="scripted",
            ),
        )


def main(args: list[str] | None = None) -> int:
    from farl_common.runtime.rclpy_host import run_node

    return run_node(ScriptedPolicyNode, args)
