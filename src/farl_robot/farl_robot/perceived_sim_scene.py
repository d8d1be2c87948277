"""FailureBench with perception in the loop: physics from MuJoCo, object positions from the camera.

The state the policy sees is the simulator's, with the objects where perception put them (and the
previous frame's slots from the previous perceived state), exactly as on the real arm; reward and
failure still come from the physics. While an object is unseen for longer than `timeout_s`, the
state cannot be trusted and the robot node holds.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from farl_robot.driver import HandState
from farl_robot.scene import PerceivedObjects, Scene, StepOutcome

OBJECT_SLOTS = {"object": slice(4, 7), "obstacle": slice(11, 14)}
PREVIOUS = 18
"""The previous frame's copy of the first 18 values starts here."""


class PerceivedSimScene(Scene):
    def __init__(self, sim, names: Sequence[str], timeout_s: float = 0.6) -> None:
        """`sim`: the robot node's `SimDriver` (its own scene: the ground truth)."""
        self.sim = sim
        self.layout = sim.layout
        self.names = [n for n in names if n in OBJECT_SLOTS]
        self.timeout_s = timeout_s
        self.objects = PerceivedObjects()
        self.previous: np.ndarray | None = None

    def new_episode(self) -> None:
        self.previous = None
        self.objects = PerceivedObjects()  # positions from before the reset are of another scene

    def update(self, names: Sequence[str], positions_m: np.ndarray, stamp_ns: int, visible: Sequence[bool]) -> None:
        self.objects.update(names, positions_m, stamp_ns, visible)

    def check_fresh(self, now_ns: int) -> None:
        self.objects.check_fresh(self.names, self.timeout_s, now_ns)

    def observe(self, hand: HandState, now_ns: int) -> np.ndarray:
        self.check_fresh(now_ns)
        obs = self.sim.observe(hand, now_ns).copy()
        for name in self.names:
            obs[OBJECT_SLOTS[name]] = self.objects.position(name)
        current = obs[:PREVIOUS].copy()
        obs[PREVIOUS : 2 * PREVIOUS] = self.previous if self.previous is not None else current
        self.previous = current
        return obs

    def evaluate(self, obs: np.ndarray) -> StepOutcome:
        return self.sim.evaluate(obs)
