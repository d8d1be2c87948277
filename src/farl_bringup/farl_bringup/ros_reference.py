"""The ROS 2 reference page (docs/ros2-reference.md), written from the nodes' own declarations: each
executable's node name, topics with types and QoS, timers and parameters, and the launch arguments.

    python -m farl_bringup.ros_reference > docs/ros2-reference.md

A test compares the committed page with this output, so the docs cannot drift from the code.
"""

from __future__ import annotations

import sys
import typing
from typing import Any

from farl_bringup.launch_graph import LAUNCH_ARGUMENTS, NODE_NAMESPACE
from farl_common.runtime.node import Input, Node, SyncInput
from farl_common.runtime.rclpy_host import param_default
from farl_common.topics import DEFAULT_TOPICS

QOS = {
    "default": "reliable, volatile, keep last 10",
    "events": "reliable, transient local, keep last 100",
    "latest": "reliable, transient local, keep last 1",
    "sensor": "best effort, volatile, keep last 5",
}


def executables() -> list[tuple[str, str, type[Node]]]:
    """(package, executable, node class) of every farl ROS 2 executable."""
    from farl_common.recorder_node import EpisodeRecorderNode
    from farl_learning.fosp_learner_node import FOSPLearnerNode
    from farl_learning.fosp_policy_node import FOSPPolicyNode
    from farl_learning.learner_node import LearnerNode
    from farl_learning.policy_node import PolicyNode
    from farl_perception.perception_node import PerceptionNode
    from farl_robot.robot_node import RobotNode
    from farl_safety_shield.shield_node import ShieldNode
    from farl_sim.scripted_policy_node import ScriptedPolicyNode
    from farl_teleop.teleop_node import TeleopNode

    return [
        ("farl_robot", "robot_node", RobotNode),
        ("farl_learning", "policy_node", PolicyNode),
        ("farl_safety_shield", "shield_node", ShieldNode),
        ("farl_learning", "learner_node", LearnerNode),
        ("farl_common", "episode_recorder_node", EpisodeRecorderNode),
        ("farl_perception", "perception_node", PerceptionNode),
        ("farl_teleop", "teleop_node", TeleopNode),
        ("farl_sim", "scripted_policy_node", ScriptedPolicyNode),
        ("farl_learning", "fosp_policy_node", FOSPPolicyNode),
        ("farl_learning", "fosp_learner_node", FOSPLearnerNode),
    ]


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _code(value: Any) -> str:
    """A default as inline code; an empty string as `""`, which a table would otherwise lose."""
    return f"`{_cell(value)}`" if value != "" else '`""`'


def _type_name(hint: Any) -> str:
    name = getattr(hint, "__name__", None)
    if typing.get_origin(hint) is typing.Literal:
        return " \\| ".join(repr(a) for a in typing.get_args(hint))
    if typing.get_origin(hint) in (list, tuple):
        inner = ", ".join(_type_name(a) for a in typing.get_args(hint) if a is not Ellipsis)
        return f"{typing.get_origin(hint).__name__}[{inner}]"
    return name or str(hint)


def _topics(node_cls: type[Node]) -> list[str]:
    rows = []
    for inp in node_cls.inputs:
        pairs = (
            [(inp.topic, inp.typename)]
            if isinstance(inp, Input)
            else list(zip(inp.topics, inp.typenames, strict=True))
            if isinstance(inp, SyncInput)
            else []
        )
        for short, typename in pairs:
            rows.append(f"| in | `{DEFAULT_TOPICS.get(short, short)}` | `{typename}` | {QOS[inp.qos]} |")
    for out in node_cls.outputs:
        rows.append(f"| out | `{DEFAULT_TOPICS.get(out.topic, out.topic)}` | `{out.typename}` | {QOS[out.qos]} |")
    return rows


def node_section(package: str, executable: str, node_cls: type[Node]) -> list[str]:
    doc = (sys.modules[node_cls.__module__].__doc__ or "").strip()
    lines = [
        f"## `/{NODE_NAMESPACE}/{node_cls.name}`",
        "",
        f"`ros2 run {package} {executable}`. {doc.splitlines()[0] if doc else ''}",
        "",
        "| | topic | type | QoS |",
        "|---|---|---|---|",
        *_topics(node_cls),
        "",
    ]
    for timer in node_cls.timers:
        lines += [f"Timer: `{timer.callback}` at the `{timer.rate_param}` parameter's rate.", ""]
    hints = typing.get_type_hints(node_cls.Params)
    lines += ["| parameter (read-only) | type | default | description |", "|---|---|---|---|"]
    for f in node_cls.param_fields():
        doc = f.metadata.get("doc", "")
        lines.append(f"| `{f.name}` | {_type_name(hints[f.name])} | {_code(param_default(f))} | {_cell(doc)} |")
    return [*lines, ""]


def ros_reference() -> str:
    lines = [
        "# ROS 2 reference",
        "",
        "Generated from the node classes' declarations by `python -m farl_bringup.ros_reference`; a test",
        "fails when this page and the code differ. Topic names are the defaults (a config's `topics:` and",
        "`namespace:=` move them); every node runs under the namespace `/farl`. Parameters are read once",
        "at start and declared read-only.",
        "",
        "## Launch arguments",
        "",
        "`ros2 launch farl_bringup <task>.launch.py [argument:=value ...]`",
        "",
        "| argument | default | meaning |",
        "|---|---|---|",
    ]
    for name, (default, doc) in LAUNCH_ARGUMENTS.items():
        lines.append(f"| `{name}` | {_code(default)} | {_cell(doc)} |")
    lines.append("")
    for package, executable, node_cls in executables():
        lines += node_section(package, executable, node_cls)
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    print(ros_reference(), end="")
