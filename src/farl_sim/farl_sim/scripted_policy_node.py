"""A policy node running a scripted policy (task expert, failure driver or recovery mover).

Validation and publishing are `ActingNode`'s: a state it cannot trust gets no action.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from farl_common.acting_node import ActingNode
from farl_common.obs_layout import OBS_DIM
from farl_common.recorder_wait import RecorderWaitParams
from farl_common.runtime.node import entry_point
from farl_sim.experts import failure_driver, recovery_mover, task_expert

SCRIPTS = {"expert": task_expert, "failure": failure_driver, "recovery": recovery_mover}


@dataclass
class ScriptedPolicyParams(RecorderWaitParams):
    task: str = field(default="fragile_push_wall", metadata={"doc": "FailureBench task"})
    script: str = field(default="expert", metadata={"doc": "expert | failure | recovery"})
    action_noise_std: float = field(default=0.0, metadata={"doc": "Gaussian noise added to each action"})
    seed: int = field(default=0, metadata={"doc": "noise seed"})


class ScriptedPolicyNode(ActingNode):
    name = "scripted_policy"
    Params = ScriptedPolicyParams
    source = "scripted"
    obs_dim = OBS_DIM

    def on_start(self) -> None:
        if self.params.script not in SCRIPTS:
            raise ValueError(f"script must be one of {sorted(SCRIPTS)}, got {self.params.script!r}")
        self.policy = SCRIPTS[self.params.script](self.params.task)
        self.rng = np.random.default_rng(self.params.seed)

    @property
    def policy_label(self) -> str:
        return f"scripted:{self.params.task}:{self.params.script}"

    def act(self, obs: np.ndarray) -> np.ndarray:
        action = np.asarray(self.policy(obs), dtype=np.float64)
        if self.params.action_noise_std > 0:
            action = action + self.rng.normal(0.0, self.params.action_noise_std, size=action.shape)
        return action


main = entry_point(ScriptedPolicyNode)
