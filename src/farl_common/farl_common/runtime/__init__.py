"""One node class, two runtimes (shared/design.md, principle 2).

`node` declares what a node is; `inprocess` hosts nodes deterministically on a simulated clock
(mocked sim mode, tests); `rclpy_host` hosts the same class in a ROS 2 process.
"""

from farl_common.runtime.node import Input, Node, NodeContext, Output, SyncInput, Timer

__all__ = ["Input", "Node", "NodeContext", "Output", "SyncInput", "Timer"]
