"""The in-process runtime: nodes in one thread on a simulated clock, deterministic by construction.

Everything that happens is an event on one queue ordered by (time, sequence number): timer
ticks and message deliveries. A published message is delivered to each subscriber as its own
event at the publish time plus the topic's latency, so two runs of the same graph see the same
calls in the same order. Optionally every published message is recorded into one rosbag2 bag.
"""

from __future__ import annotations

import heapq
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from farl_common.bags import EpisodeBagWriter
from farl_common.closing import CloseOrAbort
from farl_common.messages import TypestoreFactory
from farl_common.runtime.node import Input, Node, SyncInput
from farl_common.runtime.sync import ApproximateTimeSync

_log = logging.getLogger("farl.runtime")


@dataclass
class LogRecord:
    t_ns: int
    node: str
    level: str
    text: str


@dataclass
class _Sub:
    node: Node
    deliver: Callable[[Any], None]
    typename: str


@dataclass
class _Context:
    runtime: InProcessRuntime
    node: Node
    topics: dict[str, str]
    msgs: TypestoreFactory = field(init=False)

    def __post_init__(self) -> None:
        self.msgs = self.runtime.msgs

    def publish(self, topic: str, msg: Any) -> None:
        typename = self.node.output_type(topic)
        if getattr(msg, "__msgtype__", typename) != typename:
            raise TypeError(f"{self.node.name}: output {topic!r} is {typename}, got {msg.__msgtype__}")
        self.runtime.publish(self.topics.get(topic, topic), typename, msg)

    def now_ns(self) -> int:
        return self.runtime.now_ns

    def log(self, level: str, text: str) -> None:
        self.runtime.logs.append(LogRecord(self.runtime.now_ns, self.node.name, level, text))
        _log.log(
            getattr(logging, level.upper(), logging.INFO),
            "[%s] [%.3f s] %s",
            self.node.name,
            self.runtime.now_ns / 1e9,
            text,
        )

    def serialize(self, msg: Any, typename: str) -> bytes:
        return self.msgs.serialize(msg, typename)

    def request_shutdown(self) -> None:
        self.runtime.shutdown_requested = True

    def delivers_to(self, topic: str, node: str) -> bool:
        # One namespace, and a subscription is matched the moment it is made.
        subs = self.runtime._subs.get(self.topics.get(topic, topic), ())
        return any(s.node.name == node.lstrip("/") for s in subs)


