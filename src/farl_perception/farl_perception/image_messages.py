"""Camera frames as ROS 2 messages and back: sensor_msgs/Image (colour, aligned depth) and CameraInfo.

The encodings are realsense2_camera's: colour `rgb8`, depth aligned to colour `16UC1` in millimetres,
so a graph can take its images from that driver (`perception.source: topics`), from farl's own
perception node (`perception.publish_frames`), or from a bag of either. Decoding also accepts
`bgr8` colour and `32FC1` depth in metres. Field access goes through the message's attributes
only, so rosbags' dataclasses and rclpy's classes both work.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from farl_common import messages as M
from farl_common.typestore import CAMERA_INFO, IMAGE
from farl_perception.frames import Frame, Intrinsics

CAMERA_FRAME = "camera_color_optical_frame"
"""realsense2_camera's name for the colour optical frame (x right, y down, z forward)."""


class ImageError(ValueError):
    """An image message farl cannot use (encoding, size); the message says which and why."""


def _image(f: M.MessageFactory, pixels: np.ndarray, encoding: str, stamp_ns: int, frame_id: str) -> Any:
    h, w = pixels.shape[:2]
    data = np.ascontiguousarray(pixels).view(np.uint8).reshape(-1)
    return f.new(
        IMAGE,
        header=M.header(f, stamp_ns, frame_id),
        height=h,
        width=w,
        encoding=encoding,
        is_bigendian=0,
        step=data.size // h,
        data=data,
    )


def color_msg(f: M.MessageFactory, color: np.ndarray, stamp_ns: int, frame_id: str = CAMERA_FRAME) -> Any:
    return _image(f, np.asarray(color, dtype=np.uint8), "rgb8", stamp_ns, frame_id)


def depth_msg(f: M.MessageFactory, depth_m: np.ndarray, stamp_ns: int, frame_id: str = CAMERA_FRAME) -> Any:
    mm = np.nan_to_num(np.asarray(depth_m, dtype=np.float64) * 1000.0, nan=0.0, posinf=0.0, neginf=0.0)
    return _image(f, np.clip(np.rint(mm), 0, 65535).astype("<u2"), "16UC1", stamp_ns, frame_id)


def info_msg(f: M.MessageFactory, k: Intrinsics, stamp_ns: int, frame_id: str = CAMERA_FRAME) -> Any:
    K = [k.fx, 0.0, k.cx, 0.0, k.fy, k.cy, 0.0, 0.0, 1.0]
    return f.new(
        CAMERA_INFO,
        header=M.header(f, stamp_ns, frame_id),
        height=k.height,
        width=k.width,
        distortion_model="plumb_bob",
        d=np.zeros(5),
        k=np.array(K),
        r=np.eye(3).reshape(-1),
        p=np.array([k.fx, 0.0, k.cx, 0.0, 0.0, k.fy, k.cy, 0.0, 0.0, 0.0, 1.0, 0.0]),
        binning_x=0,
        binning_y=0,
        roi=f.new("sensor_msgs/msg/RegionOfInterest", x_offset=0, y_offset=0, height=0, width=0, do_rectify=False),
    )


def _pixels(msg: Any, dtype: str, channels: int) -> np.ndarray:
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    item = np.dtype(dtype).itemsize * channels
    raw = np.frombuffer(memoryview(msg.data).cast("B"), dtype=np.uint8)
    if step < w * item or raw.size < h * step:
        raise ImageError(f"{msg.encoding} image {w}x{h}: step {step} and {raw.size} bytes do not hold it")
    rows = np.ascontiguousarray(raw[: h * step].reshape(h, step)[:, : w * item])
    dt = np.dtype(dtype).newbyteorder(">" if bool(msg.is_bigendian) else "<")
    return rows.view(dt).reshape((h, w, channels) if channels > 1 else (h, w))


def decode_color(msg: Any) -> np.ndarray:
    """H x W x 3 uint8 RGB."""
    enc = str(msg.encoding)
    if enc == "rgb8":
        return _pixels(msg, "u1", 3).copy()
    if enc == "bgr8":
        return _pixels(msg, "u1", 3)[..., ::-1].copy()
    raise ImageError(f"colour image encoding {enc!r}: farl reads rgb8 or bgr8")


def decode_depth(msg: Any) -> np.ndarray:
    """H x W float32 metres, 0 where the sensor had no reading."""
    enc = str(msg.encoding)
    if enc in ("16UC1", "mono16"):
        return _pixels(msg, "u2", 1).astype(np.float32) / 1000.0
    if enc == "32FC1":
        d = _pixels(msg, "f4", 1).astype(np.float32)
        return np.where(np.isfinite(d) & (d > 0), d, 0.0).astype(np.float32)
    raise ImageError(f"depth image encoding {enc!r}: farl reads 16UC1 (mm) or 32FC1 (m)")


def decode_info(msg: Any) -> Intrinsics:
    K = np.asarray(msg.k, dtype=np.float64).reshape(-1)
    if K.size != 9 or not np.all(np.isfinite(K)) or K[0] <= 0 or K[4] <= 0:
        raise ImageError("camera_info: K must hold positive focal lengths (is the camera calibrated?)")
    return Intrinsics(int(msg.width), int(msg.height), float(K[0]), float(K[4]), float(K[2]), float(K[5]))


def frame_from_msgs(color: Any, depth: Any, info: Any) -> Frame:
    """One synchronised colour + aligned depth + camera info triple as a Frame (stamped by the colour)."""
    rgb, d, k = decode_color(color), decode_depth(depth), decode_info(info)
    if rgb.shape[:2] != d.shape or (k.height, k.width) != d.shape:
        raise ImageError(
            f"colour {rgb.shape[1]}x{rgb.shape[0]}, depth {d.shape[1]}x{d.shape[0]} and camera_info "
            f"{k.width}x{k.height} differ: is depth aligned to colour (align_depth.enable:=true)?"
        )
    return Frame(rgb, d, k, M.stamp_ns(color))


def frame_msgs(f: M.MessageFactory, frame: Frame, stamp_ns: int | None = None) -> tuple[Any, Any, Any]:
    t = frame.stamp_ns if stamp_ns is None else stamp_ns
    return color_msg(f, frame.color, t), depth_msg(f, frame.depth_m, t), info_msg(f, frame.intrinsics, t)
