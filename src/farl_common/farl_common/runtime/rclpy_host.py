"""The rclpy runtime: hosts one farl node class in a ROS 2 (Jazzy) process.

Parameters are declared from the node's `Params` dataclass (with their docs as descriptors) and
may come from the launch file or `--ros-args -p`; topics are the node's short names, relative, so
launch remappings place them in the graph; QoS is explicit per declaration; `use_sim_time` works
as in any rclpy node (declared by rclpy, clock from /clock). Ctrl-C, `ros2 lifecycle`-free
shutdown and a node's own `request_shutdown()` all end in `Node.shutdown()` and a clean exit.

rclpy is imported inside the functions: this module imports, and its helpers are tested,
on machines without ROS.
"""

from __future__ import annotations

import dataclasses
import importlib
import sys
import typing
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from farl_common.config import ConfigError, check_fields
from farl_common.runtime.node import Input, Node, NodeError, QosName, SyncInput
from farl_common.runtime.sync import ApproximateTimeSync


def ros_message_class(typename: str) -> type:
    """`pkg/msg/Name` -> the rosidl-generated Python class."""
    pkg, kind, name = typename.split("/")
    return getattr(importlib.import_module(f"{pkg}.{kind}"), name)


def to_ros_value(value: Any) -> Any:
    """rosidl setters reject numpy arrays (they check for sequences of Python scalars); bytes go
    into a uint8[] field at memory speed (an image), where a list of ints would take 100 ms."""
    if isinstance(value, np.ndarray) and value.dtype == np.uint8:
        return value.tobytes()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


class RclpyMessages:
    """MessageFactory over rosidl classes."""

    def __init__(self) -> None:
        self._classes: dict[str, type] = {}

    def cls(self, typename: str) -> type:
        if typename not in self._classes:
            self._classes[typename] = ros_message_class(typename)
        return self._classes[typename]

    def new(self, typename: str, **fields: Any) -> Any:
        return self.cls(typename)(**{k: to_ros_value(v) for k, v in fields.items()})


def qos_profile(name: QosName):
    from rclpy.qos import (
        DurabilityPolicy,
        HistoryPolicy,
        QoSProfile,
        ReliabilityPolicy,
        qos_profile_sensor_data,
    )

    if name == "sensor":
        return qos_profile_sensor_data
    if name in ("events", "latest"):
        return QoSProfile(
            history=HistoryPolicy.KEEP_LAST,
            depth=100 if name == "events" else 1,
            reliability=ReliabilityPolicy.RELIABLE,
            durability=DurabilityPolicy.TRANSIENT_LOCAL,
        )
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=10,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.VOLATILE,
    )


def empty_list_type(hint: Any, default: Any) -> Any:
    """For an empty-list default, the ROS array type to declare: rclpy infers BYTE_ARRAY from `[]` and
    then refuses `-p hsv_lo:=[22,120,120]` (an INTEGER_ARRAY). None where the value says its type."""
    if default != [] or typing.get_origin(hint) is not list:
        return None
    from rclpy.parameter import Parameter

    (inner,) = typing.get_args(hint) or (str,)
    arrays = {int: "INTEGER_ARRAY", float: "DOUBLE_ARRAY", bool: "BOOL_ARRAY", str: "STRING_ARRAY"}
    return getattr(Parameter.Type, arrays.get(inner, "STRING_ARRAY"))


def param_default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    raise TypeError(f"parameter {f.name} needs a default to be declared")


def params_from_values(params_cls: type, values: dict[str, Any]) -> Any:
    """Build the Params dataclass from ROS parameter values, coercing ROS's types to the field's."""
    hints = typing.get_type_hints(params_cls)
    out = {}
    for f in dataclasses.fields(params_cls):
        if f.name not in values:
            continue
        v = values[f.name]
        tp = hints[f.name]
        if tp is float and isinstance(v, int) and not isinstance(v, bool):
            v = float(v)  # `-p rate_hz:=10` means 10.0
        elif tp is float and not isinstance(v, float):
            raise NodeError(f"parameter {f.name}: expected a number, got {v!r}")
        elif typing.get_origin(tp) is list and v is not None:
            v = list(v)
        elif typing.get_origin(tp) is tuple and v is not None:
            v = tuple(v)
        out[f.name] = v
    params = params_cls(**out)
    try:
        check_fields(params, "parameter ")  # the same types, choices and ranges as the config file
    except ConfigError as err:
        raise NodeError(str(err)) from None
    return params


