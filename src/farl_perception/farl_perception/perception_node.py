"""The perception node: camera frames to object positions in the robot base frame, at 5 Hz.

Each tick it takes the newest frame, finds the objects and publishes `ObjectPositions` (sensor
QoS): a position, a confidence (0 when not seen in this frame) and an age per object. Frames come
from a RealSense it opens itself, from the camera topics (realsense2_camera, or a bag played back;
colour, aligned depth and camera_info synchronised by message_filters' ApproximateTimeSynchronizer
under ROS, `ApproximateTimeSync` in process), from recorded bags, or in process from the MuJoCo
camera of the FailureBench scene. It also publishes an annotated debug image, and with
`publish_frames` the frames it used, on the camera topics, so the recorder can keep them.

A stalled camera publishes the last positions with growing ages, so the robot node holds on its
perception-age rule instead of acting on an old state; a camera that is missing, weights that are
not there or a calibration that does not parse stop the node with one line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from farl_common import messages as M
from farl_common import typestore as T
from farl_common.config import FarlConfig, PerceptionConfig, same_as
from farl_common.runtime.node import Node, NodeError, Output, SyncInput, Timer, entry_point
from farl_common.topics import IMAGE_TOPICS, TOPIC_TYPES
from farl_perception.calibration import CalibrationError, load_calibration
from farl_perception.detect import ColorRange
from farl_perception.frames import CameraUnavailable, StaleFrame
from farl_perception.image_messages import ImageError, color_msg, frame_from_msgs, frame_msgs
from farl_perception.pipeline import ObjectSpec, Perception, PerceptionSettings, annotate
from farl_perception.recorded_sources import SYNC_SLOP_S, BagFrames, TopicFrames


@dataclass
class PerceptionParams(PerceptionConfig):
    """The `perception:` config section, and what the graph decides: the objects to find (the scene's),
    their colours (a sim scene's paint when the section gives none), and the rate."""

    publish_frames: bool = field(
        default=False, metadata={"doc": "publish the frames used on the camera topics (recording them)"}
    )
    rate_hz: float = same_as(FarlConfig, "rate_hz")  # positions go out at the graph's control rate
    object_names: list[str] = field(default_factory=lambda: ["object"], metadata={"doc": "objects to find"})


def settings_from_params(p: PerceptionParams, T_base_camera: np.ndarray) -> PerceptionSettings:
    n = len(p.object_names)
    if len(p.hsv_lo) != 3 * n or len(p.hsv_hi) != 3 * n or len(p.depth_offset_m) != n:
        raise NodeError(
            f"perception: {n} objects need 3 hsv_lo and 3 hsv_hi values each and one depth_offset_m each "
            f"(got {len(p.hsv_lo)}, {len(p.hsv_hi)}, {len(p.depth_offset_m)})"
        )
    objects = [
        ObjectSpec(
            name,
            ColorRange(tuple(p.hsv_lo[3 * i : 3 * i + 3]), tuple(p.hsv_hi[3 * i : 3 * i + 3])),  # type: ignore[arg-type]
            float(p.depth_offset_m[i]),
        )
        for i, name in enumerate(p.object_names)
    ]
    return PerceptionSettings(
        objects, T_base_camera, p.yolo_weights, p.yolo_imgsz_px, p.min_area_px, max_jump_m=p.max_jump_m
    )


class PerceptionNode(Node):
    name = "perception"
    Params = PerceptionParams
    inputs = (
        SyncInput(IMAGE_TOPICS, (T.IMAGE, T.IMAGE, T.CAMERA_INFO), "on_images", slop_s=SYNC_SLOP_S, qos="sensor"),
    )
    outputs = (
        Output("objects", T.OBJECTS, qos="sensor"),
        Output("debug_image", T.IMAGE, qos="sensor"),
        *(Output(t, TOPIC_TYPES[t], qos="sensor") for t in IMAGE_TOPICS),
    )
    timers = (Timer("on_tick", "rate_hz"),)

    def wired_inputs(self):
        return self.inputs if self.params.source == "topics" else ()

    def __init__(self, params: Any = None, source: Any = None) -> None:
        """`source` replaces the camera the parameters name (the in-process sim: the MuJoCo camera)."""
        super().__init__(params)
        self._given = source

    def on_start(self) -> None:
        p = self.params
        self.source = self.closes(self._given or self._make_source())
        try:
            T_cam = getattr(self.source, "T_base_camera", None)
            if T_cam is None:
                if not p.calibration:
                    raise NodeError(
                        "perception: no calibration file given (calibration:=...; farl perception calibrate)"
                    )
                T_cam = load_calibration(p.calibration)
            self.perception = Perception(settings_from_params(p, T_cam))
            self.source.open()
        except (CalibrationError, CameraUnavailable, FileNotFoundError) as err:
            raise NodeError(str(err)) from None
        except NodeError:
            raise  # already one line (a RuntimeError too: not to be prefixed again below)
        except RuntimeError as err:  # ultralytics / weights
            raise NodeError(f"perception: {err}") from None
        for w in self.perception.warnings:
            self.log("warning", w)
        self.stale = False
        self.frames = 0
        self.bad_images = 0
        self.last: Any = None

    def _make_source(self):
        p = self.params
        if p.source == "topics":
            if p.publish_frames:
                raise NodeError("perception: publish_frames with source topics would echo the camera's own topics")
            return TopicFrames(p.frame_timeout_s)
        if p.source == "bag":
            if not p.bag:
                raise NodeError("perception: source bag needs bag:=PATH (a bag or folder recorded with images)")
            return BagFrames(p.bag)
        if p.source == "realsense":
            from farl_perception.realsense_source import RealSenseSource

            return RealSenseSource(p.width_px, p.height_px, p.fps_hz, p.frame_timeout_s)
        if p.source == "mujoco":
            raise NodeError(
                "perception: source mujoco renders the sim robot's own scene: it runs in process (farl sim)"
            )
        raise NodeError(f"perception: source {p.source!r}: choose realsense, topics, bag or mujoco")

    def on_images(self, color: Any, depth: Any, info: Any) -> None:
        try:
            frame = frame_from_msgs(color, depth, info)
        except ImageError as err:
            if not self.bad_images:
                self.log("error", f"camera topics: {err}; the robot holds")
            self.bad_images += 1
            return
        self.source.push(frame, self.now_ns())

    def on_tick(self) -> None:
        now = self.now_ns()
        try:
            frame = self.source.read(now)  # stamped on the graph's clock (sim time in process, ROS time)
        except StaleFrame as err:
            if not self.stale:
                self.log("warning", f"{err}: positions age until frames come back; the robot holds")
                self.stale = True
            self._publish(self.perception.tracker.update(now, {}), now)
            return
        if frame is None:
            return  # camera topics: nothing new since the last tick
        if self.stale:
            self.log("info", "camera frames are back")
            self.stale = False
        self.frames += 1
        self.last = self.perception.process(frame)
        self._publish(self.last.estimates, now)
        if self.params.publish_frames:
            for topic, msg in zip(IMAGE_TOPICS, frame_msgs(self.msgs, frame, now), strict=True):
                self.publish(topic, msg)
        if self.params.debug_image:
            self.publish("debug_image", color_msg(self.msgs, annotate(frame, self.last), now))

    def _publish(self, estimates, now: int) -> None:
        pos = np.concatenate([e.position_m for e in estimates]) if estimates else np.zeros(0)
        self.publish(
            "objects",
            self.msgs.new(
                T.OBJECTS,
                header=M.header(self.msgs, now, "base"),
                names=[e.name for e in estimates],
                positions_m=np.nan_to_num(pos, nan=0.0),
                confidence=np.array([e.confidence for e in estimates], dtype=np.float64),
                age_s=np.array([min(e.age_s, 1e9) for e in estimates], dtype=np.float64),
            ),
        )


main = entry_point(PerceptionNode)


if __name__ == "__main__":
    raise SystemExit(main())
