"""Frame in, object positions in the robot base frame out (paper Sec. VI: D435 + YOLOv8 + colour).

Per object: find it (colour filter, or YOLO confirmed by colour), take the median depth of its
visible pixels, move from the surface to the object's centre along the viewing ray
(`depth_offset_m`, about its radius), deproject with the colour intrinsics, map into the base
frame with the calibration, then filter in time (`ObjectTracker`). An annotated image shows what
was found.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from farl_perception.detect import ColorDetector, ColorRange, Detection, YoloDetector, fuse
from farl_perception.frames import Frame
from farl_perception.tracker import Estimate, ObjectTracker

_MIN_DEPTH_PIXELS = 5


@dataclass(frozen=True)
class ObjectSpec:
    name: str
    color: ColorRange
    depth_offset_m: float = 0.0
    """From the visible surface to the point the task's state uses (the object's centre)."""
    yolo_class: str = ""


@dataclass
class PerceptionSettings:
    objects: list[ObjectSpec]
    T_base_camera: np.ndarray = field(default_factory=lambda: np.eye(4))
    yolo_weights: str = ""
    yolo_imgsz_px: int = 416
    min_area_px: int = 30
    smoothing: float = 0.3
    max_jump_m: float = 0.08
    confirm_frames: int = 3


@dataclass
class Result:
    estimates: list[Estimate]
    detections: dict[str, Detection]
    stamp_ns: int

    def positions(self) -> dict[str, np.ndarray]:
        return {e.name: e.position_m for e in self.estimates}


class Perception:
    def __init__(self, settings: PerceptionSettings) -> None:
        self.settings = settings
        self.colors = ColorDetector({o.name: o.color for o in settings.objects}, settings.min_area_px)
        self.yolo = None
        self.warnings: list[str] = []
        if settings.yolo_weights:
            self.yolo = YoloDetector(
                settings.yolo_weights,
                {o.name: o.yolo_class or o.name for o in settings.objects},
                imgsz=settings.yolo_imgsz_px,
            )
        else:
            self.warnings.append("no YOLO weights given: objects are found by colour alone")
        self.tracker = ObjectTracker(
            [o.name for o in settings.objects], settings.smoothing, settings.max_jump_m, settings.confirm_frames
        )
        self._offset = {o.name: o.depth_offset_m for o in settings.objects}

    def detect(self, frame: Frame) -> dict[str, Detection]:
        colors = self.colors.detect(frame.color)
        if self.yolo is None:
            return colors
        return fuse(self.yolo.detect(frame.color), colors)

    def locate(self, frame: Frame, d: Detection) -> np.ndarray | None:
        """The object's centre in the base frame, or None without enough depth under it."""
        if d.mask is not None:
            z = frame.depth_m[d.mask]
        else:
            x0, y0, x1, y1 = d.box
            z = frame.depth_m[y0:y1, x0:x1].reshape(-1)
        z = z[np.isfinite(z) & (z > 0)]
        if len(z) < _MIN_DEPTH_PIXELS:
            return None
        surface = frame.intrinsics.deproject(d.u, d.v, float(np.median(z)))
        ray = surface / np.linalg.norm(surface)
        p_cam = surface + ray * self._offset.get(d.name, 0.0)
        T = self.settings.T_base_camera
        return T[:3, :3] @ p_cam + T[:3, 3]

    def process(self, frame: Frame) -> Result:
        dets = self.detect(frame)
        seen = {}
        for name, d in dets.items():
            p = self.locate(frame, d)
            if p is not None:
                seen[name] = (p, d.score)
        return Result(self.tracker.update(frame.stamp_ns, seen), dets, frame.stamp_ns)


def annotate(frame: Frame, result: Result) -> np.ndarray:
    """The colour image with each found object's box, centre and base-frame position."""
    import cv2

    img = np.ascontiguousarray(frame.color.copy())
    est = {e.name: e for e in result.estimates}
    for name, d in result.detections.items():
        x0, y0, x1, y1 = d.box
        cv2.rectangle(img, (x0, y0), (x1, y1), (255, 255, 0), 1)
        cv2.circle(img, (int(d.u), int(d.v)), 3, (255, 255, 0), -1)
        p = est[name].position_m if name in est else np.full(3, np.nan)
        cv2.putText(
            img,
            f"{name} {p[0]:+.3f} {p[1]:+.3f} {p[2]:+.3f}",
            (x0, max(10, y0 - 4)),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.4,
            (255, 255, 255),
            1,
            cv2.LINE_AA,
        )
    missing = [e.name for e in result.estimates if e.confidence == 0]
    if missing:
        cv2.putText(
            img,
            "not seen: " + ", ".join(missing),
            (8, img.shape[0] - 8),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.45,
            (255, 80, 80),
            1,
            cv2.LINE_AA,
        )
    return img
