"""Conversions between farl messages and numpy, one function pair per message.

Node code builds messages only through a `MessageFactory` its runtime hands it, so the same body
runs on rosbags' dataclasses (in process) and rosidl's classes (under rclpy): field names are the
same, only the classes differ.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from farl_common import typestore as T


class MessageFactory(Protocol):
    """What a runtime gives nodes for making messages."""

    def cls(self, typename: str) -> type:
        """The message class for a ROS type name such as `std_msgs/msg/Header`."""
        ...

    def new(self, typename: str, **fields: Any) -> Any:
        """A message with every field given; numpy arrays are accepted for numeric arrays."""
        ...


def stamp_ns(msg: Any) -> int:
    """Header stamp of a message in nanoseconds."""
    s = msg.header.stamp
    return int(s.sec) * 1_000_000_000 + int(s.nanosec)


def header(f: MessageFactory, t_ns: int, frame_id: str = "") -> Any:
    sec, nsec = divmod(int(t_ns), 1_000_000_000)
    return f.new(
        "std_msgs/msg/Header", frame_id=frame_id, stamp=f.new("builtin_interfaces/msg/Time", sec=sec, nanosec=nsec)
    )


def finite_vector(values: Any, size: int, what: str) -> np.ndarray:
    """`values` as a float64 vector of `size`, or ValueError naming `what`: the robot never acts on NaN."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if v.shape != (size,):
        raise ValueError(f"{what}: expected {size} values, got {v.shape[0]}")
    if not np.all(np.isfinite(v)):
        raise ValueError(f"{what}: non-finite value in {np.array2string(v, precision=3)}")
    return v


def _step_message(
    f: MessageFactory, typename: str, t_ns: int, episode: int, step: int, frame_id: str = "", **fields: Any
) -> Any:
    """A message about one step of one episode: stamped (in `frame_id`), with the episode and step
    numbers, then `fields`."""
    return f.new(typename, header=header(f, t_ns, frame_id), episode=episode, step=step, **fields)


# TaskState -------------------------------------------------------------------------------------
STATE_FRAME = "world"
"""The frame of every state (TaskState's header): FailureBench's world, the robot's base on the arm."""


def make_state(
    f: MessageFactory,
    *,
    t_ns: int,
    task: str,
    episode: int,
    step: int,
    layout: Sequence[tuple[str, int]],
    values: np.ndarray,
) -> Any:
    return _step_message(
        f,
        T.STATE,
        t_ns,
        episode,
        step,
        frame_id=STATE_FRAME,
        task=task,
        layout_names=[n for n, _ in layout],
        layout_sizes=np.array([s for _, s in layout], dtype=np.uint32),
        values=np.asarray(values, dtype=np.float64),
    )


def state_values(msg: Any) -> np.ndarray:
    return np.asarray(msg.values, dtype=np.float64)


def state_layout(msg: Any) -> list[tuple[str, int]]:
    """TaskState's (name, size) pairs: which slice of `values` holds what."""
    return list(zip(list(msg.layout_names), [int(s) for s in msg.layout_sizes], strict=True))


def answering(msg: Any, t_ns: int) -> dict[str, int]:
    """`t_ns`, and the episode and step of `msg`: for a message that answers it (an action for a state,
    a decision for a proposal), as keywords of the make_* builders."""
    return {"t_ns": t_ns, "episode": int(msg.episode), "step": int(msg.step)}


# ActionCommand ---------------------------------------------------------------------------------
def make_action(
    f: MessageFactory,
    *,
    t_ns: int,
    episode: int,
    step: int,
    values: np.ndarray,
    source: str = "policy",
    policy_version: int = 0,
    policy: str = "",
) -> Any:
    cls = f.cls(T.ACTION)
    return _step_message(
        f,
        T.ACTION,
        t_ns,
        episode,
        step,
        source=int(getattr(cls, f"SOURCE_{source.upper()}")),
        policy_version=policy_version,
        policy=policy,
        values=np.asarray(values, dtype=np.float64),
    )


ACTION_SOURCES = ("policy", "recovery", "teleop", "scripted")
"""ActionCommand's SOURCE_* constants by value: who chose an action."""


def action_source(msg: Any) -> str:
    """The name of an ActionCommand's source (policy, recovery: a shield swap, teleop, scripted)."""
    value = int(msg.source)
    return ACTION_SOURCES[value] if value < len(ACTION_SOURCES) else f"source {value}"


def action_values(msg: Any) -> np.ndarray:
    return np.asarray(msg.values, dtype=np.float64)


