"""The shield's look-ahead as `visualization_msgs/MarkerArray`, for RViz2, Foxglove and farl's live view.

Each decision of the world-model critic replaces three markers in the state's frame (`world`):

- `imagined_path` (LINE_STRIP) and `imagined_states` (SPHERE_LIST): the hand's path through the H
  states the world model imagines (eq. 10's rollout: the proposed action, then the task policy's),
  each vertex coloured by the risk summed up to it, from green (none) to red (eps_safe or more);
- `risk` (TEXT_VIEW_FACING) above the hand: C_H against eps_safe, and whether the shield swapped.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from farl_common import messages as M

MARKER_ARRAY = "visualization_msgs/msg/MarkerArray"
_MARKER = "visualization_msgs/msg/Marker"
FRAME = M.STATE_FRAME
"""The markers' frame: the states'."""


def risk_colours(terms: np.ndarray, eps_safe: float) -> np.ndarray:
    """RGBA per imagined state: the discounted risk summed up to it (eq. 10's partial sums) over eps_safe,
    green at 0 to red at 1 and beyond."""
    level = np.clip(np.cumsum(terms) / max(eps_safe, 1e-12), 0.0, 1.0)
    return np.stack([level, 1.0 - level, np.zeros_like(level), np.ones_like(level)], axis=-1)


def imagined_path_markers(
    f: M.MessageFactory,
    t_ns: int,
    hands: np.ndarray,
    terms: np.ndarray,
    risk: float,
    eps_safe: float,
    swapped: bool,
) -> Any:
    """The MarkerArray of one decision: `hands` (H+1, 3) the hand's imagined positions (the first is the
    state's own), `terms` (H+1,) eq. 10's discounted constraint probabilities, whose sum is `risk`."""
    points = [f.new("geometry_msgs/msg/Point", x=float(x), y=float(y), z=float(z)) for x, y, z in hands]
    colours = [
        f.new("std_msgs/msg/ColorRGBA", r=float(r), g=float(g), b=float(b), a=float(a))
        for r, g, b, a in risk_colours(terms, eps_safe)
    ]
    head = M.header(f, t_ns, FRAME)
    kinds = f.cls(_MARKER)
    identity = f.new("geometry_msgs/msg/Pose", orientation=f.new("geometry_msgs/msg/Quaternion", w=1.0))

    def marker(ns: str, kind: int, scale: float, **fields: Any) -> Any:
        return f.new(
            _MARKER,
            header=head,
            ns=ns,
            id=0,
            type=kind,
            pose=fields.pop("pose", identity),
            scale=f.new("geometry_msgs/msg/Vector3", x=scale, y=scale, z=scale),
            color=f.new("std_msgs/msg/ColorRGBA", r=1.0, g=1.0, b=1.0, a=1.0),
            **fields,
        )

    x, y, z = (float(v) for v in hands[0])
    above = f.new(
        "geometry_msgs/msg/Pose",
        position=f.new("geometry_msgs/msg/Point", x=x, y=y, z=z + 0.08),
        orientation=f.new("geometry_msgs/msg/Quaternion", w=1.0),
    )
    verdict = f"> eps_safe {eps_safe:.3g}: recovery acts" if swapped else f"<= eps_safe {eps_safe:.3g}"
    return f.new(
        MARKER_ARRAY,
        markers=[
            marker("imagined_path", kinds.LINE_STRIP, 0.004, points=points, colors=colours),
            marker("imagined_states", kinds.SPHERE_LIST, 0.012, points=points, colors=colours),
            marker("risk", kinds.TEXT_VIEW_FACING, 0.03, pose=above, text=f"C_H {risk:.3g} {verdict}"),
        ],
    )
