"""Default topic names of the farl graph and the message type each carries.

Configs may remap them (`topics:` in `config/<task>.yaml`); node code refers to the short names.
"""

from __future__ import annotations

from farl_common import typestore as T

DEFAULT_TOPICS: dict[str, str] = {
    "state": "/farl/state",
    "action_proposed": "/farl/action/proposed",
    "action_executed": "/farl/action/executed",
    "shield_decision": "/farl/shield/decision",
    "step_feedback": "/farl/step_feedback",
    "episode_event": "/farl/episode_event",
    "policy_version": "/farl/policy_version",
    "objects": "/farl/perception/objects",
    "operator_mark": "/farl/operator/mark",
    "action_shielded": "/farl/action/shielded",
}

TOPIC_TYPES: dict[str, str] = {
    "state": T.STATE,
    "action_proposed": T.ACTION,
    "action_executed": T.ACTION,
    "shield_decision": T.DECISION,
    "step_feedback": T.FEEDBACK,
    "episode_event": T.EVENT,
    "policy_version": "std_msgs/msg/UInt32",
    "objects": T.OBJECTS,
    "operator_mark": "std_msgs/msg/String",
    "action_shielded": T.ACTION,
}

# What an episode bag holds: enough to retrain from and to replay (paper Sec. III, design principle 4).
EPISODE_TOPICS: tuple[str, ...] = (
    "state",
    "action_proposed",
    "action_executed",
    "shield_decision",
    "step_feedback",
    "episode_event",
)
