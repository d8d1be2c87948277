"""The robot node: one arm behind the graph's topics, sim (FailureBench) or real (franky).

Each control tick it executes the action that answers the latest state (same episode and step),
after the hard envelope (`farl_robot.envelope`); then it publishes the step's reward and cost and
the next state. It refuses an action for another step, and a malformed or non-finite one; with
no acceptable action for `stale_timeout_s` the arm holds still and says so. On the real arm the
state comes from perception (`objects`): while an object is unseen for longer than
`scene_object_timeout_s` the arm holds and no state goes out. A person can end an episode as a
failure or success (`operator_mark`: "failure" | "success"); a failure mark is an IR failure. When a
demonstration is recorded in sim, the simulator's verdict wins: a mark it contradicts ends the episode
with the simulator's outcome, with a warning.

With `wait_for_start` (demonstrations from the teleop node) an episode begins on a "start" mark and
"stop" ends it with the scene's outcome; "rerecord" repeats the last episode's seed. A recovery
demo begins with an approach: after the first "start" the arm is homed and driven by the person
while states go out without an episode start (the recorder keeps none of it); the second "start"
opens the episode there, at step 0.

With `wait_for_learner` (the learned graph) an episode starts, and the node stops after its last
one, only once the learner has answered the episode before on `policy_version` (after taking its
bag in, and after the PPO update that bag completed, if any): every episode is played by one policy
version, the one the learner meant for it, as `farl finetune` plays them. An action of an older
version than the learner announced is refused. A learner that does not answer within
`learner_timeout_s` (gone, or its link down) is not waited for again until it speaks: the policy
acts on with the weights it last had.

With `wait_for_recorder` each episode starts only once the recorder takes this node's topics (DDS has
matched them, at start-up or after the recorder restarts), so its bag begins at step 0; a recorder
missing for `learner_timeout_s` is not waited for until it is back, and the episodes in between go
unrecorded, with a warning.

Robot errors: the driver recovers (clears the error, retreats home) and the episode ends as
`aborted` with the reason; when recovery fails the arm stays stopped, the node says why in one
line and exits non-zero. Episodes follow one another with seeds `seed`, `seed + 1`, ...; after
`episodes` of them (0 = forever) the node asks the runtime to stop.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from farl_common import messages as M
from farl_common import typestore as T
from farl_common.config import FarlConfig, RobotConfig, SceneConfig, prefixed, same_as
from farl_common.episode_messages import EpisodeMessages
from farl_common.recorder_wait import RecorderWait
from farl_common.runtime.node import Input, Node, NodeError, Output, Timer, entry_point
from farl_common.shared_inputs import POLICY_VERSION_INPUT
from farl_robot.driver import RobotDriver, RobotError, RobotFault
from farl_robot.envelope import HardEnvelope, UnsafeCommand
from farl_robot.scene import Scene, StaleState, StepOutcome

_START_GRACE_S = 30.0
"""Before any action has reached the robot node, how long it waits quietly for the graph to start."""

MARKS = ("failure", "success", "start", "stop", "rerecord", "keep", "discard")
"""keep and discard are the recorder's; the robot accepts them silently."""


_SceneParams = prefixed(SceneConfig, "scene_", "SceneParams")


@dataclass
class RobotParams(RobotConfig, _SceneParams):  # type: ignore[misc, valid-type]
    """The `robot:` config section, the `scene:` section as `scene_*`, and what the graph decides."""

    task: str = field(default="fragile_push_wall", metadata={"doc": "task name (FailureBench, or a franka_* task)"})
    rate_hz: float = same_as(FarlConfig, "rate_hz")
    episodes: int = field(default=1, metadata={"doc": "episodes to run; 0 runs until stopped", "lo": 0})
    seed: int = field(default=0, metadata={"doc": "seed of the first episode", "lo": 0})
    kind: Literal["task", "recovery", "failure", "online"] = field(
        default="online", metadata={"doc": "episode kind written to the events"}
    )
    wait_for_start: bool = field(default=False, metadata={"doc": "episodes begin on a start mark (teleop demos)"})
    scene_perceived: bool = field(
        default=False, metadata={"doc": "sim backend: object positions from perception, not the simulator"}
    )
    wait_for_learner: bool = field(
        default=False,
        metadata={"doc": "learned graph: start each episode once the learner has answered the one before"},
    )
    wait_for_recorder: str = field(
        default="",
        metadata={
            "doc": "the recorder node's name (in this node's namespace): start each episode once it takes this "
            "node's state, feedback and events, so its bag holds the episode from step 0; empty: no recorder"
        },
    )