def declare_parameters(ros_node: Any, node_cls: type[Node], params: Any = None) -> Any:
    """Declare `node_cls`'s parameters on an rclpy node and build its Params from what ROS hands over
    (a params file, `-p`), over `params` or else the declared defaults."""
    from rcl_interfaces.msg import ParameterDescriptor

    values = {}
    hints = typing.get_type_hints(node_cls.Params)
    for f in node_cls.param_fields():
        # Read once at start: declared read-only, so `ros2 param set` is refused rather than ignored.
        # A float accepts an integer literal (dynamic typing; params_from_values checks the type).
        desc = ParameterDescriptor(
            description=str(f.metadata.get("doc", "")),
            read_only=True,
            dynamic_typing=hints[f.name] is float,
        )
        default = to_ros_value(getattr(params, f.name)) if params is not None else param_default(f)
        typed = empty_list_type(hints[f.name], default)
        value = ros_node.declare_parameter(f.name, typed or default, desc).value
        values[f.name] = default if value is None else value  # a typed declaration not overridden
    return params_from_values(node_cls.Params, values)


class _RosContext:
    def __init__(self, host: RclpyHost) -> None:
        self._host = host
        self.msgs = host.msgs

    def publish(self, topic: str, msg: Any) -> None:
        self._host.publishers[topic].publish(msg)

    def now_ns(self) -> int:
        return self._host.ros_node.get_clock().now().nanoseconds

    def log(self, level: str, text: str) -> None:
        # One call site per severity: rclpy refuses a second severity from the same line ("Logger
        # severity cannot be changed between calls"), so a node that logged a warning and then an
        # info line (a camera back after a stall) would raise inside its timer.
        logger = self._host.ros_node.get_logger()
        if level == "debug":
            logger.debug(text)
        elif level == "warning":
            logger.warning(text)
        elif level == "error":
            logger.error(text)
        elif level == "fatal":
            logger.fatal(text)
        else:
            logger.info(text)

    def serialize(self, msg: Any, typename: str) -> bytes:
        from rclpy.serialization import serialize_message

        return serialize_message(msg)

    def request_shutdown(self) -> None:
        self._host.done = True

    def delivers_to(self, topic: str, node: str) -> bool:
        ros, pub = self._host.ros_node, self._host.publishers[topic]
        want = node if node.startswith("/") else f"{ros.get_namespace().rstrip('/')}/{node}"
        # The graph names the subscribers; only the publisher's matched count says DDS delivers to them.
        # A subscription whose QoS cannot match this writer (a transient-local echo) never will: not counted.
        subs = [
            s for s in ros.get_subscriptions_info_by_topic(pub.topic_name) if _can_match(pub.qos_profile, s.qos_profile)
        ]
        names = {f"{s.node_namespace.rstrip('/')}/{s.node_name}" for s in subs}
        return want in names and pub.get_subscription_count() >= len(subs)


def _can_match(writer: Any, reader: Any) -> bool:
    """DDS's request-offered rule for the two policies farl's profiles set (`qos_profile`); rclpy's
    qos_check_compatible also compares deadline and liveliness, which the graph reports in another form."""
    from rclpy.qos import DurabilityPolicy, ReliabilityPolicy

    durable = (
        reader.durability != DurabilityPolicy.TRANSIENT_LOCAL or writer.durability == DurabilityPolicy.TRANSIENT_LOCAL
    )
    reliable = reader.reliability != ReliabilityPolicy.RELIABLE or writer.reliability == ReliabilityPolicy.RELIABLE
    return durable and reliable


