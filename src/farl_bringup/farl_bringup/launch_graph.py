"""Launch description of a task's graph (used by launch/<task>.launch.py under ROS 2 Jazzy).

Arguments (each documented in `LAUNCH_ARGUMENTS`): `mode` (sim | real), `config`, `robot_ip`,
`shield`, `policy` (learned | scripted | teleop | fosp), `kind`, `device`, `takeover`, `episodes`,
`out_dir`, `camera` (realsense | topics), `record_images`, `namespace`, `role` (all | robot |
learner). `policy:=teleop` records demonstrations of `kind` with the SpaceMouse (or keyboard);
`takeover:=true` lets a person take over from the policy; `policy:=fosp` runs FOSP's policy and
learner. `mode:=sim` (the default) runs the task's MuJoCo scene; `mode:=real` reads
`config/franka_<task>.yaml` and starts the franky driver instead of the sim robot. When the robot
node has run its episodes and exits, or any node exits, the whole launch shuts down (`role:=learner`
has no robot node: it runs until Ctrl-C, waiting for episodes while the robot side is away); a node that
exits with an error (or dies of a signal) makes `ros2 launch` exit 1 with one line naming it
(`node_exited`).

The argument handling is plain Python (`launch_config`), tested without ROS.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from farl_common.config import ConfigError, FarlConfig, load_config

REAL_TASKS = {
    "fragile_push_wall": "franka_fragile_push_wall",
    "disturbed_push": "franka_disturbed_push",
    "bounded_soccer": "franka_bounded_soccer",
    "safe_reach": "franka_safe_reach",
}
"""The papers' real-robot tasks (FARL Sec. VI.C.1, FOSP's SafeReach) and the sim task each one's launch
file shares."""

LAUNCH_ARGUMENTS: dict[str, tuple[str, str]] = {
    "mode": ("sim", "sim: FailureBench in MuJoCo; real: a Panda through franky (config/franka_<task>.yaml)"),
    "config": ("", "task config file (default: this package's config for the task and mode)"),
    "robot_ip": ("", "real mode: the robot's FCI address (default: the config's robot.robot_ip)"),
    "shield": ("", "world_model | q_risk | reachability | none (default: the config's)"),
    "policy": ("", "learned | scripted | teleop | fosp (default: the config's; teleop records demonstrations)"),
    "kind": ("task", "policy:=teleop: the demonstrations' kind, task | recovery | failure"),
    "device": ("", "spacemouse | keyboard | scripted (default: the config's teleop.device)"),
    "takeover": ("", "true: a person may take over from the policy (default: the config's teleop.takeover)"),
    "episodes": ("", "episodes to run (default: the config's)"),
    "out_dir": ("", "episode bag folder (default: the config's recorder.out_dir)"),
    "camera": (
        "",
        "real mode: realsense (perception opens the D435) | topics (realsense2_camera's, with "
        "align_depth.enable:=true) (default: the config's perception.source)",
    ),
    "record_images": ("", "true: episode bags keep the camera frames, for farl perception train-detector"),
    "namespace": ("", "put the graph's nodes and topics under this namespace (two arms on one network)"),
    "role": (
        "all",
        "all: the whole graph here | robot: robot, perception, policy and shield (the robot PC) | learner: "
        "recorder and learner (the training PC); the two halves meet over DDS only",
    ),
}

_NAMESPACE = re.compile(r"^/?[A-Za-z][A-Za-z0-9_]*(/[A-Za-z][A-Za-z0-9_]*)*$")


def absolute_paths(cfg: FarlConfig, base: str | Path) -> list[tuple[str, str]]:
    """Relative files and folders of the config made absolute against `base` (the directory
    `ros2 launch` was started in, as for `farl sim`), so every node, whatever its own working
    directory, finds the run and writes its bags where the launch said. Returns (what, path) pairs."""
    base = Path(base)
    fields = [
        ("run", cfg.learner, "run_dir"),
        ("FOSP run", cfg.learner, "fosp_run_dir"),
        ("bags", cfg.recorder, "out_dir"),
        ("policy checkpoint", cfg.policy, "checkpoint"),
        ("calibration", cfg.perception, "calibration"),
        ("YOLO weights", cfg.perception, "yolo_weights"),
        ("recorded frames", cfg.perception, "bag"),
    ]
    out = []
    for what, section, name in fields:
        value = getattr(section, name)
        if value:
            if not Path(value).is_absolute():
                setattr(section, name, str(base / value))
            out.append((what, getattr(section, name).replace("{task}", cfg.task)))
    return out


def default_config(task: str, mode: str, config_dir: str | Path) -> Path:
    """The config file `mode` reads for `task`; a clear error where the task has no real version."""
    if mode == "sim":
        return Path(config_dir) / f"{task}.yaml"
    if mode == "real":
        if task not in REAL_TASKS:
            raise ConfigError(
                f"mode:=real: {task} has no real-robot version; the paper's real tasks are {', '.join(REAL_TASKS)}"
            )
        return Path(config_dir) / f"{REAL_TASKS[task]}.yaml"
    raise ConfigError(f"mode:={mode}: choose sim or real")


def launch_config(task: str, args: dict[str, str], config_dir: str | Path) -> FarlConfig:
    """The validated config after the launch arguments are applied."""
    mode = args.get("mode") or "sim"
    cfg = load_config(args.get("config") or default_config(task, mode, config_dir))
    if mode == "real" and cfg.robot.backend != "franky":
        raise ConfigError(f"mode:=real: {args.get('config')} has robot.backend {cfg.robot.backend!r}, not franky")
    if mode == "sim" and cfg.robot.backend != "sim":
        raise ConfigError(f"mode:=sim: {args.get('config')} drives a real robot (robot.backend: franky)")
    if args.get("robot_ip"):
        cfg.robot.robot_ip = args["robot_ip"]
    if shield := args.get("shield"):
        if shield == "none":
            cfg.shield.enabled = False
        elif shield in ("world_model", "q_risk", "reachability"):
            cfg.shield.enabled, cfg.shield.critic = True, shield  # type: ignore[assignment]
        else:
            raise ConfigError(f"shield:={shield}: choose world_model, q_risk, reachability or none")
    if policy := args.get("policy"):
        if policy not in ("learned", "scripted", "teleop", "fosp"):
            raise ConfigError(f"policy:={policy}: choose learned, scripted, teleop or fosp")
        cfg.policy.kind = policy  # type: ignore[assignment]
    if cfg.policy.kind == "teleop":
        kind = args.get("kind") or "task"
        if kind not in ("task", "recovery", "failure"):
            raise ConfigError(f"kind:={kind}: demonstrations are task, recovery or failure")
        cfg.episodes.kind = kind  # type: ignore[assignment]
    if device := args.get("device"):
        if device not in ("spacemouse", "keyboard", "scripted"):
            raise ConfigError(f"device:={device}: choose spacemouse, keyboard or scripted")
        cfg.teleop.device = device  # type: ignore[assignment]
    if takeover := args.get("takeover"):
        if takeover.lower() not in ("true", "false"):
            raise ConfigError(f"takeover:={takeover}: true or false")
        cfg.teleop.takeover = takeover.lower() == "true"
    if episodes := args.get("episodes"):
        if not episodes.isdigit() or int(episodes) < 1:
            raise ConfigError(f"episodes:={episodes}: expected a whole number of episodes, at least 1")
        cfg.episodes.count = int(episodes)
    if args.get("out_dir"):
        cfg.recorder.out_dir = args["out_dir"]
    if camera := args.get("camera"):
        if mode != "real" or camera not in ("realsense", "topics"):
            raise ConfigError(f"camera:={camera}: mode:=real takes realsense or topics (the sim renders its own)")
        cfg.perception.source = camera  # type: ignore[assignment]
    if (ns := args.get("namespace")) and not _NAMESPACE.match(ns):
        raise ConfigError(f"namespace:={ns}: letters, digits and _ in /-separated parts, each starting with a letter")
    if record := args.get("record_images"):
        if record.lower() not in ("true", "false"):
            raise ConfigError(f"record_images:={record}: true or false")
        cfg.perception.record_images = record.lower() == "true"
    return cfg


def preflight(cfg: FarlConfig) -> None:
    """The files the graph cannot start without, checked before any node starts, so a launch from the
    wrong folder or without a pre-training ends in one line naming the file, not in one traceback per
    node (each node would fail on its own, in whatever order their imports finish)."""
    from farl_bringup.graph_spec import fosp_run_dir, run_dir

    missing: list[tuple[str, str, str]] = []
    if cfg.policy.kind == "learned":
        policy = Path(run_dir(cfg)) / "task_policy.pt"
        missing.append(("the pre-trained task policy", str(policy), "farl pretrain, or farl sim once"))
    if cfg.policy.kind == "fosp":
        run = Path(fosp_run_dir(cfg)) / "fosp_run.json"
        missing.append(("the FOSP run", str(run), "farl pretrain --method fosp, or farl sim --policy fosp once"))
    pc = cfg.perception
    if pc.enabled and cfg.robot.backend == "franky" and pc.source in ("realsense", "topics"):
        if not pc.calibration:
            raise ConfigError(f"{cfg.task}: perception.calibration is empty (farl perception calibrate)")
        missing.append(("the camera calibration", pc.calibration, "farl perception calibrate"))
    if pc.enabled and pc.yolo_weights:
        missing.append(("the YOLO weights", pc.yolo_weights, "farl perception train-detector"))
    if pc.enabled and pc.source == "bag" and pc.bag:
        missing.append(("the recorded frames", pc.bag, "a bag recorded with record_images:=true"))
    for what, path, how in missing:
        if not Path(path).exists():
            raise ConfigError(
                f"{cfg.task}: {what} {path} does not exist ({how}; relative paths are resolved against "
                f"the folder ros2 launch started in, {os.getcwd()})"
            )


class NodeFailed(RuntimeError):
    """A required node exited with an error: raised inside the launch loop, which logs it in one
    line ("Caught exception in launch"), shuts the graph down and makes `ros2 launch` exit 1."""


def node_exited(name: str, executable: str, returncode: int | None, shutting_down: bool, last_error: str = "") -> str:
    """What a node's exit means for the launch: the reason to shut the graph down, or NodeFailed.

    Every node is required: the graph cannot run without any of them. Exit 0 is a node that finished
    (the robot after its episodes) or was told to stop; while the launch is already shutting down
    (Ctrl-C, another node's exit) no code counts as a new failure. `last_error` is the node's own last
    line on stderr (its one-line reason), which the launch repeats as the cause."""
    if returncode == 0 or shutting_down:
        return "robot node finished its episodes" if executable == "robot_node" else f"{name} exited"
    how = (
        f"died of signal {-returncode}"
        if returncode is not None and returncode < 0
        else f"exited with code {returncode}"
    )
    cause = f": {last_error}" if last_error else " (see the node's last lines above)"
    raise NodeFailed(f"{name} {how}{cause}")


NODE_NAMESPACE = "farl"
"""Every farl node runs under this namespace (`/farl/robot`, `/farl/policy`, ...), so its names do
not clash with another graph's `/robot` or `/policy` on the same network."""


def node_namespace(namespace: str) -> str:
    """The nodes' namespace for `namespace:=` (`/farl`, or `/arm1/farl`)."""
    ns = namespace.strip("/")
    return f"/{ns}/{NODE_NAMESPACE}" if ns else f"/{NODE_NAMESPACE}"


def last_line(text: str) -> str:
    """The last non-empty line of a node's stderr chunk, without ANSI colours."""
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in text.splitlines()]
    return next((line for line in reversed(lines) if line), "")