def real_rules(p: RobotParams):
    """The real task's rules from the `scene_*` parameters; `NodeError` when they do not describe a task."""
    from farl_robot.real_tasks import RealTaskRules

    try:
        return RealTaskRules(
            objects=list(p.scene_objects),
            goal_m=list(p.scene_goal_m),
            success_radius_m=p.scene_success_radius_m,
            object_timeout_s=p.scene_object_timeout_s,
            hazard=p.scene_hazard,
            hazard_min_m=list(p.scene_hazard_min_m),
            hazard_max_m=list(p.scene_hazard_max_m),
            obstacle_radius_m=p.scene_obstacle_radius_m,
        )
    except ValueError as err:
        raise NodeError(str(err)) from None


def check_real_params(p: RobotParams) -> None:
    """What a real-arm configuration must get right before anything moves (one line each)."""
    if not p.robot_ip:
        raise NodeError(f"robot_ip is empty: the {p.task} config needs the robot's address (robot_ip:=...)")
    check_home_in_box(p.home_joints_rad, p.workspace_min_m, p.workspace_max_m)
    real_rules(p)


def make_driver(p: RobotParams) -> tuple[RobotDriver, Scene]:
    """The driver and scene the parameters ask for (the sim driver is its own scene).

    A franky configuration is checked by `check_real_params` before this (the node's start, `graph_spec`)."""
    if p.backend == "sim":
        from farl_robot.sim_driver import SimDriver

        sim = SimDriver(p.task, p.horizon_steps)
        if p.scene_perceived:
            from farl_robot.perceived_sim_scene import PerceivedSimScene

            return sim, PerceivedSimScene(sim, list(p.scene_objects), p.scene_object_timeout_s)
        return sim, sim
    if p.backend == "franky":
        from farl_robot.franky_driver import FrankyDriver, FrankySettings
        from farl_robot.real_tasks import PerceivedScene

        names = [f.name for f in dataclasses.fields(FrankySettings)]  # the same names as RobotParams'
        settings = FrankySettings(**{n: copy.copy(getattr(p, n)) for n in names})
        return FrankyDriver(settings), PerceivedScene(real_rules(p))
    raise NodeError(f"backend {p.backend!r}: choose sim or franky")


def check_home_in_box(home_joints_rad: list[float], lo: list[float], hi: list[float]) -> None:
    """Refuse a workspace box that does not contain the home hand position (checked before anything moves)."""
    from farl_robot.panda_kinematics import hand_pose, joint_limit_violations

    if bad := joint_limit_violations(home_joints_rad):
        raise NodeError(f"home_joints_rad: {'; '.join(bad)}")
    home = hand_pose(np.asarray(home_joints_rad))[:3, 3]
    if np.any(home < np.asarray(lo)) or np.any(home > np.asarray(hi)):
        raise NodeError(
            f"the home pose puts the hand at {np.array2string(home, precision=3)} m, outside the workspace box "
            f"{list(lo)}..{list(hi)} m: move the box or the home pose"
        )


def episode_line(e: dict[str, Any], of: int = 0) -> str:
    """The progress line the robot node logs as each episode ends."""
    count = f"episode {e['episode'] + 1}/{of}" if of else f"episode {e['episode'] + 1}"
    takeover = f", {e['takeover_steps']} takeover steps" if e["takeover_steps"] else ""
    return (
        f"{count}: {e['outcome']}, return {e['return']:.1f} in {e['steps']} steps, "
        f"{e['swaps']} shield swaps{takeover}, policy version {e['policy_version']}"
    )


