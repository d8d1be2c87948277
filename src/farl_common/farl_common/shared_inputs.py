"""Subscriptions that several nodes declare: written once, so topic, type, callback and QoS agree."""

from __future__ import annotations

from farl_common import typestore as T
from farl_common.runtime.node import Input

STATE_INPUT = Input("state", T.STATE, "on_state")
"""The task state: policy nodes, the shield and teleop each answer it in `on_state`."""
POLICY_VERSION_INPUT = Input("policy_version", "std_msgs/msg/UInt32", "on_version", qos="events")
"""The learner's answer to each recorded episode, its policy version: the robot starts the next episode on it."""
POLICY_WEIGHTS_INPUT = Input("policy_weights", T.WEIGHTS, "on_weights", qos="latest")
"""The learner's newest policy, weights included: the policy node acts with it, the shield rolls it out."""
EPISODE_EVENT_INPUT = Input("episode_event", T.EVENT, "on_episode_event", qos="events")
"""Episode starts and ends: the learner trains on finished episodes, teleop resets its takeover."""
EPISODE_RECORDED_INPUT = Input("episode_recorded", "std_msgs/msg/String", "on_episode_recorded", qos="events")
"""The path of each episode bag the recorder has closed and renamed into place: the learner reads it.
Empty for the END of an episode the recorder joined mid-way: no bag, and the learner answers all the same."""
