"""ros2 launch farl_bringup safe_reach.launch.py [arg:=value ...]; arguments: --show-args."""

from farl_bringup.launch_graph import launch_description


def generate_launch_description():
    return launch_description("safe_reach")
