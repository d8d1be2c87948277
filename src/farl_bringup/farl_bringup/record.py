"""`farl record`: a person records demonstrations with a SpaceMouse or the keyboard, without ROS.

The graph is the one `ros2 launch ... policy:=teleop` starts (`graph_spec`, policy.kind teleop):
the robot node (FailureBench in sim mode, the franky driver in real mode, behind the same hard
envelope), the teleop node and the episode recorder, hosted in process on the wall clock. Each kept
episode is one bag, labelled with its kind and outcome; the one in progress when the program stops
is dropped, never left looking whole.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from farl_bringup.graph_spec import bag_dir, graph_spec
from farl_common.config import ConfigError, FarlConfig, config_dir, load_config
from farl_common.recorder_node import EpisodeRecorderNode
from farl_common.runtime.inprocess import InProcessRuntime
from farl_common.runtime.node import NodeError
from farl_robot.robot_node import RobotNode
from farl_teleop.operators import Operator
from farl_teleop.teleop_node import TeleopNode


@dataclass
class RecordResult:
    bags: list[Path]
    discarded: list[Path]
    out_dir: Path
    unplugs: int


def record_config(task: str, mode: str, config: str | None = None) -> FarlConfig:
    """The task's config for recording: `config/<task>.yaml` in sim mode, `config/franka_<task>.yaml` on the arm."""
    if config:
        cfg = load_config(config)
    else:
        name = task if mode == "sim" or task.startswith("franka_") else f"franka_{task}"
        path = config_dir() / f"{name}.yaml"
        if not path.is_file():
            raise ConfigError(f"{path}: no {mode}-mode config for task {task!r}; pass --config")
        cfg = load_config(path)
    want = "sim" if mode == "sim" else "franky"
    if cfg.robot.backend != want:
        raise ConfigError(f"{cfg.task}: robot.backend is {cfg.robot.backend}, but --mode {mode} needs {want}")
    return cfg


def run_record(
    cfg: FarlConfig,
    *,
    kind: str,
    device: str,
    out: str | Path,
    episodes: int = 0,
    seed: int | None = None,
    realtime: bool = True,
    operator: Operator | None = None,
    status_line: bool = True,
    until_s: float | None = None,
    runtime: InProcessRuntime | None = None,
    view: bool = False,
    show: Callable[[np.ndarray], None] | None = None,
    live_view: str | None = None,
) -> RecordResult:
    """Record until `episodes` are kept (0: until Ctrl-C). `view` (sim only) shows the scene in a window
    (`farl_teleop.sim_view`; `show` replaces the window). `live_view` (desktop | web | none) adds the
    rerun live view (`farl_bringup.live_view`), each episode's recording kept beside its bag.

    `operator` replaces the device and `runtime` the wall-clock host (tests: fake HID reports timed
    on the runtime's simulated clock)."""
    cfg = dataclasses.replace(
        cfg,
        policy=dataclasses.replace(cfg.policy, kind="teleop"),
        episodes=dataclasses.replace(cfg.episodes, kind=kind),
        teleop=dataclasses.replace(cfg.teleop, device=device, takeover=False),
        recorder=dataclasses.replace(cfg.recorder, out_dir=str(out)),
    )
    specs = graph_spec(cfg, episodes, seed)
    with runtime or InProcessRuntime(realtime=realtime) as rt:
        nodes = []
        for spec in specs:
            if spec.node_class is TeleopNode:
                params = dataclasses.replace(spec.params, status_line=status_line)
                nodes.append(rt.add(TeleopNode(params, operator=operator), spec.topics))
            else:
                nodes.append(rt.add(spec.node_class(spec.params), spec.topics))
        robot = next(n for n in nodes if isinstance(n, RobotNode))
        recorder = next(n for n in nodes if isinstance(n, EpisodeRecorderNode))
        teleop = next(n for n in nodes if isinstance(n, TeleopNode))
        if view and cfg.robot.backend == "sim":
            from farl_teleop.sim_view import SimViewNode, SimViewParams

            rt.add(SimViewNode(SimViewParams(), robot.driver.env, teleop.status, show), specs[0].topics)
        if live_view is not None:
            from farl_bringup.live_view import live_view_node

            rt.add(live_view_node(cfg, live_view), specs[0].topics)
        rt.run(until_s=until_s)
        if robot.exit_code:
            raise NodeError(f"the robot stopped: {robot.halt_reason}")
    return RecordResult(list(recorder.closed), list(recorder.discarded), Path(bag_dir(cfg)), teleop.unplugs)
