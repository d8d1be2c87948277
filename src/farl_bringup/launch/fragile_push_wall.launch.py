"""ros2 launch farl_bringup fragile_push_wall.launch.py [arg:=value ...]; arguments: --show-args."""

from farl_bringup.launch_graph import launch_description


def generate_launch_description():
    return launch_description("fragile_push_wall")