def launch_description(task: str):
    from ament_index_python.packages import get_package_share_directory
    from launch.actions import DeclareLaunchArgument, EmitEvent, LogInfo, OpaqueFunction, RegisterEventHandler
    from launch.event_handlers import OnProcessExit, OnProcessIO
    from launch.events import Shutdown
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node as RosNode

    from farl_bringup.graph_spec import for_role, graph_spec
    from farl_bringup.params_file import write_params_file
    from launch import LaunchDescription
    from launch import logging as launch_logging

    config_dir = os.path.join(get_package_share_directory("farl_bringup"), "config")

    def nodes(context):
        args = {name: LaunchConfiguration(name).perform(context) for name in LAUNCH_ARGUMENTS}
        cfg = launch_config(task, args, config_dir)
        paths = absolute_paths(cfg, os.getcwd())
        preflight(cfg)
        namespace = args.get("namespace", "")
        specs = for_role(cfg, graph_spec(cfg), args.get("role") or "all")
        # beside this launch's own logs (~/.ros/log/<launch>/, or $ROS_LOG_DIR), where they are looked
        # for and cleaned with them, not one more folder in /tmp per launch
        params_dir = Path(launch_logging.launch_config.log_dir) / "farl_params"
        params_dir.mkdir(parents=True, exist_ok=True)
        paths.append(("params", str(params_dir)))
        actions = [LogInfo(msg=f"farl {cfg.task}: " + "; ".join(f"{what} {path}" for what, path in paths))]
        errors: dict[str, str] = {}
        for spec in specs:
            node = RosNode(
                package=spec.package,
                executable=spec.executable,
                name=spec.name,
                namespace=node_namespace(namespace),
                # No use_sim_time: every node runs on wall time, and nothing in the graph publishes /clock.
                parameters=[str(write_params_file(spec.name, spec.params, params_dir))],
                remappings=spec.remappings(namespace),
                output="screen",
                emulate_tty=True,
            )
            actions.append(node)

            def on_stderr(event, spec=spec):
                if line := last_line(event.text.decode(errors="replace")):
                    errors[spec.name] = line

            def on_exit(event, ctx, spec=spec):
                reason = node_exited(
                    spec.name, spec.executable, event.returncode, ctx.is_shutdown, errors.get(spec.name, "")
                )
                return [EmitEvent(event=Shutdown(reason=reason))]

            actions.append(RegisterEventHandler(OnProcessIO(target_action=node, on_stderr=on_stderr)))
            actions.append(RegisterEventHandler(OnProcessExit(target_action=node, on_exit=on_exit)))
        return actions

    return LaunchDescription(
        [
            *(
                DeclareLaunchArgument(name, default_value=default, description=doc)
                for name, (default, doc) in LAUNCH_ARGUMENTS.items()
            ),
            OpaqueFunction(function=nodes),
        ]
    )
