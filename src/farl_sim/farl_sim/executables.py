"""The ROS 2 executables of farl_sim (its setup.py's console_scripts): each imports its node's module
only when it runs (farl_common.executable)."""

from farl_common.executable import node_main

scripted_policy_node = node_main("farl_sim.scripted_policy_node", "ScriptedPolicyNode")