class RclpyHost:
    """Creates the rclpy node, its parameters, publishers, subscriptions and timers for `node_cls`."""

    def __init__(
        self,
        node_cls: type[Node],
        node_name: str | None = None,
        params: Any = None,
        remap: dict[str, str] | None = None,
        make: Callable[[Any], Node] | None = None,
    ) -> None:
        """`params` (the node's Params) replaces the declared defaults, as a launch file's parameters would;
        `remap` maps short topic names to graph topics, as a launch file's remappings would; `make`
        builds the node from its parameters (tests: a node given a device at the hardware boundary)."""
        from rclpy.node import Node as RosNode

        self.msgs = RclpyMessages()
        self.done = False
        cli = [a for k, v in (remap or {}).items() for a in ("-r", f"{k}:={v}")]
        self.ros_node = RosNode(node_name or node_cls.name, cli_args=["--ros-args", *cli] if cli else None)
        self.node = (make or node_cls)(declare_parameters(self.ros_node, node_cls, params))
        self.publishers = {
            o.topic: self.ros_node.create_publisher(self.msgs.cls(o.typename), o.topic, qos_profile(o.qos))
            for o in node_cls.outputs
        }
        self._keep: list[Any] = []
        for inp in self.node.wired_inputs():
            if isinstance(inp, Input):
                self._keep.append(
                    self.ros_node.create_subscription(
                        self.msgs.cls(inp.typename), inp.topic, getattr(self.node, inp.callback), qos_profile(inp.qos)
                    )
                )
            elif isinstance(inp, SyncInput):
                self._keep += self._synchronised(inp)
        for timer in node_cls.timers:
            rate_hz = float(getattr(self.node.params, timer.rate_param))
            self._keep.append(self.ros_node.create_timer(1.0 / rate_hz, getattr(self.node, timer.callback)))
        self.node.bind(_RosContext(self))

    def _synchronised(self, inp: SyncInput) -> list[Any]:
        """message_filters' ApproximateTimeSynchronizer where ROS 2 ships it (apt); farl's own, same
        policy, where it does not (the PyPI wheels), with a line saying so."""
        qos = qos_profile(inp.qos)
        try:
            import message_filters
        except ImportError:
            self.ros_node.get_logger().info(
                f"message_filters not installed: synchronising {', '.join(inp.topics)} with farl's ApproximateTimeSync"
            )
            sync = ApproximateTimeSync(len(inp.topics), inp.slop_s, getattr(self.node, inp.callback), inp.queue_size)
            return [
                self.ros_node.create_subscription(self.msgs.cls(tn), t, lambda m, i=i: sync.add(i, m), qos)
                for i, (t, tn) in enumerate(zip(inp.topics, inp.typenames, strict=True))
            ]
        subs = [
            message_filters.Subscriber(self.ros_node, self.msgs.cls(tn), t, qos_profile=qos)
            for t, tn in zip(inp.topics, inp.typenames, strict=True)
        ]
        sync = message_filters.ApproximateTimeSynchronizer(subs, inp.queue_size, inp.slop_s)
        sync.registerCallback(getattr(self.node, inp.callback))
        return [*subs, sync]

    def close(self) -> None:
        try:
            self.node.shutdown()
        finally:
            self.ros_node.destroy_node()


def run_node(node_cls: type[Node], args: Sequence[str] | None = None) -> int:
    """Entry point body of every farl ROS 2 executable: init, spin until done or Ctrl-C, shut down."""
    import rclpy
    from rclpy.executors import ExternalShutdownException
    from rclpy.signals import SignalHandlerOptions

    from farl_common.executable import defer_sigint, hear_sigint, sigint_heard
    from farl_common.torch_threads import use_threads

    # Ctrl-C (the launch's SIGINT) is farl's handler here, not rclpy's: rclpy's would invalidate the
    # context first, and the node's last log lines on shutdown would fail to reach /rosout
    # ("publisher's context is invalid"). From here on it is a flag the loop reads between callbacks
    # (executable.py says why), and a second Ctrl-C (a terminal's, then ros2 launch's) changes nothing.
    hear_sigint()  # (node_main did already; run_node may be called on its own)
    if defer_sigint():
        return 0
    try:
        rclpy.init(args=list(args) if args is not None else sys.argv, signal_handler_options=SignalHandlerOptions.NO)
    except RuntimeError as err:  # rcl's RCLError: a params file or --ros-args it cannot parse
        print(f"[{node_cls.name}] {str(err).splitlines()[0]}", file=sys.stderr)
        return 1
    host: RclpyHost | None = None
    code = 0
    try:
        try:  # the node's module has imported torch if it uses it: FARL_THREADS, else one thread
            use_threads()
        except ValueError as err:
            raise NodeError(str(err)) from None
        if not sigint_heard():
            host = RclpyHost(node_cls)
            while rclpy.ok() and not host.done and not sigint_heard():
                rclpy.spin_once(host.ros_node, timeout_sec=0.1)
    except ExternalShutdownException:
        pass
    except NodeError as err:  # explained in one line: no robot at that address, a missing model file
        print(f"[{node_cls.name}] {err}", file=sys.stderr)
        code = 1
    finally:
        if host is not None:
            host.close()
            code = code or host.node.exit_code
        rclpy.try_shutdown()
    return code
