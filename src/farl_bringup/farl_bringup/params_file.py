"""A node's parameters as a ROS 2 params file that rcl reads back exactly as farl wrote them.

`ros2 launch` hands every node its parameters through a params file parsed by rcl's YAML parser,
which reads YAML 1.1: an unquoted `y`, `n`, `yes`, `no`, `on` or `off` becomes a bool, and a list
mixing it with strings is refused ("Sequence should be of same type"), so the node never starts.
launch_ros writes a `parameters=[dict]` with PyYAML, which leaves `y` unquoted; farl therefore
writes each node's file itself, with every string double-quoted, and passes the launch its path.

rcl cannot type an empty list (it reads `[]` as "not set"): an empty list is left out, so the node
keeps its declared (typed, empty) default; an empty list over a non-empty default is refused.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any

import yaml

from farl_common.config import ConfigError
from farl_common.runtime.rclpy_host import param_default


class _Quoted(str):
    """A string value: always double-quoted (keys stay plain)."""


class _ParamsDumper(yaml.SafeDumper):
    """Parameter values as rcl reads them back: strings double-quoted, lists on one line."""


_ParamsDumper.add_representer(
    _Quoted, lambda dumper, value: dumper.represent_scalar("tag:yaml.org,2002:str", str(value), style='"')
)
_ParamsDumper.add_representer(
    list, lambda dumper, value: dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=True)
)


def _quoted(value: Any) -> Any:
    if isinstance(value, str):
        return _Quoted(value)
    if isinstance(value, list):
        return [_quoted(v) for v in value]
    return value


def ros_parameter_values(node_name: str, params: Any) -> dict[str, Any]:
    """The values of `params` (a node's Params dataclass) as a params file holds them (strings marked for
    double quotes)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(params):
        value = getattr(params, f.name)
        if isinstance(value, tuple):
            value = list(value)
        if value is None:
            raise ConfigError(f"{node_name}: parameter {f.name} has no value (ROS 2 parameters cannot be None)")
        if isinstance(value, list) and not value:
            if param_default(f):
                raise ConfigError(
                    f"{node_name}: parameter {f.name} is an empty list, which a ROS 2 params file cannot carry "
                    f"(its default is {param_default(f)!r})"
                )
            continue
        out[f.name] = _quoted(value)
    return out


def params_yaml(node_name: str, params: Any) -> str:
    """The params file's text: `/**` (whatever the namespace) -> ros__parameters."""
    doc = {"/**": {"ros__parameters": ros_parameter_values(node_name, params)}}
    return yaml.dump(doc, Dumper=_ParamsDumper, sort_keys=True, width=1000)


def write_params_file(node_name: str, params: Any, folder: str | Path | None = None) -> Path:
    """Write the params file for one node (into `folder`, or a new temporary folder) and return its path."""
    folder = Path(folder) if folder is not None else Path(tempfile.mkdtemp(prefix="farl_params_"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{node_name}.yaml"
    path.write_text(params_yaml(node_name, params))
    return path
