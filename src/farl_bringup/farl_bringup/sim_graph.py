"""The mocked sim mode: the farl graph of a task config in one process on a simulated clock.

The same nodes, parameters and topics as `ros2 launch farl_bringup <task>.launch.py` (both come
from `graph_spec`), hosted by the in-process runtime: runs as fast as the CPU allows while
simulated time advances at the config's `rate_hz`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from farl_bringup.graph_spec import bag_dir, graph_spec
from farl_common.config import ConfigError, FarlConfig
from farl_common.recorder_node import EpisodeRecorderNode
from farl_common.runtime.inprocess import InProcessRuntime
from farl_perception.mujoco_source import MujocoCameraSource
from farl_perception.perception_node import PerceptionNode
from farl_robot.robot_node import RobotNode
from farl_safety_shield.shield_node import ShieldNode
from farl_teleop.teleop_node import TeleopNode

EVENTS_PER_REPORT = 2000
"""Events the runtime processes between looks at finished episodes (progress lines, Ctrl-C checks)."""


@dataclass
class SimResult:
    episodes: list[dict[str, Any]]
    bags: list[Path]
    out_dir: Path
    refused: int
    held_ticks: int


def run_sim(
    cfg: FarlConfig,
    episodes: int | None = None,
    seed: int | None = None,
    run_id: str = "",
    on_episode: Callable[[dict[str, Any]], None] | None = None,
    view: str | None = None,
) -> SimResult:
    """`view` (desktop | web | none) adds the live view (`farl_bringup.live_view`): each episode's
    recording beside its bag, and the viewer it names following along."""
    if cfg.robot.backend != "sim":
        raise ConfigError(
            f"{cfg.task}: robot.backend is {cfg.robot.backend}: `farl sim` runs the simulated arm on a simulated "
            "clock; a real arm runs under `ros2 launch farl_bringup <task>.launch.py mode:=real`"
        )
    specs = graph_spec(cfg, episodes, seed, run_id)
    for spec in specs:
        if spec.node_class is ShieldNode:  # its look-ahead costs a rollout per step: only for a view
            spec.params.imagined_path = view is not None
    with InProcessRuntime() as rt:
        nodes = []
        for spec in specs:
            if spec.node_class is PerceptionNode:  # the camera renders the sim robot's own scene
                robot = next(n for n in nodes if isinstance(n, RobotNode))
                source = MujocoCameraSource(robot.driver.env, spec.params.width_px, spec.params.height_px)
                nodes.append(rt.add(PerceptionNode(spec.params, source=source), spec.topics))
            else:
                nodes.append(rt.add(spec.node_class(spec.params), spec.topics))
        robot = next(n for n in nodes if isinstance(n, RobotNode))
        recorder = next(n for n in nodes if isinstance(n, EpisodeRecorderNode))
        if view is not None:
            from farl_bringup.live_view import live_view_node

            rt.add(live_view_node(cfg, view), dict(cfg.topics))
        shield = next((n for n in nodes if isinstance(n, ShieldNode)), None)
        teleop = next((n for n in nodes if isinstance(n, TeleopNode)), None)
        reported = 0

        def report_finished() -> None:
            nonlocal reported
            for ep in robot.finished[reported:]:
                ep["swaps"] = shield.swaps_by_episode.get(ep["episode"], 0) if shield is not None else None
                # a person stepped in: an IR failure (paper Sec. VI); None where no person could
                ep["takeover_steps"] = teleop.takeovers_by_episode.get(ep["episode"], 0) if teleop else None
                if on_episode is not None:
                    on_episode(ep)
            reported = len(robot.finished)

        try:
            while not rt.shutdown_requested and rt.run(max_events=EVENTS_PER_REPORT):
                report_finished()
        finally:  # Ctrl-C inside a batch: the episodes it finished are reported all the same
            report_finished()
    refused = sum(getattr(n, "refused", 0) for n in nodes)
    return SimResult(robot.finished, recorder.closed, Path(bag_dir(cfg)), refused, robot.held_ticks)
