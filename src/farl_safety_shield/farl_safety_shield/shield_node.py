"""The safety shield node (paper eq. 10-11): for each proposed action, the risk C_H from the critic;
the proposal goes to the robot if C_H <= eps_safe, the recovery action if not. Every decision is
published (and so recorded). A critic that cannot be loaded or answers NaN makes every step risky;
without a recovery policy, or for a state it cannot trust, the shield sends nothing and the robot
holds still.

State and proposal arrive on two topics, which DDS does not order with respect to each other: the
shield joins them by (episode, step), whichever comes first, and decides once both are there.
Anything older than a decided step can no longer be executed and is let go.

With `imagined_path` the world-model critic's look-ahead behind each decision goes out too, as a
`visualization_msgs/MarkerArray` (`farl_safety_shield.markers`): the hand's imagined path coloured by
risk, and C_H against eps_safe, for RViz2, Foxglove and `farl sim --view`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from farl_common import messages as M
from farl_common import typestore as T
from farl_common.config import ShieldSection
from farl_common.obs_layout import HAND
from farl_common.recorder_wait import RecorderWait, RecorderWaitParams
from farl_common.runtime.node import Input, Node, Output, entry_point
from farl_common.shared_inputs import POLICY_WEIGHTS_INPUT, STATE_INPUT
from farl_learning.checkpoint import CheckpointError, load
from farl_learning.policy_weights import policy_from_weights
from farl_learning.uni_o4 import policy_from_checkpoint
from farl_safety_shield.markers import MARKER_ARRAY, imagined_path_markers
from farl_safety_shield.recovery import PolicyRecovery
from farl_safety_shield.shield import Shield, UntrustedState


@dataclass
class ShieldParams(ShieldSection, RecorderWaitParams):
    """The `shield:` config section's settings (critic, recovery, eps_safe, H, gamma_risk), and the run
    and policy they apply to."""

    run_dir: str = field(default="runs/fragile_push_wall/run", metadata={"doc": "farl pretrain output"})
    policy_checkpoint: str = field(
        default="",
        metadata={
            "doc": "task policy the world-model critic rolls out (eq. 10): the learner's checkpoint, where it "
            "exists, then each policy the learner publishes (policy_weights); empty: the run's pre-trained "
            "task_policy.pt, which never changes"
        },
    )
    imagined_path: bool = field(
        default=True,
        metadata={
            "doc": "publish the world-model critic's imagined hand path and risk on each decision "
            "(visualization_msgs/MarkerArray, one more H-step rollout per decision)"
        },
    )


_WAITING = 16
"""States or proposals kept while their other half is on its way (a few steps' worth)."""


class _NoCritic:
    """Stands in when the critic cannot be loaded: every question is answered with an error."""

    name = "unavailable"
    follows_policy = False

    def __init__(self, why: str) -> None:
        self.why = why

    def risk(self, obs, action):
        raise RuntimeError(self.why)


class ShieldNode(Node):
    name = "safety_shield"
    Params = ShieldParams
    inputs = (STATE_INPUT, Input("action_proposed", T.ACTION, "on_proposal"), POLICY_WEIGHTS_INPUT)
    outputs = (
        Output("action_executed", T.ACTION),
        Output("shield_decision", T.DECISION),
        Output("shield_markers", MARKER_ARRAY),
    )

    def on_start(self) -> None:
        from farl_safety_shield.loader import load_shield

        p = self.params
        self.states: dict[tuple[int, int], np.ndarray] = {}
        self.proposals: dict[tuple[int, int], Any] = {}
        """States and proposals waiting for their other half, by (episode, step)."""
        self.unmatched = 0
        self.version: int | None = None
        self.label = ""
        self.swaps_by_episode: dict[int, int] = {}
        self.decisions = 0
        self.held = 0
        self.recorder = RecorderWait(self, ("action_executed", "shield_decision"))
        self.warned_frozen = False
        try:
            self.shield: Shield | None = load_shield(
                p.run_dir, p.settings(source="node"), task_policy=self._load_policy()
            )
            if self.shield.critic.follows_policy:
                follows = (
                    f"{p.policy_checkpoint}, following the learner's versions"
                    if p.policy_checkpoint
                    else f"the pre-trained {self._policy_path()}, frozen (no policy_checkpoint given)"
                )
                self.log("info", f"critic {self.shield.critic.name} rolls out {follows}")
            return
        except (CheckpointError, ValueError, KeyError) as err:
            self.log("error", f"shield degraded: {err}")
        try:  # without the critic, still recover on every step if the recovery policy is there
            rec = policy_from_checkpoint(load(f"{p.run_dir}/recovery_policy.pt", "recovery_policy"))
            self.shield = Shield(_NoCritic("critic not loaded"), PolicyRecovery(rec), p.eps_safe)
            self.log("error", "no risk critic: every step is treated as risky and the recovery policy acts")
        except (CheckpointError, KeyError) as err:
            self.shield = None
            self.log("error", f"no recovery policy either ({err}): no action will be sent; the robot holds still")

    def _policy_path(self) -> str:
        """The learner's checkpoint once it exists; until then (the learner writes it at its start,
        which may come after this node's) the pre-trained policy, which is what it starts from."""
        p = self.params.policy_checkpoint
        return p if p and Path(p).exists() else f"{self.params.run_dir}/task_policy.pt"

    def _load_policy(self):
        try:
            return policy_from_checkpoint(load(self._policy_path()))
        except (CheckpointError, KeyError) as err:
            self.log("error", f"task policy for the critic not loaded: {err}")
            return None

    def on_weights(self, msg: Any) -> None:
        """The critic rolls out the current task policy (eq. 10): follow the learner's, as the policy
        node does, from the weights it publishes (no shared disk needed)."""
        if self.shield is None or not self.shield.critic.follows_policy:
            return
        version, label = int(msg.version), str(msg.label)
        if (version, label) == (self.version, self.label):
            return
        self.version, self.label = version, label
        if not self.params.policy_checkpoint:
            if not self.warned_frozen:
                self.warned_frozen = True
                self.log(
                    "warning",
                    f"policy version {version} published, but no policy_checkpoint is set: the critic keeps "
                    "rolling out the pre-trained task policy",
                )
            return
        try:
            policy, _, _ = policy_from_weights(msg)
        except CheckpointError as err:
            self.log("error", f"the critic keeps rolling out the policy it had: {err}")
            return
        self.shield.critic.set_policy(policy)

    def on_state(self, msg: Any) -> None:
        key = (int(msg.episode), int(msg.step))
        obs = np.asarray(M.state_values(msg), dtype=np.float64)
        if key in self.proposals:
            self._decide(self.proposals.pop(key), obs)
        else:
            self.states[key] = obs
            self._forget(self.states, _WAITING)

    def on_proposal(self, msg: Any) -> None:
        key = (int(msg.episode), int(msg.step))
        if key in self.states:
            self._decide(msg, self.states.pop(key))
        else:
            self.proposals[key] = msg
            self._forget(self.proposals, _WAITING)

    def _forget(self, waiting: dict[tuple[int, int], Any], keep: int, before: tuple[int, int] | None = None) -> None:
        """Let go of every entry older than `before`, and of the oldest beyond `keep`.

        The robot sends a step's state only once the step before it has been executed, so an entry
        older than a step being decided belongs to a step already answered: the second answer to a
        state the robot sent again while the graph started, say. Only entries piling up beyond `keep`
        (proposals whose states do not arrive at all) are worth a warning."""
        for key in sorted(waiting):
            if before is not None and key < before:
                del waiting[key]
                continue
            if len(waiting) <= keep:
                break
            del waiting[key]
            if waiting is self.proposals:
                self.unmatched += 1
                self.log("warning", f"proposal for episode {key[0]} step {key[1]} never met its state: dropped")

    def _decide(self, msg: Any, obs: np.ndarray) -> None:
        if not self.recorder.ready(int(msg.episode)):
            return  # the robot sends the state again, and the policy answers it again
        key = (int(msg.episode), int(msg.step))
        self._forget(self.states, _WAITING, key)
        self._forget(self.proposals, _WAITING, key)
        proposed = np.asarray(M.action_values(msg), dtype=np.float64)
        t = self.now_ns()
        if self.shield is None:
            self.held += 1
            self._decision(msg, t, proposed, proposed * np.nan, float("nan"), True)
            return
        try:
            res = self.shield.filter(obs[None], proposed[None])
        except UntrustedState as err:
            self.held += 1
            self.log("error", f"no action: {err}")
            self._decision(msg, t, proposed, proposed * np.nan, float("nan"), True)
            return
        executed, risk, swapped = res.executed[0], float(res.risk[0]), bool(res.swapped[0])
        self.decisions += 1
        ep = int(msg.episode)
        self.swaps_by_episode[ep] = self.swaps_by_episode.get(ep, 0) + int(swapped)
        self.publish(
            "action_executed",
            M.make_action(
                self.msgs,
                **M.answering(msg, t),
                values=executed,
                source="recovery" if swapped else "policy",
                policy_version=int(msg.policy_version),
                policy=str(msg.policy),
            ),
        )
        self._decision(msg, t, proposed, executed, risk, swapped)
        if self.params.imagined_path and hasattr(self.shield.critic, "imagine") and np.isfinite(risk):
            self._imagined(t, obs, proposed, risk, swapped)

    def _imagined(self, t: int, obs: np.ndarray, proposed: np.ndarray, risk: float, swapped: bool) -> None:
        try:
            states, terms = self.shield.critic.imagine(
                torch.as_tensor(obs[None], dtype=torch.float32), torch.as_tensor(proposed[None], dtype=torch.float32)
            )
        except Exception as err:  # noqa: BLE001 - a picture is not worth the control loop
            self.log("warning", f"no imagined path: {err}")
            return
        hands = states[0, :, HAND].numpy().astype(np.float64)
        markers = imagined_path_markers(
            self.msgs, t, hands, terms[0].numpy().astype(np.float64), risk, self.shield.eps_safe, swapped
        )
        self.publish("shield_markers", markers)

    def _decision(self, msg: Any, t: int, proposed, executed, risk: float, swapped: bool) -> None:
        critic = self.shield.critic.name if self.shield is not None else "unavailable"
        self.publish(
            "shield_decision",
            M.make_decision(
                self.msgs,
                **M.answering(msg, t),
                proposed=proposed,
                executed=executed,
                risk=risk,
                eps_safe=self.params.eps_safe,
                swapped=swapped,
                critic=critic,
            ),
        )


main = entry_point(ShieldNode)
