"""The sim robot node: a FailureBench task in MuJoCo behind the same topics as the real arm.

Each control tick it executes the action that answers the latest state (same episode and step),
after the hard envelope; then it publishes the step's reward and cost and the next state. An
action for another step, a malformed or non-finite one is refused; with no acceptable action for
`stale_timeout_s` the arm holds still and says so. Episodes follow one another with seeds
`seed`, `seed + 1`, ...; after `episodes` of them (0 = forever) the node asks the runtime to stop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from farl_common import messages as M
from farl_common import typestore as T
from farl_common.episode_messages import EpisodeMessages
from farl_common.runtime.node import Input, Node, Output, Timer
from farl_robot.envelope import HardEnvelope, UnsafeCommand


@dataclass
class SimRobotParams:
    task: str = field(default="fragile_push_wall", metadata={"doc": "FailureBench task"})
    rate_hz: float = field(default=5.0, metadata={"doc": "control rate"})
    horizon_steps: int = field(default=200, metadata={"doc": "steps per episode"})
    episodes: int = field(default=1, metadata={"doc": "episodes to run; 0 runs until stopped"})
    seed: int = field(default=0, metadata={"doc": "seed of the first episode"})
    kind: str = field(default="online", metadata={"doc": "episode kind written to the events"})
    stale_timeout_s: float = field(default=1.0, metadata={"doc": "hold still after this long without an action"})
    max_step_m: float = field(default=0.01, metadata={"doc": "largest hand step per tick"})
    workspace_min_m: list[float] = field(default_factory=lambda: [-0.5, 0.40, 0.05])
    workspace_max_m: list[float] = field(default_factory=lambda: [0.5, 1.0, 0.5])


class SimRobotNode(Node):
    name = "sim_robot"
    Params = SimRobotParams
    inputs = (Input("action_executed", T.ACTION, "on_action"),)
    outputs = (
        Output("state", T.STATE),
        Output("step_feedback", T.FEEDBACK),
        Output("episode_event", T.EVENT, qos="events"),
    )
    timers = (Timer("on_tick", "rate_hz"),)

    def on_start(self) -> None:
        from farl_sim.failure_env import OBS_LAYOUT, FailureBenchEnv

        p = self.params
        self.layout = OBS_LAYOUT
        self.env = FailureBenchEnv(p.task, horizon_steps=p.horizon_steps)
        self.envelope = HardEnvelope(p.workspace_min_m, p.workspace_max_m, p.max_step_m)
        self.episode = -1
        self.rec: EpisodeMessages | None = None
        self.obs: np.ndarray | None = None
        self.step = 0
        self.pending: np.ndarray | None = None
        self.policy_version = 0
        self.state_sent_ns = 0
        self.stale_warned = False
        self.refused = 0
        self.held_ticks = 0
        self.finished: list[dict[str, Any]] = []

    # inputs -------------------------------------------------------------------------------------
    def on_action(self, msg: Any) -> None:
        if self.rec is None:
            return  # between episodes: the policy answering the final state of the last one
        if int(msg.episode) != self.episode or int(msg.step) != self.step:
            self.refused += 1
            self.log(
                "warning",
                f"refused action for episode {msg.episode} step {msg.step}: "
                f"waiting for episode {self.episode} step {self.step}",
            )
            return
        try:
            self.pending = M.finite_vector(M.action_values(msg), 4, "action")
        except ValueError as err:
            self.refused += 1
            self.log("error", f"refused action: {err}")
            return
        self.policy_version = int(msg.policy_version)

    def on_tick(self) -> None:
        if self.rec is None:
            if self.params.episodes and self.episode + 1 >= self.params.episodes:
                self.ctx.request_shutdown()
                return
            self._start_episode()
            return
        if self.pending is None:
            waited_s = (self.now_ns() - self.state_sent_ns) / 1e9
            if waited_s >= self.params.stale_timeout_s:
                self.held_ticks += 1
                if not self.stale_warned:
                    self.log("warning", f"no valid action for {waited_s:.2f} s: holding still")
                    self.stale_warned = True
            return
        assert self.obs is not None
        try:
            action = self.envelope.filter(self.obs[0:3], self.pending)
        except UnsafeCommand as err:
            self.pending = None
            self.refused += 1
            self.log("error", f"envelope refused action: {err}")
            return
        self.pending = None
        obs, reward, terminated, truncated, info = self.env.step(action)
        t = self.now_ns()
        self.publish("step_feedback", self.rec.feedback(t, self.step, reward, info, terminated, truncated))
        self.step += 1
        self._send_state(obs)
        if terminated or truncated:
            self.rec.policy_version = self.policy_version
            self.publish("episode_event", self.rec.end(t))
            self.finished.append(
                {
                    "episode": self.episode,
                    "return": self.rec.episode_return,
                    "steps": self.rec.steps,
                    "outcome": self.rec.outcome,
                    "policy_version": self.policy_version,
                }
            )
            self.rec = None

    # helpers ------------------------------------------------------------------------------------
    def _start_episode(self) -> None:
        self.episode += 1
        seed = self.params.seed + self.episode
        obs, _ = self.env.reset(seed=seed)
        self.rec = EpisodeMessages(
            self.msgs,
            task=self.params.task,
            kind=self.params.kind,
            episode=self.episode,
            seed=seed,
            layout=self.layout,
            policy_version=self.policy_version,
        )
        self.step = 0
        self.publish("episode_event", self.rec.start(self.now_ns()))
        self._send_state(obs)

    def _send_state(self, obs: np.ndarray) -> None:
        assert self.rec is not None
        self.obs = obs
        self.state_sent_ns = self.now_ns()
        self.stale_warned = False
        self.publish("state", self.rec.state(self.state_sent_ns, self.step, obs))

    def on_shutdown(self) -> None:
        self.env.close()


def main(args: list[str] | None = None) -> int:
    from farl_common.runtime.rclpy_host import run_node

    return run_node(SimRobotNode, args)