# ShieldDecision --------------------------------------------------------------------------------
def make_decision(
    f: MessageFactory,
    *,
    t_ns: int,
    episode: int,
    step: int,
    proposed: np.ndarray,
    executed: np.ndarray,
    risk: float,
    eps_safe: float,
    swapped: bool,
    critic: str,
) -> Any:
    return _step_message(
        f,
        T.DECISION,
        t_ns,
        episode,
        step,
        proposed_action=np.asarray(proposed, dtype=np.float64),
        executed_action=np.asarray(executed, dtype=np.float64),
        risk=float(risk),
        eps_safe=float(eps_safe),
        swapped=bool(swapped),
        critic=critic,
    )


# EpisodeEvent ----------------------------------------------------------------------------------
EPISODE_KINDS = ("task", "recovery", "failure", "online")
OUTCOMES = ("success", "failure", "timeout", "aborted")


def make_event(
    f: MessageFactory,
    *,
    t_ns: int,
    start: bool,
    episode: int,
    task: str,
    kind: str,
    outcome: str = "",
    policy_version: int = 0,
    policy: str = "",
    seed: int = -1,
    steps: int = 0,
    episode_return: float = 0.0,
) -> Any:
    if kind not in EPISODE_KINDS:
        raise ValueError(f"episode kind must be one of {EPISODE_KINDS}, got {kind!r}")
    if not start and outcome not in OUTCOMES:
        raise ValueError(f"episode outcome must be one of {OUTCOMES}, got {outcome!r}")
    cls = f.cls(T.EVENT)
    return f.new(
        T.EVENT,
        header=header(f, t_ns),
        event=int(cls.EVENT_START if start else cls.EVENT_END),
        episode=episode,
        task=task,
        kind=kind,
        outcome=outcome,
        policy_version=policy_version,
        policy=policy,
        seed=int(seed),
        steps=int(steps),
        episode_return=float(episode_return),
    )


def is_start(msg: Any, f: MessageFactory) -> bool:
    return int(msg.event) == int(f.cls(T.EVENT).EVENT_START)


# StepFeedback ----------------------------------------------------------------------------------
def make_feedback(
    f: MessageFactory,
    *,
    t_ns: int,
    episode: int,
    step: int,
    reward: float,
    cost: float,
    failure: bool,
    success: bool,
    terminated: bool,
    truncated: bool,
) -> Any:
    return _step_message(
        f,
        T.FEEDBACK,
        t_ns,
        episode,
        step,
        reward=float(reward),
        cost=float(cost),
        failure=bool(failure),
        success=bool(success),
        terminated=bool(terminated),
        truncated=bool(truncated),
    )


class TypestoreFactory:
    """MessageFactory over the rosbags typestore: used in process, in bags and in tests."""

    def __init__(self) -> None:
        self.store = T.farl_typestore()

    def cls(self, typename: str) -> type:
        try:
            return self.store.types[typename]
        except KeyError:
            raise KeyError(f"unknown message type {typename!r}") from None

    def new(self, typename: str, **fields: Any) -> Any:
        """A message of `typename`; fields not given take ROS's defaults (zero, empty, nested defaults), as
        rosidl's classes give them, so both factories take the same partial calls (a MarkerArray)."""
        cls = self.cls(typename)
        for name, (kind, detail) in self.store.fielddefs[typename][1]:
            if name not in fields:
                fields[name] = self._default(kind, detail)
        for name, ftype in cls.__annotations__.items():  # rosbags wants numpy for numeric arrays
            if name in fields and "np.ndarray" in str(ftype) and not isinstance(fields[name], np.ndarray):
                dtype = str(ftype).split("np.dtype[np.")[1].split("]")[0]
                fields[name] = np.asarray(fields[name], dtype=dtype)
        return cls(**fields)

    def _default(self, kind: Any, detail: Any) -> Any:
        from rosbags.interfaces import Nodetype

        if kind == Nodetype.NAME:
            return self.new(detail)
        if kind == Nodetype.BASE:
            base = detail[0]
            return "" if base in ("string", "wstring") else False if base == "bool" else 0.0 if "float" in base else 0
        (sub_kind, sub), length = detail
        if sub_kind == Nodetype.BASE and sub[0] not in ("string", "wstring"):
            dtype = {"bool": "bool", "byte": "uint8", "char": "uint8", "float32": "float32", "float64": "float64"}
            return np.zeros(length if kind == Nodetype.ARRAY else 0, dtype=dtype.get(sub[0], sub[0]))
        return [self._default(sub_kind, sub) for _ in range(length if kind == Nodetype.ARRAY else 0)]

    def serialize(self, msg: Any, typename: str) -> bytes:
        return bytes(self.store.serialize_cdr(msg, typename))

    def deserialize(self, raw: bytes, typename: str) -> Any:
        return self.store.deserialize_cdr(raw, typename)