class InProcessRuntime(CloseOrAbort):
    """Hosts nodes on a simulated clock. `run()` processes events until shutdown or a limit."""

    def __init__(
        self,
        start_ns: int = 0,
        latency_s: float = 0.0,
        record_to: str | Path | None = None,
        storage: str = "mcap",
        realtime: bool = False,
    ) -> None:
        """`realtime`: simulated time keeps pace with the wall clock (a person at the controls)."""
        self.now_ns = int(start_ns)
        self.realtime = realtime
        self._wall0: tuple[float, int] | None = None
        self.latency_ns = int(latency_s * 1e9)
        self.msgs = TypestoreFactory()
        self.logs: list[LogRecord] = []
        self.shutdown_requested = False
        self.nodes: list[Node] = []
        self._queue: list[tuple[int, int, Callable[[], None]]] = []
        self._seq = 0
        self._subs: dict[str, list[_Sub]] = {}
        self._types: dict[str, str] = {}
        self._recorder = EpisodeBagWriter(record_to, storage=storage) if record_to else None

    # wiring -----------------------------------------------------------------------------------
    def add(self, node: Node, topics: dict[str, str] | None = None) -> Node:
        """Wire `node`'s declarations; `topics` maps its short topic names to graph topics."""
        topics = dict(topics or {})
        for out in node.outputs:
            self._declare_type(topics.get(out.topic, out.topic), out.typename, node)
        for inp in node.wired_inputs():
            if isinstance(inp, Input):
                self._subscribe(node, topics.get(inp.topic, inp.topic), inp.typename, getattr(node, inp.callback))
            elif isinstance(inp, SyncInput):
                sync = ApproximateTimeSync(len(inp.topics), inp.slop_s, getattr(node, inp.callback), inp.queue_size)
                for i, (t, tn) in enumerate(zip(inp.topics, inp.typenames, strict=True)):
                    self._subscribe(node, topics.get(t, t), tn, lambda m, i=i, s=sync: s.add(i, m))
        for timer in node.timers:
            rate_hz = float(getattr(node.params, timer.rate_param))
            if not rate_hz > 0:
                raise ValueError(f"{node.name}: timer rate {timer.rate_param}={rate_hz} must be > 0")
            self._start_timer(round(1e9 / rate_hz), getattr(node, timer.callback), node)
        self.nodes.append(node)
        node.bind(_Context(self, node, topics))
        return node

    def remove(self, node: Node) -> None:
        """Take `node` out of the graph, as when its process ends: it is shut down, and neither messages
        nor timers reach it again."""
        self.nodes.remove(node)
        for topic, subs in self._subs.items():
            self._subs[topic] = [s for s in subs if s.node is not node]
        node.shutdown()

    def _declare_type(self, topic: str, typename: str, node: Node) -> None:
        known = self._types.setdefault(topic, typename)
        if known != typename:
            raise TypeError(f"{node.name}: topic {topic} carries {known}, not {typename}")

    def _subscribe(self, node: Node, topic: str, typename: str, fn: Callable[[Any], None]) -> None:
        self._declare_type(topic, typename, node)
        self._subs.setdefault(topic, []).append(_Sub(node, fn, typename))

    def _start_timer(self, period_ns: int, fn: Callable[[], None], node: Node) -> None:
        def tick() -> None:
            if node not in self.nodes:
                return
            self._schedule(self.now_ns + period_ns, tick)
            fn()

        self._schedule(self.now_ns + period_ns, tick)

    def _schedule(self, t_ns: int, fn: Callable[[], None]) -> None:
        heapq.heappush(self._queue, (t_ns, self._seq, fn))
        self._seq += 1

    # transport --------------------------------------------------------------------------------
    def publish(self, topic: str, typename: str, msg: Any) -> None:
        if self._recorder is not None:
            self._recorder.write(topic, typename, msg, self.now_ns)
        for sub in self._subs.get(topic, ()):
            self._schedule(self.now_ns + self.latency_ns, lambda s=sub: s.node in self.nodes and s.deliver(msg))

    def run(self, until_s: float | None = None, max_events: int | None = None) -> int:
        """Process events in order until shutdown is requested, the queue empties, simulated time
        passes `until_s`, or `max_events` ran. Returns the number of events processed."""
        until_ns = None if until_s is None else int(until_s * 1e9)
        n = 0
        while self._queue and not self.shutdown_requested:
            if until_ns is not None and self._queue[0][0] > until_ns:
                self.now_ns = until_ns
                break
            if max_events is not None and n >= max_events:
                break
            t, _, fn = heapq.heappop(self._queue)
            if self.realtime:
                self._wait_until(t)
            self.now_ns = t
            fn()
            n += 1
        return n

    def _wait_until(self, t_ns: int) -> None:
        if self._wall0 is None:
            self._wall0 = (time.monotonic(), self.now_ns)
        wall, sim = self._wall0
        delay = wall + (t_ns - sim) / 1e9 - time.monotonic()
        if delay > 0:
            time.sleep(delay)

    def _shut_down_nodes(self) -> None:
        for node in reversed(self.nodes):
            node.shutdown()

    def close(self) -> Path | None:
        """Shut nodes down (in reverse order of adding) and close the recording, if any."""
        self._shut_down_nodes()
        if self._recorder is not None:
            path = self._recorder.close()
            self._recorder = None
            return path
        return None

    def abort(self) -> None:
        """Shut nodes down and discard the recording's unfinished episode (an exception ended the run)."""
        self._shut_down_nodes()
        if self._recorder is not None:
            self._recorder.abort()
