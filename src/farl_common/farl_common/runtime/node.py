"""What a farl node is: a class that declares its inputs, outputs, timers and parameters.

A runtime reads the declarations, wires them to its transport and calls `bind(ctx)`; the node
then publishes through `self.publish` and makes messages through `self.msgs`. It never imports a
message class or rclpy itself, so one body runs in process and under ROS 2.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol, TypeVar

from farl_common.config import ConfigError, check_fields
from farl_common.messages import MessageFactory

Closable = TypeVar("Closable")
QosName = Literal["default", "events", "latest", "sensor"]
"""default: reliable, keep last 10; events: reliable, transient local, keep last 100 (late
joiners still see episode starts/ends and the policy version); latest: reliable, transient local, keep
last 1 (a late joiner gets the newest policy weights, and no writer holds a history of them); sensor:
best effort, keep last 5."""


@dataclass(frozen=True)
class Input:
    topic: str
    """Short topic name; runtimes remap it (``topics:`` in the task config, remappings under ROS)."""
    typename: str
    callback: str
    """Name of the node method called with each message."""
    qos: QosName = "default"


@dataclass(frozen=True)
class SyncInput:
    """Several topics delivered together when their header stamps agree within `slop_s`
    (message_filters' ApproximateTimeSynchronizer under ROS, `ApproximateTimeSync` in process)."""

    topics: tuple[str, ...]
    typenames: tuple[str, ...]
    callback: str
    slop_s: float
    queue_size: int = 10
    qos: QosName = "default"


@dataclass(frozen=True)
class Output:
    topic: str
    typename: str
    qos: QosName = "default"


@dataclass(frozen=True)
class Timer:
    callback: str
    rate_param: str
    """Name of the node parameter holding the timer's rate in Hz."""


class NodeContext(Protocol):
    """What a runtime gives a bound node."""

    msgs: MessageFactory

    def publish(self, topic: str, msg: Any) -> None: ...
    def now_ns(self) -> int: ...
    def log(self, level: str, text: str) -> None: ...
    def serialize(self, msg: Any, typename: str) -> bytes: ...
    def request_shutdown(self) -> None: ...
    def delivers_to(self, topic: str, node: str) -> bool:
        """Whether what this node publishes on its output `topic` now reaches the node named `node` (in
        this node's namespace, or absolute): it subscribes, and this process has matched every compatible
        subscription it knows of on that topic."""
        ...


class NodeError(RuntimeError):
    """A failure a node explains in one line (no robot at that address, a missing model file):
    hosts print the message without a traceback and exit non-zero."""


@dataclass
class NoParams:
    """For nodes without parameters."""


class Node:
    """Base of every farl node. Subclasses set the class attributes and write callbacks."""

    name: ClassVar[str] = "node"
    Params: ClassVar[type] = NoParams
    inputs: ClassVar[tuple[Input | SyncInput, ...]] = ()
    outputs: ClassVar[tuple[Output, ...]] = ()
    timers: ClassVar[tuple[Timer, ...]] = ()
    exit_code: int = 0
    """What the host exits with once the node asked to stop; non-zero after a fault."""

    def __init__(self, params: Any = None) -> None:
        self.params = params if params is not None else self.Params()
        if not isinstance(self.params, self.Params):
            raise TypeError(f"{self.name}: params must be {self.Params.__name__}, got {type(self.params).__name__}")
        if dataclasses.is_dataclass(self.params):
            try:  # the config file's types, choices and ranges, however the params were made
                check_fields(self.params, f"{self.name}: ")
            except ConfigError as err:
                raise NodeError(str(err)) from None
        self._ctx: NodeContext | None = None

    # called by runtimes ----------------------------------------------------------------------
    def wired_inputs(self) -> tuple[Input | SyncInput, ...]:
        """The inputs this instance subscribes to: the declared ones, less any its parameters switch
        off (a recorder without images does not take in camera frames it would throw away)."""
        return self.inputs

    def bind(self, ctx: NodeContext) -> None:
        self._ctx = ctx
        self.on_start()

    def on_start(self) -> None:
        """After wiring, before the first message or timer."""

    def on_shutdown(self) -> None:
        """Before the runtime stops: flush files, stop hardware."""

    def shutdown(self) -> None:
        """What runtimes call when they stop: `on_shutdown`, then close what the node handed to
        `closes` (newest first), also when `on_shutdown` or one of the closes raised (the last error
        is raised, the ones before it chained to it)."""
        with contextlib.ExitStack() as stack:
            for resource in self.__dict__.pop("_closing", []):
                stack.callback(resource.close)
            self.on_shutdown()

    # for subclasses --------------------------------------------------------------------------
    @property
    def ctx(self) -> NodeContext:
        if self._ctx is None:
            raise RuntimeError(f"{self.name}: not bound to a runtime yet")
        return self._ctx

    @property
    def msgs(self) -> MessageFactory:
        return self.ctx.msgs

    def publish(self, topic: str, msg: Any) -> None:
        self.ctx.publish(topic, msg)

    def now_ns(self) -> int:
        return self.ctx.now_ns()

    def log(self, level: str, text: str) -> None:
        self.ctx.log(level, text)

    def closes(self, resource: Closable) -> Closable:
        """Have `resource` (a driver, a camera, an input device: anything with `close()`) closed when
        the node shuts down, whatever happens before; returns it."""
        self.__dict__.setdefault("_closing", []).append(resource)
        return resource

    @classmethod
    def param_fields(cls) -> list[dataclasses.Field]:
        return list(dataclasses.fields(cls.Params))

    @classmethod
    def output_type(cls, topic: str) -> str:
        for o in cls.outputs:
            if o.topic == topic:
                return o.typename
        raise KeyError(f"{cls.name}: no output {topic!r} declared")


def entry_point(node_cls: type[Node]) -> Callable[[list[str] | None], int]:
    """The `main` of a node's module (`python -m farl_robot.robot_node`): the same as its console script
    (`farl_common.executable.node_main`), rclpy imported only when it runs."""
    from farl_common.executable import node_main

    return node_main(node_cls.__module__, node_cls.__name__)
