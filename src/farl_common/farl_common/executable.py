"""The `main` of every farl ROS 2 executable (setup.py's console_scripts), kept free of heavy imports.

`ros2 launch` starts every node at once and, when one of them fails at start, sends the others
SIGINT, often while they are still importing torch. The console script imports only this module;
the node's own module is imported inside `main`, so a node stopped during start-up exits 0 without
a traceback, and the launch shows the one line of the node that failed.

A process started from a shell's background job (`ros2 launch ... &` in a script, a CI step) inherits
SIGINT ignored, and Python then installs no KeyboardInterrupt handler: the node would not hear
launch's SIGINT and would be killed by its SIGTERM 5 s later, its shutdown (the bag, the arm) never
run. `hear_sigint` installs farl's handler first thing, as rclpy's own signal handling would.

The handler never raises: an exception raised from a signal handler lands wherever the interpreter
happens to be, and inside C++ that came out as `RuntimeError: Unable to convert call argument` (rclpy's
message conversion) or aborted the process (`terminate called after throwing
pybind11::error_already_set`, an import of torch). While the node's modules import, SIGINT ends the
process at once with exit 0; from `defer_sigint` on (before rclpy starts) it sets a flag that the
spin loop reads between callbacks, so a callback always runs to its end and the node shuts down
from the loop.
"""

from __future__ import annotations

import importlib
import os
import signal
from collections.abc import Callable


class _Sigint:
    heard = False
    interrupts = True


def _on_sigint(signum: int, frame: object) -> None:
    _Sigint.heard = True
    if _Sigint.interrupts:  # still importing: nothing open, nothing to close, and no exception to misplace
        os._exit(0)


def hear_sigint() -> None:
    """SIGINT stops this process, whatever disposition it inherited: until `defer_sigint` it ends the
    process at once (exit 0), after it only marks `sigint_heard`."""
    _Sigint.interrupts = True
    signal.signal(signal.SIGINT, _on_sigint)


def defer_sigint() -> bool:
    """From now on SIGINT only marks `sigint_heard`; returns whether one came already."""
    _Sigint.interrupts = False
    return _Sigint.heard


def sigint_heard() -> bool:
    """Whether this process was told to stop (Ctrl-C, ros2 launch's SIGINT)."""
    return _Sigint.heard


def node_main(module: str, node_class: str) -> Callable[..., int]:
    """A console-script entry point that runs `module.node_class` under rclpy."""

    def main(args: list[str] | None = None) -> int:
        hear_sigint()
        try:
            node_cls = getattr(importlib.import_module(module), node_class)
            from farl_common.runtime.rclpy_host import run_node

            for name in ("rclpy", "rclpy.executors", "rclpy.signals"):  # what run_node imports first
                importlib.import_module(name)
        except KeyboardInterrupt:  # told to stop before the node existed: nothing to report
            return 0
        return run_node(node_cls, args)

    main.__doc__ = f"Run {module}.{node_class} as a ROS 2 node."
    return main
