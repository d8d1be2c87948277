"""The episode recorder: one bag per episode of everything on the episode topics.

It opens a bag on an episode's START event and closes it, renamed into place, on END. Messages
carry their episode number, so a message that overtakes its START (topics are not ordered with
respect to each other under ROS) waits in a small buffer instead of being lost. Bags always use
the canonical topic names of `farl_common.topics`, whatever the graph remapped them to.

Once a bag is closed and renamed into place, its path goes out on `episode_recorded`: the learner
reads finished bags when told, never in a race with the rename. The END of an episode the recorder
joined mid-way (it started, or restarted, during it) goes out there as an empty path: no bag, but
the learner still answers it, so the robot does not wait for an answer that cannot come.

An operator's "discard" or "rerecord" mark (the teleop node, after a demonstration) deletes the
bag of the episode that just ended. Messages stamped before an episode's START (a recovery demo's
unrecorded approach) are not part of it.

Episode events are transient local, so a recorder that starts late (or restarts) is handed up to
100 old STARTs and ENDs. An episode whose END comes before any of its states, or whose first state
is not step 0 (the recorder joined mid-episode), is not written: a bag holds whole episodes only.
A step whose state arrived but whose executed action or feedback did not is left out when the bag is
read; the recorder names such steps in a warning as it closes the bag.

With `record_images` the camera topics (colour, aligned depth, camera_info) go into the open
episode's bag too; they carry no episode number, so what counts is their stamp (from the episode's
START on) and that the episode is still open.
"""

from __future__ import annotations

import itertools
import shutil
import time
from dataclasses import dataclass, field
from functools import partialmethod
from pathlib import Path
from typing import Any, Literal

from farl_common import messages as M
from farl_common.bags import PARTIAL_DIR, EpisodeBagWriter
from farl_common.config import RecorderConfig, same_as
from farl_common.runtime.node import Input, Node, Output, entry_point
from farl_common.topics import DEFAULT_TOPICS, EPISODE_TOPICS, IMAGE_TOPICS, TOPIC_TYPES, topic_qos

_MAX_EARLY = 1000


@dataclass
class RecorderParams:
    out_dir: str = field(default="runs/bags", metadata={"doc": "folder the episode bags go to"})
    storage: Literal["mcap", "sqlite3"] = same_as(RecorderConfig, "storage")
    run_id: str = field(default="", metadata={"doc": "prefix of bag names; empty = wall-clock time"})
    record_images: bool = field(
        default=False, metadata={"doc": "also record the camera topics (about 1.5 MB a frame at 640x480)"}
    )


