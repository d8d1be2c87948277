"""ros2 launch farl_bringup fragile_push_wall.launch.py [mode:=sim|real] [robot_ip:=ADDR]
[shield:=world_model|q_risk|reachability|none] [policy:=learned|scripted|teleop]
[kind:=task|recovery|failure] [device:=spacemouse|keyboard|scripted] [takeover:=true]
[episodes:=N] [out_dir:=DIR] [config:=FILE]
[camera:=realsense|topics] [record_images:=true]

Arguments are explained in farl_bringup.launch_graph (LAUNCH_ARGUMENTS); `ros2 launch ... --show-args` lists them.
"""

from farl_bringup.launch_graph import launch_description


def generate_launch_description():
    return launch_description("fragile_push_wall")
