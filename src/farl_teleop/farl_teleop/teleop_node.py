"""The teleop node: a person drives the arm to record demonstrations, or takes over from the policy.

record mode (demonstrations of a kind: task, recovery, failure; paper Sec. V.B.1): each state the
robot publishes is answered with the person's action (source TELEOP; zero inside the deadband, so
the arm holds). Commands go to the robot and the recorder as operator marks: start, stop, success,
failure, and after each episode keep, discard or rerecord. A recovery demo starts with an unrecorded
approach: the person drives towards the hazard, then starts the recording from there.

takeover mode (online learning): the actions the shield lets through arrive on `action_shielded`
and go on to the robot unchanged, until the person moves the device beyond its deadband; from then
on the executed action is the person's (source TELEOP) until the device has rested `release_s`.
Then the policy resumes, or the episode ends (`takeover_end`). An episode with a takeover counts as
an IR failure (paper Sec. VI: the metric is interventions).

An unplugged device: no more actions (the robot holds on its stale-action rule), the episode is
ended and kept or discarded (`on_unplug`), and the node tries to reopen the device every second.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from farl_common import messages as M
from farl_common import typestore as T
from farl_common.config import TeleopConfig
from farl_common.runtime.node import Input, Node, NodeError, Output, Timer, entry_point
from farl_common.shared_inputs import EPISODE_EVENT_INPUT, STATE_INPUT
from farl_teleop.devices import DeviceLost, DeviceUnavailable
from farl_teleop.mapping import AxisMapping, bindings_for, help_line, phase_help
from farl_teleop.operators import DeviceOperator, Operator, ScriptedPerson
from farl_teleop.takeover import TakeoverArbiter

_REOPEN_PERIOD_S = 1.0
_STATUS_PERIOD_S = 0.2


@dataclass
class TeleopParams(TeleopConfig):
    """The `teleop:` config section, and what the graph decides."""

    task: str = field(default="fragile_push_wall", metadata={"doc": "task name (hazard distance on the status line)"})
    kind: Literal["task", "recovery", "failure", "online"] = field(
        default="task", metadata={"doc": "record mode: task | recovery | failure (takeover mode: online, unused)"}
    )
    episodes: int = field(
        default=0, metadata={"doc": "record mode: stop after this many kept episodes; 0 = never", "lo": 0}
    )
    status_line: bool = field(default=False, metadata={"doc": "print a live status line on stderr"})

    @property
    def mode(self) -> Literal["record", "takeover"]:
        """record: demonstrations; takeover (the section's ``takeover: true``): override the policy."""
        return "takeover" if self.takeover else "record"


def make_operator(p: TeleopParams) -> Operator:
    from farl_teleop.devices import Keyboard, SpaceMouse

    if p.device == "scripted":
        return ScriptedPerson(p.task, p.person_takeover_m, p.person_carry_s)
    try:
        mapping = AxisMapping.from_names(list(p.axis_map), p.deadband, p.gain)
    except ValueError as err:
        raise NodeError(f"teleop: {err}") from None
    device = Keyboard(p.key_hold_s) if p.device == "keyboard" else SpaceMouse(p.spacemouse_name)
    return DeviceOperator(device, mapping, p.long_press_s)


def hazard_distance(task: str, obs: np.ndarray) -> float | None:
    """Clearance to the hazard for FailureBench tasks (None where the rules live in the robot's scene)."""
    from farl_sim.tasks import TASKS

    if task not in TASKS:
        return None
    from farl_sim.hazards import hazard_distance_m

    return hazard_distance_m(TASKS[task], obs)


class TeleopNode(Node):
    name = "teleop"
    Params = TeleopParams
    inputs = (STATE_INPUT, Input("action_shielded", T.ACTION, "on_shielded"), EPISODE_EVENT_INPUT)
    outputs = (Output("action_executed", T.ACTION), Output("operator_mark", "std_msgs/msg/String"))
    timers = (Timer("on_poll", "poll_hz"),)

    def __init__(self, params: Any = None, operator: Operator | None = None) -> None:
        """`operator` replaces the device the parameters name (tests: fake HID reports, scripted keys)."""
        super().__init__(params)
        self._given = operator

    def on_start(self) -> None:
        p = self.params
        if p.mode == "record" and p.kind not in ("task", "recovery", "failure"):
            raise NodeError(f"teleop: kind {p.kind!r}: demonstrations are task, recovery or failure")
        self.operator = self.closes(self._given or make_operator(p))
        self.bindings, self.review_bindings = bindings_for(p.device)
        self.phase = "idle"
        """idle -> (approach ->) recording -> review -> idle; unplugged while the device is gone."""
        self.state: tuple[int, int] | None = None
        self.obs: np.ndarray | None = None
        self.answered: tuple[int, int] | None = None
        self.arbiter = TakeoverArbiter(p.release_s)
        """Holds the person's latest input; in takeover mode it also decides who acts."""
        self.takeovers_by_episode: dict[int, int] = {}
        self.takeover_episode = -1
        self.kept = 0
        self.discarded = 0
        self.unplugs = 0
        self.last_episode = -1
        self._last_reopen_s = -np.inf
        self._last_status_s = -np.inf
        self.operator.open()
        if p.mode == "record":
            self.log("info", f"recording {p.kind} demonstrations with the {self.operator.name}: {help_line(p.device)}")

    def now_s(self) -> float:
        return self.now_ns() / 1e9

    # inputs ---------------------------------------------------------------------------------------
    def on_state(self, msg: Any) -> None:
        self.state = (int(msg.episode), int(msg.step))
        self.obs = M.state_values(msg)
        if self.params.mode == "record" and self.phase in ("approach", "recording"):
            self._poll()
            self._answer()

    def on_episode_event(self, msg: Any) -> None:
        if M.is_start(msg, self.msgs):
            if self.params.mode == "record" and self.phase in ("starting", "approach"):
                self.phase = "recording"
                self.answered = None
            return
        if self.params.mode == "record" and self.phase == "approach":
            self.log("warning", f"the approach ended ({msg.outcome}) before the recording began: press start again")
            self.phase = "idle"
            return
        self.last_episode = int(msg.episode)
        if self.params.mode != "record" or self.phase not in ("recording", "unplugged"):
            return
        if self.phase == "unplugged":
            if self.params.on_unplug == "discard":
                self._mark("discard")
                self.discarded += 1
            else:
                self.kept += 1
            return
        self.log("info", f"episode {msg.episode} ended: {msg.outcome}, {msg.steps} steps")
        if self.params.review:
            self.phase = "review"
        else:
            self._keep()

    def on_shielded(self, msg: Any) -> None:
        """Takeover mode: the shield's action goes on, or the person's replaces it."""
        if self.params.mode != "takeover":
            return
        ep = int(msg.episode)
        if ep != self.takeover_episode:
            self.arbiter.reset()  # a takeover does not carry over into the next episode
            self.operator.new_episode()
            self.takeover_episode = ep
        self._poll()
        was = self.arbiter.in_takeover
        d = self.arbiter.decide(M.action_values(msg), self.now_s())
        if d.intervened:
            if not was:
                self.log("warning", f"takeover in episode {ep} at step {msg.step}: the person has the arm")
            self.takeovers_by_episode[ep] = self.takeovers_by_episode.get(ep, 0) + 1
            self.publish("action_executed", self._action(ep, int(msg.step), d.action, msg.policy_version, msg.policy))
            return
        if d.released:
            self.log("info", f"takeover released in episode {ep}: {self._after_takeover()}")
            if self.params.takeover_end == "end_episode":
                self._mark("stop")
        self.publish("action_executed", msg)

    def _after_takeover(self) -> str:
        return "the episode ends" if self.params.takeover_end == "end_episode" else "the policy acts again"

    # the device -------------------------------------------------------------------------------------
    def on_poll(self) -> None:
        if self.phase == "unplugged":
            self._reopen()
        else:
            self._poll()
            if self.params.mode == "record" and self.phase in ("approach", "recording"):
                self._answer()
        self._print_status()

    def _poll(self) -> None:
        if self.phase == "unplugged":
            return
        try:
            inp = self.operator.poll(self.now_s(), self.obs)
        except DeviceLost as err:
            self._unplugged(str(err))
            return
        self.arbiter.observe(inp, self.now_s())
        for press in inp.presses:
            self._command(press)

    def _answer(self) -> None:
        """Record mode: one action per state (the control rate), the person's or a hold."""
        if self.state is None or self.answered == self.state:
            return
        self.answered = self.state
        label = f"teleop:{self.params.device}"
        self.publish("action_executed", self._action(*self.state, self.arbiter.last.command(), 0, label))

    def _action(self, episode: int, step: int, values: np.ndarray, policy_version: int, policy: str) -> Any:
        return M.make_action(
            self.msgs,
            t_ns=self.now_ns(),
            episode=episode,
            step=step,
            values=np.asarray(values, dtype=np.float64),
            source="teleop",
            policy_version=int(policy_version),
            policy=policy,
        )

    def _unplugged(self, why: str) -> None:
        self.unplugs += 1
        was = self.phase
        self.phase = "unplugged"
        self.arbiter.reset()  # nobody holds the controls
        if self.params.mode == "takeover":
            self.log("error", f"{why}; takeover is off until it is back, the policy acts")
            return
        if was in ("recording", "approach"):
            what = "kept" if self.params.on_unplug == "keep" else "discarded"
            self.log("error", f"{why}: the arm holds; the episode is ended and {what} (teleop.on_unplug)")
            self._mark("stop")
        else:
            self.log("error", f"{why}: plug it back in to go on")

    def _reopen(self) -> None:
        if self.now_s() - self._last_reopen_s < _REOPEN_PERIOD_S:
            return
        self._last_reopen_s = self.now_s()
        try:
            self.operator.close()
            self.operator.open()
        except (DeviceUnavailable, DeviceLost):
            return
        self.phase = "idle"
        self.log("info", f"{self.operator.name} is back: press start for the next episode")

    # commands ---------------------------------------------------------------------------------------
    def _command(self, press: str) -> None:
        if self.phase == "review":
            cmd = self.review_bindings.get(press)
            if cmd == "keep":
                self._keep()
            elif cmd in ("discard", "rerecord"):
                self._mark(cmd)
                self.discarded += 1
                self.phase = "idle"
                self.log("info", f"episode {self.last_episode} {cmd}ed" if cmd == "discard" else "recording again")
            return
        cmd = self.bindings.get(press)
        if cmd == "gripper":
            self.operator.toggle_gripper()
        elif self.params.mode == "takeover":
            if cmd in ("success", "failure"):
                self._mark(cmd)
        elif cmd == "start_stop":
            self._start_stop()
        elif cmd in ("success", "failure") and self.phase == "recording":
            self._mark(cmd)

    def _start_stop(self) -> None:
        if self.phase == "idle":
            self._mark("start")
            self.answered = None
            self.phase = "approach" if self.params.kind == "recovery" else "starting"
        elif self.phase == "approach":
            self._mark("start")  # the recording starts here, at the near-failure state
        elif self.phase == "recording":
            self._mark("stop")

    def _keep(self) -> None:
        self._mark("keep")
        self.kept += 1
        self.phase = "idle"
        if self.params.episodes and self.kept >= self.params.episodes:
            self.log("info", f"{self.kept} episodes kept: done")
            self.ctx.request_shutdown()

    def _mark(self, text: str) -> None:
        self.publish("operator_mark", self.msgs.new("std_msgs/msg/String", data=text))

    # status -----------------------------------------------------------------------------------------
    def status(self) -> str:
        p = self.params
        where = f"episode {self.state[0]} step {self.state[1]:3d}" if self.state is not None else "no episode yet"
        d = hazard_distance(p.task, self.obs) if self.obs is not None else None
        hazard = f"{d * 100:5.1f} cm" if d is not None else "  -  "
        what = {
            "idle": "press start",
            "starting": "homing",
            "approach": "approach (not recorded): drive near the hazard, then start",
            "recording": "RECORDING",
            "review": "keep / discard / rerecord?",
            "unplugged": "DEVICE UNPLUGGED: arm holds",
        }[self.phase]
        if p.mode == "takeover":
            what = "TAKEOVER" if self.arbiter.active(self.now_s()) else "policy"
        return (
            f"[{p.kind if p.mode == 'record' else 'online'}] {where} | hazard {hazard} | "
            f"kept {self.kept} | {what}{' | ' + hint if (hint := phase_help(p.device, self.phase)) else ''}"
        )

    def _print_status(self) -> None:
        if not self.params.status_line:
            return
        now = time.monotonic()
        if now - self._last_status_s < _STATUS_PERIOD_S:
            return
        self._last_status_s = now
        sys.stderr.write("\r\033[K" + self.status())
        sys.stderr.flush()

    def on_shutdown(self) -> None:
        if self.params.status_line:
            sys.stderr.write("\n")


main = entry_point(TeleopNode)


if __name__ == "__main__":
    raise SystemExit(main())
