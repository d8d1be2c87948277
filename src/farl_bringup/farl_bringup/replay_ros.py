"""`farl replay --ros`: publish episode bags' topics on ROS 2 in time order, at the recorded rate.

Each message goes out as the CDR bytes stored in the bag (rclpy publishes serialized messages as
they are), with farl's QoS for its topic: the episode events transient local, as farl's own
subscribers expect, everything else reliable. `ros2 bag play` keeps working on the same bags.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from farl_common.bags import BagError, iter_bag_paths, unreadable_bag
from farl_common.topics import short_name, topic_qos


def publish_bags(root: str | Path, speed: float = 1.0, on_bag: Callable[[Path, int], None] | None = None) -> int:
    """Publish every bag under `root`, one after the other; returns the number of messages sent."""
    import rclpy
    from rosbags.highlevel import AnyReader

    from farl_common import typestore as T
    from farl_common.runtime.rclpy_host import RclpyMessages, qos_profile

    if not speed > 0:
        raise ValueError(f"--speed must be > 0, got {speed}")
    paths = list(iter_bag_paths(root))
    if not paths:
        raise BagError(f"{root}: no episode bags here")
    own_context = not rclpy.ok()
    if own_context:
        rclpy.init()
    node = rclpy.create_node("farl_replay")
    msgs = RclpyMessages()
    publishers: dict[str, object] = {}
    sent = 0
    try:
        for path in paths:
            n = 0
            try:
                with AnyReader([path], default_typestore=T.farl_typestore()) as reader:
                    t0_bag, t0_wall = None, time.monotonic()
                    for conn, t_ns, raw in reader.messages():
                        pub = publishers.get(conn.topic)
                        if pub is None:
                            qos = topic_qos(short_name(conn.topic) or "")
                            pub = node.create_publisher(msgs.cls(conn.msgtype), conn.topic, qos_profile(qos))
                            publishers[conn.topic] = pub
                        t0_bag = t_ns if t0_bag is None else t0_bag
                        delay = t0_wall + (t_ns - t0_bag) / 1e9 / speed - time.monotonic()
                        if delay > 0:
                            time.sleep(delay)
                        pub.publish(bytes(raw))
                        n += 1
            except BagError:
                raise
            except Exception as err:  # noqa: BLE001 - rosbags/mcap errors: this bag is bad, say which
                raise unreadable_bag(path, err) from None
            sent += n
            if on_bag is not None:
                on_bag(path, n)
    finally:
        node.destroy_node()
        if own_context:
            rclpy.try_shutdown()
    return sent
