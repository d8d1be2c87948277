"""ros2 launch farl_bringup bounded_soccer.launch.py [config:=FILE] [episodes:=N] [use_sim_time:=true] [out_dir:=DIR]

Arguments are explained in farl_bringup.launch_graph.
"""

from farl_bringup.launch_graph import launch_description


def generate_launch_description():
    return launch_description("bounded_soccer")
