"""ros2 launch farl_bringup bounded_soccer.launch.py [arg:=value ...]; arguments: --show-args."""

from farl_bringup.launch_graph import launch_description


def generate_launch_description():
    return launch_description("bounded_soccer")
