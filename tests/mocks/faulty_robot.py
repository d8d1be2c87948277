"""franky's `Robot`, wrapped so that a test can make its next calls fail as a real arm's would.

The wrapped robot is a real `franky.Robot` talking libfranka's protocol to franky-sim; franky-sim
raises no control errors itself (shared/dependencies.md), so the errors are injected here, at
the driver's boundary with the hardware library.
"""

from __future__ import annotations

from typing import Any

REFLEX = "libfranka: Move command aborted: motion aborted by reflex! [cartesian_reflex]"
PLANNER = "Motion planner failed with error code -111"
"""franky's planner error, seen against franky-sim: libfranky binds no class for it, so it is a RuntimeError."""


class FaultyRobot:
    def __init__(self, robot: Any) -> None:
        object.__setattr__(self, "_robot", robot)
        object.__setattr__(self, "fail_moves", 0)
        object.__setattr__(self, "fail_always", False)
        object.__setattr__(self, "fail_polls", 0)
        object.__setattr__(self, "calls", {"move": 0, "recover_from_errors": 0, "stop": 0})

    def move(self, *args: Any, **kwargs: Any) -> Any:
        import franky

        self.calls["move"] += 1
        if self.fail_always or self.fail_moves > 0:
            object.__setattr__(self, "fail_moves", max(0, self.fail_moves - 1))
            raise franky.ControlException(REFLEX)
        return self._robot.move(*args, **kwargs)

    def poll_motion(self) -> Any:
        if self.fail_polls > 0:  # the last asynchronous motion failed in franky's control thread
            object.__setattr__(self, "fail_polls", self.fail_polls - 1)
            raise RuntimeError(PLANNER)
        return self._robot.poll_motion()

    def recover_from_errors(self) -> Any:
        self.calls["recover_from_errors"] += 1
        return self._robot.recover_from_errors()

    def stop(self) -> Any:
        self.calls["stop"] += 1
        return self._robot.stop()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._robot, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in ("fail_moves", "fail_always", "fail_polls"):
            object.__setattr__(self, name, value)
        else:
            setattr(self._robot, name, value)
