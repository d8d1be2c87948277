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
    "policy_weights": "/farl/policy_weights",
    "episode_recorded": "/farl/episode_recorded",
    "objects": "/farl/perception/objects",
    "operator_mark": "/farl/operator/mark",
    "action_shielded": "/farl/action/shielded",
    "shield_markers": "/farl/shield/imagined_path",
    # realsense2_camera's names (namespace and node `camera`, depth aligned to colour)
    "camera_color": "/camera/camera/color/image_raw",
    "camera_depth": "/camera/camera/aligned_depth_to_color/image_raw",
    "camera_info": "/camera/camera/color/camera_info",
    "debug_image": "/farl/perception/debug_image",
}

TOPIC_TYPES: dict[str, str] = {
    "state": T.STATE,
    "action_proposed": T.ACTION,
    "action_executed": T.ACTION,
    "shield_decision": T.DECISION,
    "step_feedback": T.FEEDBACK,
    "episode_event": T.EVENT,
    "policy_version": "std_msgs/msg/UInt32",
    "policy_weights": T.WEIGHTS,
    "episode_recorded": "std_msgs/msg/String",
    "objects": T.OBJECTS,
    "operator_mark": "std_msgs/msg/String",
    "action_shielded": T.ACTION,
    "shield_markers": "visualization_msgs/msg/MarkerArray",
    "camera_color": T.IMAGE,
    "camera_depth": T.IMAGE,
    "camera_info": T.CAMERA_INFO,
    "debug_image": T.IMAGE,
}

SENSOR_TOPICS = frozenset({"objects", "camera_color", "camera_depth", "camera_info", "debug_image"})


def topic_qos(short: str) -> str:
    """The QoS name (farl_common.runtime.node.QosName) farl uses on a topic, by short name: episode
    events, recorded bags and policy versions transient local, so late joiners see them; camera and
    perception output best effort, as sensor drivers publish; the policy's weights transient local
    with only the newest kept; the rest reliable."""
    if short == "policy_weights":
        return "latest"
    if short in ("episode_event", "episode_recorded", "policy_version"):
        return "events"
    return "sensor" if short in SENSOR_TOPICS else "default"


def short_name(topic: str) -> str | None:
    """The short name of a canonical topic name (as bags store them), or None."""
    return next((k for k, v in DEFAULT_TOPICS.items() if v == topic), None)


# What an episode bag holds: enough to retrain from and to replay (paper Sec. III, design principle 4).
EPISODE_TOPICS: tuple[str, ...] = (
    "state",
    "action_proposed",
    "action_executed",
    "shield_decision",
    "step_feedback",
    "episode_event",
)

IMAGE_TOPICS: tuple[str, ...] = ("camera_color", "camera_depth", "camera_info")
"""What an episode bag also holds with `perception.record_images`: the frames perception saw
(training data for `farl perception train-detector`, input for replaying perception)."""
