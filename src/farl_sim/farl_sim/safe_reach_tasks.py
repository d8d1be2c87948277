"""The SafeReach variants by name, without importing MuJoCo (the CLI and `farl_sim.register_envs` read
them; `safe_reach.py` builds the scenes)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ObstacleShape = Literal["box", "cylinder"]
TargetShape = Literal["box", "cylinder"]


@dataclass(frozen=True)
class SafeReachSpec:
    """One SafeReach variant."""

    name: str
    """Snake-case name (`safe_reach`)."""
    obstacles: int = 2
    obstacle_shape: ObstacleShape = "box"
    obstacle_half_m: tuple[float, float, float] = (0.03, 0.0125, 0.04)
    """Half extents (x, y, z) of a box obstacle; a cylinder's radius is the x half extent."""
    target_shape: TargetShape = "box"
    target_half_m: tuple[float, float, float] = (0.02, 0.02, 0.015)
    horizon_steps: int = 80
    jitter_m: float = 0.01
    """Placement points are jittered by up to this much (uniform, xy) at each reset."""

    @property
    def env_id(self) -> str:
        return "FOSP/" + "".join(w.capitalize() for w in self.name.split("_")) + "-v0"


SAFE_REACH: dict[str, SafeReachSpec] = {
    s.name: s
    for s in (
        SafeReachSpec("safe_reach"),
        SafeReachSpec("safe_reach_cylinders", obstacle_shape="cylinder", obstacle_half_m=(0.025, 0.025, 0.04)),
        SafeReachSpec("safe_reach_round_target", target_shape="cylinder", target_half_m=(0.025, 0.025, 0.015)),
        SafeReachSpec("safe_reach_three_obstacles", obstacles=3),
    )
}
"""The task and its transfer variants (FOSP Figure 6: obstacle shape, target shape, three obstacles)."""


def get_safe_reach(name: str) -> SafeReachSpec:
    for spec in SAFE_REACH.values():
        if name in (spec.name, spec.env_id):
            return spec
    raise KeyError(f"unknown SafeReach variant {name!r}; choose one of {', '.join(SAFE_REACH)}")


PAPER_MIX: dict[str, int] = {"reached_safe": 120, "neither": 30, "touched_reached": 40, "touched_missed": 10}
"""FOSP Appendix D.1: 200 teleoperated trajectories of the real SafeReach task."""


def label_of(touched: bool, reached: bool) -> str:
    """The paper's four kinds, from what an episode did."""
    if touched:
        return "touched_reached" if reached else "touched_missed"
    return "reached_safe" if reached else "neither"
