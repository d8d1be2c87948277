"""The rosbags typestore: ROS 2 Jazzy's standard types plus farl_interfaces, loaded from the `.msg` files.

No message is defined in Python: the same files rosidl builds for ROS are parsed here, found in
(first hit wins) `$FARL_INTERFACES_MSG_DIR`, the ament index of a sourced ROS 2 workspace, or this
source tree's `src/farl_interfaces/msg`.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

PACKAGE = "farl_interfaces"
STATE = f"{PACKAGE}/msg/TaskState"
ACTION = f"{PACKAGE}/msg/ActionCommand"
DECISION = f"{PACKAGE}/msg/ShieldDecision"
EVENT = f"{PACKAGE}/msg/EpisodeEvent"
FEEDBACK = f"{PACKAGE}/msg/StepFeedback"
OBJECTS = f"{PACKAGE}/msg/ObjectPositions"
WEIGHTS = f"{PACKAGE}/msg/PolicyWeights"
IMAGE = "sensor_msgs/msg/Image"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"


def msg_dir() -> Path:
    """Folder holding farl_interfaces' `.msg` files."""
    candidates: list[Path] = []
    if env := os.environ.get("FARL_INTERFACES_MSG_DIR"):
        candidates.append(Path(env))
    try:
        from ament_index_python.packages import get_package_share_directory

        candidates.append(Path(get_package_share_directory(PACKAGE)) / "msg")
    except Exception:  # noqa: BLE001 - no ROS sourced, or the package not built: fall through
        pass
    candidates.append(Path(__file__).resolve().parents[2] / PACKAGE / "msg")
    for c in candidates:
        if c.is_dir() and any(c.glob("*.msg")):
            return c
    tried = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(f"farl_interfaces .msg files not found (tried {tried}); set FARL_INTERFACES_MSG_DIR")


@functools.cache
def farl_typestore() -> Typestore:
    """Jazzy's typestore with every farl_interfaces message registered."""
    store = get_typestore(Stores.ROS2_JAZZY)
    types = {}
    for path in sorted(msg_dir().glob("*.msg")):
        types.update(get_types_from_msg(path.read_text(), f"{PACKAGE}/msg/{path.stem}"))
    store.register(types)
    return store


def farl_msg_types() -> list[str]:
    """Names of all farl_interfaces messages."""
    return sorted(f"{PACKAGE}/msg/{p.stem}" for p in msg_dir().glob("*.msg"))