class RobotNode(Node):
    name = "robot"
    Params = RobotParams
    inputs = (
        Input("action_executed", T.ACTION, "on_action"),
        Input("objects", T.OBJECTS, "on_objects", qos="sensor"),
        Input("operator_mark", "std_msgs/msg/String", "on_mark"),
        POLICY_VERSION_INPUT,
    )
    outputs = (
        Output("state", T.STATE),
        Output("step_feedback", T.FEEDBACK),
        Output("episode_event", T.EVENT, qos="events"),
    )
    timers = (Timer("on_tick", "rate_hz"),)

    def __init__(self, params: Any = None, driver: tuple[RobotDriver, Scene] | None = None) -> None:
        """`driver` replaces the one the parameters describe (tests: franky against franky-sim)."""
        super().__init__(params)
        self._given = driver

    def on_start(self) -> None:
        p = self.params
        try:
            self.envelope = HardEnvelope(p.workspace_min_m, p.workspace_max_m, p.max_step_m)
        except ValueError as err:
            raise NodeError(f"workspace: {err}") from None
        if p.backend == "franky":
            check_real_params(p)
        self.driver, self.scene = self._given or make_driver(p)
        self.closes(self.driver)
        self.episode = -1
        self.rec: EpisodeMessages | None = None
        self.obs: np.ndarray | None = None
        self.step = 0
        self.pending: np.ndarray | None = None
        self.awaiting_outcome = False
        self.mark = ""
        self.start_requested = False
        self.approach = False
        self.begin_recording = False
        self.repeats = 0
        self.policy_version = 0
        self.episode_policy: str | None = None
        self.state_sent_ns = 0
        self.stale_warned = False
        self.resent_ns = 0
        self.perception_warned = ""
        self.refused = 0
        self.held_ticks = 0
        self.halted = False
        self.halt_reason = ""
        self.finished: list[dict[str, Any]] = []
        self.answered_once = False
        """Whether any action has reached this node yet: until then the graph is still starting."""
        self.start_said = False
        self.version_said = False
        """Whether the node said (once an episode) that an older policy version answered."""
        self.older_answered = False
        """Whether an older policy version than announced answered the state last sent."""
        self.learner_version: int | None = None
        """The policy version the learner last announced (learned graph)."""
        self.learner_waited_ns: int | None = None
        """Since when the node waits for the learner's answer to the last episode; None: not waiting."""
        self.learner_gone = False
        """Whether the learner missed `learner_timeout_s` and has not been heard from since."""
        self.recorder = RecorderWait(self, tuple(o.topic for o in self.outputs), self.params.learner_timeout_s)
        """Whether the recorder (`wait_for_recorder`) takes this node's topics before an episode: a recorder
        in another process, or on another machine, is matched by DDS some time after the learner's first
        answer, or after a restart, and an episode started before reaches it from a later step: a bag that
        holds no whole episode, which the recorder refuses to write."""
        self.sources: dict[str, int] = {}
        """The episode's executed actions by source (policy, recovery: a shield swap, teleop)."""
        self.driver.connect()

    # inputs -------------------------------------------------------------------------------------
    def on_action(self, msg: Any) -> None:
        self.answered_once = True  # whatever it holds, something in the graph is answering
        if self.rec is None or self.obs is None or self.awaiting_outcome:
            return  # between episodes, or no state out yet: nothing can answer
        if self.learner_version is not None and int(msg.policy_version) < self.learner_version:
            # The policy node took this state before the learner's new version (two topics, no order
            # between them): ask again at once; the normal warning comes if it lasts stale_timeout_s.
            self.refused += 1
            self.older_answered = True
            if not self.version_said:
                self.version_said = True
                self.log(
                    "info",
                    f"answered by policy version {msg.policy_version} while the learner has announced "
                    f"version {self.learner_version}: asking again",
                )
            return
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
        source = M.action_source(msg)
        self.sources[source] = self.sources.get(source, 0) + 1
        label = str(msg.policy)
        if self.episode_policy is None:
            self.episode_policy = label
        elif self.episode_policy != label:
            self.episode_policy = "mixed"

    def on_version(self, msg: Any) -> None:
        if self.learner_gone:
            self.log("info", f"the learner answers again (policy version {msg.data}): each episode waits for it")
        self.learner_version = int(msg.data)
        self.learner_waited_ns = None
        self.learner_gone = False

    def _waiting_for_learner(self) -> bool:
        """Learned graph, between episodes: whether the learner has yet to answer (or, at start, to say
        anything). After `learner_timeout_s` the node goes on, saying so, and waits no more until the
        learner is heard from again."""
        if not self.params.wait_for_learner or self.learner_gone:
            return False
        if self.learner_waited_ns is None and self.learner_version is not None:
            return False
        now = self.now_ns()
        if self.learner_waited_ns is None:
            self.learner_waited_ns = now
        if (now - self.learner_waited_ns) / 1e9 < self.params.learner_timeout_s:
            return True
        self.log(
            "warning",
            f"no answer from the learner for {self.params.learner_timeout_s:g} s: going on with the policy there "
            "is, and not waiting for the learner again until it answers",
        )
        self.learner_waited_ns = None
        self.learner_gone = True
        self.learner_version = self.learner_version or 0
        return False

    def on_objects(self, msg: Any) -> None:
        update = getattr(self.scene, "update", None)
        if update is None:
            return  # the sim scene knows its objects
        names = list(msg.names)
        conf = np.asarray(msg.confidence, dtype=np.float64)
        age = np.asarray(msg.age_s, dtype=np.float64)
        if len(msg.positions_m) != 3 * len(names) or len(conf) != len(names) or len(age) != len(names):
            self.log("error", f"refused object positions: {len(names)} names, {len(msg.positions_m)} coordinates")
            return
        stamp = M.stamp_ns(msg)
        for i, name in enumerate(names):
            seen_ns = stamp - int(max(float(age[i]), 0.0) * 1e9) if np.isfinite(age[i]) else 0
            update([name], np.asarray(msg.positions_m[3 * i : 3 * i + 3]), seen_ns, [bool(conf[i] > 0)])

    def on_mark(self, msg: Any) -> None:
        text = str(msg.data).strip().lower()
        if text not in MARKS:
            self.log("warning", f"operator mark {text!r} ignored: send one of {', '.join(MARKS)}")
            return
        if text in ("keep", "discard"):
            return
        if text == "rerecord":
            self.repeats += 1
            return
        if text == "start":
            if self.rec is None:
                self.start_requested = True
            elif self.approach:
                self.begin_recording = True
            return
        if text == "stop" and self.approach:
            self.log("info", f"approach of episode {self.episode} abandoned")
            self.rec, self.obs, self.pending, self.awaiting_outcome, self.approach = None, None, None, False, False
            return
        if self.rec is None:
            self.log("warning", f"operator mark {text!r} between episodes ignored")
            return
        if text == "stop" and not self.awaiting_outcome:
            self._end_episode(self.now_ns())
            return
        self.mark = text
        self.log("info", f"operator marked episode {self.episode} {text}")

    # the control tick ---------------------------------------------------------------------------
    def on_tick(self) -> None:
        if self.halted:
            return
        try:
            self._tick()
        except RobotFault as err:
            self._halt(str(err))
        except RobotError as err:
            self._abort_episode(str(err))

    def _tick(self) -> None:
        if self.rec is None:
            # Both asked every tick: their timeouts run side by side, not one after the other.
            learner, recorder = self._waiting_for_learner(), not self.recorder.ready(self.episode + 1, recheck=True)
            if learner or recorder:
                return
            if self.params.episodes and self.episode + 1 >= self.params.episodes:
                self.ctx.request_shutdown()
                return
            if self.params.wait_for_start and not self.start_requested:
                return
            self.start_requested = False
            self._start_episode()
            return
        if self.begin_recording and not self.awaiting_outcome:
            self._begin_recording()
            return
        if self.obs is None or self.awaiting_outcome:
            self._observe()  # waiting for perception: the first state, or the state after a step
            return
        if self.pending is None:
            waited_s = (self.now_ns() - self.state_sent_ns) / 1e9
            if self.older_answered:  # ask again each tick, not once per stale_timeout_s
                self._resend_state(after_s=0.0)
            if waited_s >= self.params.stale_timeout_s:
                if not self.stale_warned and (self.answered_once or waited_s >= _START_GRACE_S):
                    self.stale_warned = True
                    self.log("warning", f"no valid action for {waited_s:.2f} s: holding still")
                elif not self.answered_once and not self.start_said:
                    # under ros2 launch the policy and shield take seconds to import torch and load models
                    self.start_said = True
                    self.log("info", "no action yet: holding still while the graph starts")
                self.held_ticks += 1
                self._resend_state()
            return
        try:
            self.scene.check_fresh(self.now_ns())
        except StaleState as err:
            self._hold(err)  # the action answered a state that can no longer be trusted: keep it, move nothing
            return
        hand = self.driver.read()
        try:
            action = self.envelope.filter(hand.pos_m, self.pending)
        except UnsafeCommand as err:
            self.pending = None
            self.refused += 1
            self.log("error", f"envelope refused action: {err}")
            return
        self.pending = None
        self.driver.execute(self.envelope.step_m(action), float(action[3]))
        self.awaiting_outcome = True
        self._observe()

    def _observe(self) -> None:
        """Assemble the state from the hand and the scene; publish the step's outcome and the state."""
        assert self.rec is not None
        try:
            obs = self.scene.observe(self.driver.read(), self.now_ns())
        except StaleState as err:
            self._hold(err)
            return
        self.perception_warned = ""
        if not self.awaiting_outcome:
            self._send_state(obs)  # the episode's first state
            return
        self.awaiting_outcome = False
        outcome = self._with_mark(self.scene.evaluate(obs))
        t = self.now_ns()
        info = {"failure": outcome.failure, "success": outcome.success, "cost": outcome.cost}
        truncated = (self.step + 1 >= self.params.horizon_steps or self.mark == "stop") and not outcome.terminated
        self.publish(
            "step_feedback", self.rec.feedback(t, self.step, outcome.reward, info, outcome.terminated, truncated)
        )
        self.step += 1
        self._send_state(obs)
        if outcome.terminated or truncated:
            self._end_episode(t)

    def _hold(self, err: StaleState) -> None:
        self.held_ticks += 1
        what = str(err).split(" last seen")[0]  # warn once per object, not once per tick
        if self.perception_warned != what:
            self.log("warning", f"holding: {err}")
            self.perception_warned = what

    def _with_mark(self, o: StepOutcome) -> StepOutcome:
        if self.mark in ("failure", "success") and self.params.backend == "sim" and self.params.kind != "online":
            # A demonstration in sim: the simulator knows, and a label that contradicts it would put a
            # wrong bag in the demonstrations. The episode ends, as the person wanted, with the
            # simulator's outcome. (Online, a person's failure mark is an intervention: an IR failure.)
            if not (o.failure if self.mark == "failure" else o.success):
                found = "no failure" if self.mark == "failure" else "the task not done"
                self.log(
                    "warning",
                    f"episode {self.episode} marked {self.mark}, but the simulator finds {found} (return "
                    f"{self.rec.episode_return if self.rec else 0.0:.1f}): it ends with the simulator's outcome",
                )
                self.mark = "stop"
            return o
        if self.mark == "failure":
            return StepOutcome(o.reward, 1.0, True, False, True, o.hazard_distance_m)
        if self.mark == "success":
            return StepOutcome(o.reward, o.cost, o.failure, not o.failure, True, o.hazard_distance_m)
        return o

    # episodes -----------------------------------------------------------------------------------
    def _start_episode(self) -> None:
        self.episode += 1
        seed = self.params.seed + self.episode - self.repeats
        self.driver.home(seed)
        new_episode = getattr(self.scene, "new_episode", None)
        if new_episode is not None:
            new_episode()
        self.rec = EpisodeMessages(
            self.msgs,
            task=self.params.task,
            kind=self.params.kind,
            episode=self.episode,
            seed=seed,
            layout=self.scene.layout,
            policy_version=self.policy_version,
        )
        self.step, self.obs, self.pending, self.awaiting_outcome, self.mark = 0, None, None, False, ""
        self.episode_policy = None
        self.sources = {}
        self.version_said = False
        self.approach = self.params.wait_for_start and self.params.kind == "recovery"
        self.begin_recording = False
        if self.approach:
            self.log("info", f"episode {self.episode}: approach (not recorded) until the next start")
        else:
            self.publish("episode_event", self.rec.start(self.now_ns()))
        self._observe()

    def _begin_recording(self) -> None:
        """The recovery demo starts here: a fresh episode record at step 0, from the current state."""
        assert self.rec is not None and self.obs is not None
        self.approach = self.begin_recording = False
        rec = self.rec
        self.rec = EpisodeMessages(
            self.msgs, task=rec.task, kind=rec.kind, episode=rec.episode, seed=rec.seed, layout=rec.layout
        )
        self.step, self.pending, self.mark = 0, None, ""
        self.episode_policy = None
        self.publish("episode_event", self.rec.start(self.now_ns()))
        self._send_state(self.obs)

    def _resend_state(self, after_s: float | None = None) -> None:
        """The same state again, once per `stale_timeout_s` (or `after_s`) while nothing acceptable
        answers: a policy or shield that started after the first one went out (DDS does not keep it for
        late joiners) still gets it, and a policy still on an older version is asked again."""
        assert self.rec is not None and self.obs is not None
        now = self.now_ns()
        gap_s = self.params.stale_timeout_s if after_s is None else after_s
        if (now - max(self.state_sent_ns, self.resent_ns)) / 1e9 < gap_s:
            return
        self.resent_ns = now
        self.publish("state", self.rec.state(now, self.step, self.obs))

    def _send_state(self, obs: np.ndarray) -> None:
        assert self.rec is not None
        self.obs = obs
        self.state_sent_ns = self.now_ns()
        self.stale_warned = False
        self.older_answered = False
        self.publish("state", self.rec.state(self.state_sent_ns, self.step, obs))

    def _end_episode(self, t_ns: int, outcome: str | None = None) -> None:
        assert self.rec is not None
        if self.approach:  # an approach that ended (a failure, the horizon): no episode was recorded
            self.log(
                "warning", f"the approach of episode {self.episode} ended ({outcome or self.rec.outcome}); start again"
            )
            self.publish("episode_event", self.rec.end(t_ns, outcome))
            self.rec, self.obs, self.pending, self.awaiting_outcome, self.approach = None, None, None, False, False
            return
        self.rec.policy_version = self.policy_version
        self.rec.policy = self.episode_policy or ""
        self.publish("episode_event", self.rec.end(t_ns, outcome))
        summary = {
            "episode": self.episode,
            "return": self.rec.episode_return,
            "steps": self.rec.steps,
            "outcome": outcome or self.rec.outcome,
            "policy_version": self.policy_version,
            "policy": self.rec.policy,
            "swaps": self.sources.get("recovery", 0),
            "takeover_steps": self.sources.get("teleop", 0) if self.params.kind == "online" else 0,
        }
        self.finished.append(summary)
        self.log("info", episode_line(summary, self.params.episodes))
        if self.params.wait_for_learner:
            self.learner_waited_ns = t_ns
        self.rec, self.obs, self.pending, self.awaiting_outcome = None, None, None, False

    def _abort_episode(self, reason: str) -> None:
        self.log("error", f"episode {self.episode} aborted: {reason}")
        self.driver.stop()
        if self.rec is not None:
            self._end_episode(self.now_ns(), "aborted")
        try:
            self.driver.recover()
        except RobotFault as err:
            self._halt(str(err))

    def _halt(self, reason: str) -> None:
        self.halt_reason = reason
        self.log("error", reason)
        self.driver.stop()
        if self.rec is not None:
            self._end_episode(self.now_ns(), "aborted")
        self.halted = True
        self.exit_code = 1
        self.ctx.request_shutdown()


main = entry_point(RobotNode)


if __name__ == "__main__":
    raise SystemExit(main())
