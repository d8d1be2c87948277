"""The ROS 2 executables of farl_learning (its setup.py's console_scripts): each imports its node's module
only when it runs (farl_common.executable)."""

from farl_common.executable import node_main

policy_node = node_main("farl_learning.policy_node", "PolicyNode")
learner_node = node_main("farl_learning.learner_node", "LearnerNode")
fosp_policy_node = node_main("farl_learning.fosp_policy_node", "FOSPPolicyNode")
fosp_learner_node = node_main("farl_learning.fosp_learner_node", "FOSPLearnerNode")
