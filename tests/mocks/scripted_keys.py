"""A terminal at the keyboard boundary: keys typed at given times on a clock."""

from __future__ import annotations

from collections.abc import Callable


class ScriptedKeys:
    def __init__(self, clock: Callable[[], float], script: list[tuple[float, str]]) -> None:
        self.clock = clock
        self.script = sorted(script, key=lambda x: x[0])
        self.closed = False

    def __call__(self) -> str:
        if self.closed:
            raise EOFError
        due = [k for t, k in self.script if t <= self.clock()]
        self.script = [(t, k) for t, k in self.script if t > self.clock()]
        return "".join(due)
