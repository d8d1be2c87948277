"""The `main` of every farl ROS 2 executable (setup.py's console_scripts), kept free of heavy imports.

`ros2 launch` starts every node at once and, when one of them fails at start, sends the others
SIGINT, often while they are still importing torch. The console script imports only this module;
the node's own module is imported inside `main`, so a node stopped during start-up exits 0 without
a traceback, and the launch shows the one line of the node that failed.

A process started from a shell's background job (`ros2 launch ... &` in a script, a CI step) inherits
SIGINT ignored, and Python then installs no KeyboardInterrupt handler: the node would not hear
launch's SIGINT and would be killed by its SIGTERM 5 s later, its shutdown (the bag, the arm) never
run. `hear_sigint` restores the handler first thing, as rclpy's own signal handling would.
"""

from __future__ import annotations

import importlib
import signal
from collections.abc import Callable


def hear_sigint() -> None:
    """SIGINT raises KeyboardInterrupt in this process, whatever disposition it inherited."""
    signal.signal(signal.SIGINT, signal.default_int_handler)


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
