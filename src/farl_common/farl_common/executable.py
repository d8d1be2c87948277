"""The `main` of every farl ROS 2 executable (setup.py's console_scripts), kept free of heavy imports.

`ros2 launch` starts every node at once and, when one of them fails at start, sends the others
SIGINT, often while they are still importing torch. The console script imports only this module;
the node's own module is imported inside `main`, so a node stopped during start-up exits 0 without
a traceback, and the launch shows the one line of the node that failed.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable


def node_main(module: str, node_class: str) -> Callable[..., int]:
    """A console-script entry point that runs `module.node_class` under rclpy."""

    def main(args: list[str] | None = None) -> int:
        try:
            node_cls = getattr(importlib.import_module(module), node_class)
            from farl_common.runtime.rclpy_host import run_node
        except KeyboardInterrupt:  # told to stop before the node existed: nothing to report
            return 0
        return run_node(node_cls, args)

    main.__doc__ = f"Run {module}.{node_class} as a ROS 2 node."
    return main
