"""The state vector every farl node, network and bag shares: MetaWorld's 39 numbers, by name.

Code reads fields through these slices rather than bare indices, so a reader sees which field it
means and the layout is written once (`OBS_LAYOUT`, also stored in each TaskState and bag).
"""

from __future__ import annotations

OBS_LAYOUT: tuple[tuple[str, int], ...] = (
    ("hand_pos_m", 3),
    ("gripper_open", 1),
    ("object_pos_m", 3),
    ("object_quat", 4),
    ("second_object_pose", 7),
    ("previous_frame", 18),
    ("goal_pos_m", 3),
)
"""(name, size) in order; `previous_frame` repeats the first 18 numbers one step earlier."""

OBS_DIM = sum(n for _, n in OBS_LAYOUT)

_OFFSET: dict[str, int] = {}
_at = 0
for _name, _n in OBS_LAYOUT:
    _OFFSET[_name] = _at
    _at += _n
_FRAME = _OFFSET["previous_frame"]  # the current frame's fields sit at the same offsets minus this


def field_slice(name: str, size: int | None = None, previous: bool = False) -> slice:
    """The first `size` numbers of field `name` (all of it by default), one step earlier if `previous`."""
    full = dict(OBS_LAYOUT)[name]
    start = _OFFSET[name] + (_FRAME if previous else 0)
    return slice(start, start + (full if size is None else size))


HAND = field_slice("hand_pos_m")
HAND_XY = field_slice("hand_pos_m", 2)
HAND_Z = _OFFSET["hand_pos_m"] + 2
GRIPPER = _OFFSET["gripper_open"]
OBJECT = field_slice("object_pos_m")
OBJECT_XY = field_slice("object_pos_m", 2)
PREVIOUS_OBJECT_XY = field_slice("object_pos_m", 2, previous=True)
OBSTACLE = field_slice("second_object_pose", 3)
"""Position of the second object: the vase, the obstacle or the moving obstacle, by task."""
OBSTACLE_XY = field_slice("second_object_pose", 2)
GOAL_XY = field_slice("goal_pos_m", 2)
