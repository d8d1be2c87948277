"""Holding a node's first answers until the episode recorder takes them.

A recorder in another process, or on another machine, is matched by DDS some time after the rest of
the graph is up. The robot starts no episode before the recorder takes its own topics
(`RobotParams.wait_for_recorder`); the policy and the shield, each a process of its own, hold their
first answers the same way, so the recorder has every step's action from step 0 on. Each step held is
a state the robot sends again: the episode waits, nothing is lost.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from farl_common.runtime.node import Node

GRACE_S = 30.0
"""How long a node holds its first answer for the recorder before it answers anyway, saying so."""


@dataclass
class RecorderWaitParams:
    wait_for_recorder: str = field(
        default="",
        metadata={
            "doc": "the recorder node's name (in this node's namespace): hold the first answers until it takes "
            "this node's actions, so its bags have every step from step 0; empty: no recorder to wait for"
        },
    )


class RecorderWait:
    """`ready()`: whether the node may publish on `topics`. True once the recorder takes them all (then
    for good), where no recorder is named, or after `GRACE_S` of holding."""

    def __init__(self, node: Node, topics: tuple[str, ...]) -> None:
        self.node = node
        self.topics = topics
        self.name = str(getattr(node.params, "wait_for_recorder", ""))
        self.done = not self.name
        self.since_ns: int | None = None

    def ready(self) -> bool:
        if self.done:
            return True
        if all(self.node.ctx.delivers_to(t, self.name) for t in self.topics):
            self.done = True
            return True
        now = self.node.now_ns()
        if self.since_ns is None:
            self.since_ns = now
            self.node.log(
                "info", f"holding the first answer until the recorder {self.name} takes {', '.join(self.topics)}"
            )
        if (now - self.since_ns) / 1e9 < GRACE_S:
            return False
        self.node.log(
            "warning",
            f"the recorder {self.name} has not taken {', '.join(self.topics)} for {GRACE_S:g} s: answering "
            "anyway; its bags leave out the steps it misses",
        )
        self.done = True
        return True