class EpisodeRecorderNode(Node):
    name = "episode_recorder"
    Params = RecorderParams
    inputs = (
        *(
            Input(t, TOPIC_TYPES[t], f"on_{t}", qos=topic_qos(t))  # type: ignore[arg-type]
            for t in EPISODE_TOPICS
        ),
        Input("operator_mark", TOPIC_TYPES["operator_mark"], "on_operator_mark"),
        *(Input(t, TOPIC_TYPES[t], f"on_{t}", qos="sensor") for t in IMAGE_TOPICS),
    )
    outputs = (Output("episode_recorded", TOPIC_TYPES["episode_recorded"], qos="events"),)

    def wired_inputs(self):
        if self.params.record_images:
            return self.inputs
        return tuple(i for i in self.inputs if not (isinstance(i, Input) and i.topic in IMAGE_TOPICS))

    def on_start(self) -> None:
        self.run_id = self.params.run_id or unused_run_id(Path(self.params.out_dir), time.strftime("%Y%m%d-%H%M%S"))
        self.writer: EpisodeBagWriter | None = None
        self.episode: int | None = None
        self.start_ns = 0
        self.early: list[tuple[str, Any]] = []
        self.closed: list[Path] = []
        self.dropped = 0
        self.discarded: list[Path] = []
        self._discard_when_closed = False
        self.steps_seen: dict[str, set[int]] = _no_steps()
        """The open episode's steps written into its bag, by topic (state, executed action, feedback)."""
        self.skipped: list[int] = []
        """Episodes not recorded: ended before this recorder saw a state, or joined mid-episode."""
        self.joined: int | None = None
        """The episode under way when this recorder joined it mid-way: its END is announced without a bag."""

    def _put(self, topic: str, msg: Any) -> None:
        assert self.writer is not None
        # The runtime serialises: under rclpy a message's arrays are array.array, which rosbags cannot encode.
        typename = TOPIC_TYPES[topic]
        self.writer.write_raw(DEFAULT_TOPICS[topic], typename, self.ctx.serialize(msg, typename), M.stamp_ns(msg))

    def _record(self, topic: str, msg: Any) -> None:
        ep = int(msg.episode)
        if self.writer is not None and ep == self.episode:
            if topic == "state":
                if not self.steps_seen["state"] and int(msg.step) > 0:
                    self._skip(f"joined episode {ep} at step {int(msg.step)} (it began before this recorder)")
                    self.joined = ep
                    return
            if topic in self.steps_seen:
                self.steps_seen[topic].add(int(msg.step))
            self._put(topic, msg)
        elif self.episode is None or ep > self.episode:
            self.early.append((topic, msg))
            del self.early[:-_MAX_EARLY]
        else:
            self.dropped += 1

    on_state = partialmethod(_record, "state")
    on_action_proposed = partialmethod(_record, "action_proposed")
    on_action_executed = partialmethod(_record, "action_executed")
    on_shield_decision = partialmethod(_record, "shield_decision")
    on_step_feedback = partialmethod(_record, "step_feedback")

    def _record_image(self, topic: str, msg: Any) -> None:
        if self.writer is not None and M.stamp_ns(msg) >= self.start_ns:
            self._put(topic, msg)

    on_camera_color = partialmethod(_record_image, "camera_color")
    on_camera_depth = partialmethod(_record_image, "camera_depth")
    on_camera_info = partialmethod(_record_image, "camera_info")

    def on_episode_event(self, msg: Any) -> None:
        if M.is_start(msg, self.msgs):
            self._open(msg)
            return
        if self.writer is None and int(msg.episode) == self.joined:
            # The learner answers each announcement, bag or not: without one the robot would wait
            # learner_timeout_s for an answer to an episode no bag will ever hold.
            self.joined = None
            self.publish("episode_recorded", self.msgs.new(TOPIC_TYPES["episode_recorded"], data=""))
            return
        if self.writer is None or int(msg.episode) != self.episode:
            self.dropped += 1
            return
        if not self.steps_seen["state"]:  # an old episode from the events' history: its states are gone
            self._skip(f"episode {self.episode} ended before this recorder saw any of it")
            return
        self._put("episode_event", msg)
        self._say_gaps()
        self.writer.set_metadata("outcome", str(msg.outcome))
        self.closed.append(self.writer.close())
        self.writer = None
        if self._discard_when_closed:
            self._discard_last()
            return
        self.publish("episode_recorded", self.msgs.new(TOPIC_TYPES["episode_recorded"], data=str(self.closed[-1])))

    def _say_gaps(self) -> None:
        """Warn of steps the bag holds a state for but no executed action or feedback: reading the bag
        leaves them out, so nothing learns from them, and a person should know (a publisher DDS had not
        yet matched to this recorder, or a link that lost messages)."""
        states = self.steps_seen["state"]
        acted = self.steps_seen["action_executed"] & self.steps_seen["step_feedback"]
        gaps = sorted(s for s in states if s < max(states) and s not in acted)
        if gaps:
            self.log(
                "warning",
                f"episode {self.episode}: no executed action or feedback for step(s) {step_ranges(gaps)} of "
                f"{max(states)}: the bag leaves them out of learning",
            )

    def _skip(self, why: str) -> None:
        assert self.writer is not None and self.episode is not None
        self.writer.abort()
        self.writer = None
        self.skipped.append(self.episode)
        self.log("info", f"{why}: not recorded")

    def on_operator_mark(self, msg: Any) -> None:
        if str(msg.data).strip().lower() not in ("discard", "rerecord"):
            return
        if self.writer is not None:  # the mark overtook the episode's END: discard once it is closed
            self._discard_when_closed = True
            return
        self._discard_last()

    def _discard_last(self) -> None:
        self._discard_when_closed = False
        if not self.closed:
            self.log("warning", "discard: no episode bag to discard")
            return
        bag = self.closed.pop()
        shutil.rmtree(bag, ignore_errors=True)
        self.discarded.append(bag)
        self.log("info", f"discarded {bag.name} (operator)")

    def _open(self, start: Any) -> None:
        if self.writer is not None:
            self.log("warning", f"episode {self.episode} never ended; its partial bag is dropped")
            self.writer.abort()
        self.episode = int(start.episode)
        self.steps_seen = _no_steps()
        path = Path(self.params.out_dir) / f"{self.run_id}_{start.kind}_{start.task}_ep{self.episode:05d}"
        if _taken(path):  # an explicit run_id used twice: keep both episodes, never refuse the new one
            path = next(p for i in itertools.count(2) if not _taken(p := path.with_name(f"{path.name}-{i}")))
            self.log("warning", f"a bag of that name exists already: recording as {path.name}")
        self.writer = EpisodeBagWriter(
            path,
            storage=self.params.storage,
            metadata={"task": str(start.task), "kind": str(start.kind), "seed": int(start.seed)},
        )
        self._put("episode_event", start)
        t0 = self.start_ns = M.stamp_ns(start)
        for topic, msg in self.early:
            if int(msg.episode) == self.episode and M.stamp_ns(msg) >= t0:
                self._record(topic, msg)
        self.early = [(t, m) for t, m in self.early if int(m.episode) > self.episode]

    def on_shutdown(self) -> None:
        if self.writer is not None:
            self.log("warning", f"shutting down inside episode {self.episode}: its partial bag is dropped")
            self.writer.abort()
            self.writer = None


def _no_steps() -> dict[str, set[int]]:
    return {t: set() for t in ("state", "action_executed", "step_feedback")}


def step_ranges(steps: list[int]) -> str:
    """Sorted step numbers as ranges: [0, 1, 2, 7] -> "0-2, 7"."""
    runs: list[list[int]] = []
    for s in steps:
        if runs and s == runs[-1][1] + 1:
            runs[-1][1] = s
        else:
            runs.append([s, s])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def _taken(path: Path) -> bool:
    return path.exists() or (path.parent / PARTIAL_DIR / path.name).exists()


def unused_run_id(out_dir: Path, stamp: str) -> str:
    """`stamp`, or `stamp-2`, `stamp-3`, ... when a graph started within the same second already named bags
    with it in `out_dir` (a quick restart must not collide with the bags it left)."""

    def used(run_id: str) -> bool:
        return any(d.is_dir() and any(d.glob(f"{run_id}_*")) for d in (out_dir, out_dir / PARTIAL_DIR))

    return next(r for i in itertools.count(1) if not used(r := stamp if i == 1 else f"{stamp}-{i}"))


main = entry_point(EpisodeRecorderNode)
