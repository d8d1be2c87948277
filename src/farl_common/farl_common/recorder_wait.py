"""Holding each episode until the episode recorder takes a node's topics.

A recorder in another process, or on another machine, is matched by DDS some time after the rest of
the graph is up, and again after it restarts. The robot starts no episode before the recorder takes its
own topics; the policy and the shield, each a process of its own, hold their answers to an episode's
states the same way, so the recorder has every step from step 0 on. Each state held is a state the robot
sends again: the episode waits, nothing is lost.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from farl_common.runtime.node import Node

GRACE_S = 30.0
"""How long the policy and the shield hold an episode for the recorder before they answer anyway."""


@dataclass
class RecorderWaitParams:
    wait_for_recorder: str = field(
        default="",
        metadata={
            "doc": "the recorder node's name (in this node's namespace): hold each episode's answers until it "
            "takes this node's actions, so its bags have every step from step 0; empty: no recorder to wait for"
        },
    )


class RecorderWait:
    """`ready(episode)`: whether the node may go on with `episode`. Asked once an episode: true when the
    recorder named by the node's `wait_for_recorder` takes all of `topics`, or where none is named.
    Otherwise false, and asked again, for up to `timeout_s`; then true, with a warning, and the node is
    not held again until the recorder is back (it goes on unrecorded meanwhile)."""

    def __init__(self, node: Node, topics: tuple[str, ...], timeout_s: float = GRACE_S) -> None:
        self.node = node
        self.topics = topics
        self.timeout_s = timeout_s
        self.name = str(getattr(node.params, "wait_for_recorder", ""))
        self.listed = ", ".join(topics)
        self.checked: int | None = None
        """The episode the recorder was last found for, or given up on."""
        self.since_ns: int | None = None
        """Since when the node holds an episode for the recorder; None: not holding."""
        self.gone = False
        """Whether the recorder missed `timeout_s` and has not taken the topics since."""

    def ready(self, episode: int, recheck: bool = False) -> bool:
        """`recheck`: ask DDS again even where `episode` was found already (the robot asks each tick until
        it starts the episode, which may be long after: an operator's start)."""
        if not self.name or (episode == self.checked and not recheck):
            return True
        if all(self.node.ctx.delivers_to(t, self.name) for t in self.topics):
            if self.gone:
                self.node.log("info", f"the recorder {self.name} takes {self.listed} again")
            self.checked, self.since_ns, self.gone = episode, None, False
            return True
        if self.gone:
            self.checked = episode
            return True
        now = self.node.now_ns()
        if self.since_ns is None:
            self.since_ns = now
            self.node.log("info", f"holding episode {episode} until the recorder {self.name} takes {self.listed}")
        if (now - self.since_ns) / 1e9 < self.timeout_s:
            return False
        self.node.log(
            "warning",
            f"the recorder {self.name} has not taken {self.listed} for {self.timeout_s:g} s: going on; "
            "its bags leave out what it misses until it is back",
        )
        self.checked, self.since_ns, self.gone = episode, None, True
        return True
