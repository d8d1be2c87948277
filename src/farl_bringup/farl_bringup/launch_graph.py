"""Launch description of a task's graph (used by launch/<task>.launch.py under ROS 2 Jazzy).

Arguments: `config` (default: this package's config/<task>.yaml), `use_sim_time` (false),
`episodes` (default: the config's), `out_dir` (default: the config's recorder.out_dir).
When the robot node has run its episodes and exits, the whole launch shuts down.
"""

from __future__ import annotations

import os


def launch_description(task: str):
    from ament_index_python.packages import get_package_share_directory
    from launch.actions import DeclareLaunchArgument, EmitEvent, OpaqueFunction, RegisterEventHandler
    from launch.event_handlers import OnProcessExit
    from launch.events import Shutdown
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node as RosNode

    from farl_bringup.graph_spec import graph_spec
    from farl_common.config import load_config
    from launch import LaunchDescription

    default_config = os.path.join(get_package_share_directory("farl_bringup"), "config", f"{task}.yaml")

    def nodes(context):
        cfg = load_config(LaunchConfiguration("config").perform(context))
        episodes = LaunchConfiguration("episodes").perform(context)
        out_dir = LaunchConfiguration("out_dir").perform(context)
        if out_dir:
            cfg.recorder.out_dir = out_dir
        use_sim_time = LaunchConfiguration("use_sim_time").perform(context).lower() in ("true", "1")
        actions = []
        robot = None
        for spec in graph_spec(cfg, episodes=int(episodes) if episodes else None):
            node = RosNode(
                package=spec.package,
                executable=spec.executable,
                name=spec.name,
                parameters=[{**spec.ros_parameters(), "use_sim_time": use_sim_time}],
                remappings=spec.remappings(),
                output="screen",
                emulate_tty=True,
            )
            actions.append(node)
            if spec.executable.endswith("robot_node"):
                robot = node
        if robot is not None:
            actions.append(
                RegisterEventHandler(
                    OnProcessExit(
                        target_action=robot,
                        on_exit=[EmitEvent(event=Shutdown(reason="robot node finished its episodes"))],
                    )
                )
            )
        return actions

    return LaunchDescription(
        [
            DeclareLaunchArgument("config", default_value=default_config, description="task config file"),
            DeclareLaunchArgument("use_sim_time", default_value="false", description="follow /clock"),
            DeclareLaunchArgument("episodes", default_value="", description="episodes to run (default: config)"),
            DeclareLaunchArgument("out_dir", default_value="", description="episode bag folder (default: config)"),
            OpaqueFunction(function=nodes),
        ]
    )
