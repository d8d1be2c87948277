"""Frames that were not read from a camera by this process: image topics and recorded bags.

`TopicFrames` holds the newest colour + depth + camera_info triple the perception node received
(from realsense2_camera, from another farl graph, from `farl replay --ros` or `ros2 bag play`).
`BagFrames` reads the same three topics from episode bags (`perception.record_images`) or from
any rosbag2 bag of realsense2_camera's topics, pairing them by stamp as message_filters would.
Both stamp a frame when it reaches perception, as the camera sources do, so a frame's age is
measured on the graph's clock and not on the recording's.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from farl_common.bags import BagError, iter_bag_paths, unreadable_bag
from farl_common.runtime.sync import ApproximateTimeSync
from farl_common.topics import DEFAULT_TOPICS, IMAGE_TOPICS
from farl_common.typestore import farl_typestore
from farl_perception.frames import Frame, StaleFrame
from farl_perception.image_messages import ImageError, frame_from_msgs

SYNC_SLOP_S = 0.02
"""Colour, aligned depth and camera_info of one capture: realsense2_camera gives them one stamp."""


class TopicFrames:
    """The perception node's source under `source: topics`: frames pushed by its synchronised input."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_ns = int(timeout_s * 1e9)
        self.latest: Frame | None = None
        self.arrived_ns: int | None = None
        self.fresh = False

    def open(self) -> None:
        """Nothing to open: the frames come to the node."""

    def push(self, frame: Frame, now_ns: int) -> None:
        self.latest, self.arrived_ns, self.fresh = replace(frame, stamp_ns=now_ns), now_ns, True

    def read(self, stamp_ns: int) -> Frame | None:
        """The newest frame not yet read; None if none came since the last read (within the timeout)."""
        if self.arrived_ns is None or stamp_ns - self.arrived_ns > self.timeout_ns:
            since = "yet" if self.arrived_ns is None else f"for {(stamp_ns - self.arrived_ns) / 1e9:.1f} s"
            raise StaleFrame(f"no colour + depth + camera_info on the camera topics {since}")
        if not self.fresh:
            return None
        self.fresh = False
        return self.latest

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class BagFrame:
    frame: Frame
    bag: Path
    """The bag it came from (episodes split training and validation data by bag)."""


def read_bag_frames(path: str | Path, every: int = 1) -> Iterator[BagFrame]:
    """Every `every`-th frame of the bags at `path` (a bag or a folder of bags), in time order per bag.

    Frames keep their recorded stamps. A bag without the camera topics yields nothing; an unreadable
    one raises BagError naming it."""
    from rosbags.highlevel import AnyReader

    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    names = {DEFAULT_TOPICS[t]: i for i, t in enumerate(IMAGE_TOPICS)}
    got: list[Frame] = []
    for bag in iter_bag_paths(path):
        got.clear()
        sync = ApproximateTimeSync(3, SYNC_SLOP_S, lambda c, d, k: got.append(frame_from_msgs(c, d, k)), 30)
        count = 0
        try:
            with AnyReader([bag], default_typestore=farl_typestore()) as reader:
                conns = [c for c in reader.connections if c.topic in names]
                if not conns:
                    continue  # an empty list would mean every topic to rosbags
                for conn, _, raw in reader.messages(connections=conns):
                    sync.add(names[conn.topic], reader.deserialize(raw, conn.msgtype))
                    for frame in got:
                        if count % every == 0:
                            yield BagFrame(frame, bag)
                        count += 1
                    got.clear()
        except ImageError as err:
            raise BagError(f"{bag}: {err}") from None
        except (BagError, GeneratorExit):
            raise
        except Exception as err:  # noqa: BLE001 - rosbags/mcap errors: this bag is bad, say which
            raise unreadable_bag(bag, err) from None


class BagFrames:
    """Recorded frames as a camera: each read gives the next one, stamped with the reader's time."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._it: Iterator[BagFrame] | None = None
        self.count = 0

    def open(self) -> None:
        self._it = read_bag_frames(self.path)

    def read(self, stamp_ns: int = 0) -> Frame:
        if self._it is None:
            self.open()
        assert self._it is not None
        item = next(self._it, None)
        if item is None:
            why = "no camera frames in" if self.count == 0 else f"all {self.count} frames read from"
            raise StaleFrame(f"{why} {self.path} ({', '.join(DEFAULT_TOPICS[t] for t in IMAGE_TOPICS)})")
        self.count += 1
        return replace(item.frame, stamp_ns=stamp_ns)

    def close(self) -> None:
        self._it = None
