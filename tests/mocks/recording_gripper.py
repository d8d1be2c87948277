"""franky's `Gripper`, wrapped so that a test sees every asynchronous move the driver starts, and can
make the next move fail as a real hand's would (franky-sim's gripper raises no errors itself).

The wrapped gripper is a real `franky.Gripper` talking to franky-sim. franky's `move_async` waits for
the running move before it starts the next, and with franky-sim in the test's process that wait never
ends (it holds the GIL franky-sim's thread needs): so a move started over a running one is refused
here with an `AssertionError` instead of hanging the test.
"""

from __future__ import annotations

from typing import Any


class RecordingGripper:
    def __init__(self, gripper: Any) -> None:
        self._gripper = gripper
        self.widths: list[float] = []
        """Target width of each asynchronous move started, in order."""
        self.last: Any = None
        self.fail_next = False
        """The next move, synchronous or not, raises franky's `GripperException`."""

    def _maybe_fail(self) -> None:
        import franky

        if self.fail_next:
            self.fail_next = False
            raise franky.GripperException("libfranka gripper: command failed: grasp (simulated)")

    def move(self, width: float, speed: float) -> Any:
        self._maybe_fail()
        return self._gripper.move(width, speed)

    def move_async(self, width: float, speed: float) -> Any:
        self._maybe_fail()
        if self.last is not None and not self.last.wait(0):
            raise AssertionError("move_async over a gripper move that is still running")
        self.last = self._gripper.move_async(width, speed)
        self.widths.append(width)
        return self.last

    def __getattr__(self, name: str) -> Any:
        return getattr(self._gripper, name)
