"""Finding the task's objects in a colour image: an HSV colour filter, YOLOv8, and their fusion.

The colour filter alone is the default (the paper's objects are painted); with YOLO weights a box
counts only where the object's colour confirms it, which drops look-alike detections and keeps
YOLO's robustness to lighting. YOLO weights come from a file the user gave: nothing downloads.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class ColorRange:
    """An object's colour as an OpenCV HSV box (H in 0..179; two boxes for reds, which wrap)."""

    lo: tuple[int, int, int]
    hi: tuple[int, int, int]
    lo2: tuple[int, int, int] | None = None
    hi2: tuple[int, int, int] | None = None


@dataclass(frozen=True)
class Detection:
    name: str
    u: float
    v: float
    """Pixel centre of the object's visible area."""
    box: tuple[int, int, int, int]
    """x0, y0, x1, y1."""
    area_px: int
    score: float
    """0..1: YOLO's confidence, or the colour blob's fill of its box."""
    mask: np.ndarray | None = None


class ColorDetector:
    def __init__(self, colors: dict[str, ColorRange], min_area_px: int = 30) -> None:
        self.colors, self.min_area_px = colors, min_area_px

    def mask(self, hsv: np.ndarray, c: ColorRange) -> np.ndarray:
        import cv2

        m = cv2.inRange(hsv, np.array(c.lo), np.array(c.hi))
        if c.lo2 is not None and c.hi2 is not None:
            m |= cv2.inRange(hsv, np.array(c.lo2), np.array(c.hi2))
        return m

    def detect(self, rgb: np.ndarray) -> dict[str, Detection]:
        """The largest blob of each object's colour (a blob below `min_area_px` is not a detection)."""
        import cv2

        hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
        out: dict[str, Detection] = {}
        for name, c in self.colors.items():
            m = self.mask(hsv, c)
            n, labels, stats, centroids = cv2.connectedComponentsWithStats(m, connectivity=8)
            if n <= 1:
                continue
            k = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
            x, y, w, h, area = (int(v) for v in stats[k])
            if area < self.min_area_px:
                continue
            out[name] = Detection(
                name,
                float(centroids[k][0]),
                float(centroids[k][1]),
                (x, y, x + w, y + h),
                area,
                min(1.0, area / max(1, w * h)),
                labels == k,
            )
        return out


class YoloDetector:
    """YOLOv8 through ultralytics, from a weights file; `classes` maps object names to class names."""

    def __init__(self, weights: str | Path, classes: dict[str, str], conf: float = 0.25, imgsz: int = 416) -> None:
        """`imgsz`: YOLO's input size; 416 keeps frame-to-state p95 under 100 ms on 2 cores at 640x480
        (57 ms measured; 115 ms at 640), see bench/bench_perception.py."""
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(
                f"YOLO weights {path}: no such file (train one with farl perception train-detector)"
            )
        os.environ.setdefault("YOLO_OFFLINE", "1")  # never reach for the network
        try:
            from ultralytics import YOLO
        except ImportError as err:
            raise RuntimeError(
                f"YOLO weights given but ultralytics is not installed ({err}): pip install -e .[camera]"
            ) from None
        try:
            self.model = YOLO(str(path))
        except Exception as err:  # noqa: BLE001 - ultralytics raises many types for a bad file
            why = " ".join(str(err).split())[:200]
            raise RuntimeError(f"YOLO weights {path}: cannot be loaded ({type(err).__name__}: {why})") from None
        self.classes, self.conf, self.imgsz = classes, conf, imgsz

    def detect(self, rgb: np.ndarray) -> dict[str, list[Detection]]:
        res = self.model.predict(rgb[..., ::-1], conf=self.conf, imgsz=self.imgsz, verbose=False, device="cpu")[0]
        names = res.names
        wanted = {cls: obj for obj, cls in self.classes.items()}
        out: dict[str, list[Detection]] = {}
        for box, cls, conf in zip(res.boxes.xyxy.numpy(), res.boxes.cls.numpy(), res.boxes.conf.numpy(), strict=True):
            obj = wanted.get(names[int(cls)])
            if obj is None:
                continue
            x0, y0, x1, y1 = (round(float(v)) for v in box)
            out.setdefault(obj, []).append(
                Detection(obj, (x0 + x1) / 2, (y0 + y1) / 2, (x0, y0, x1, y1), (x1 - x0) * (y1 - y0), float(conf))
            )
        return out


def fuse(
    boxes: dict[str, list[Detection]], colors: dict[str, Detection], min_overlap: float = 0.3
) -> dict[str, Detection]:
    """A YOLO box stands where its object's colour fills at least `min_overlap` of it; the colour
    blob inside gives the centre (the visible part, not the box's middle)."""
    out: dict[str, Detection] = {}
    for name, cands in boxes.items():
        c = colors.get(name)
        if c is None or c.mask is None:
            continue
        best: tuple[float, Detection] | None = None
        for d in cands:
            x0, y0, x1, y1 = d.box
            inside = c.mask[max(0, y0) : max(0, y1), max(0, x0) : max(0, x1)]
            frac = float(inside.mean()) if inside.size else 0.0
            if frac >= min_overlap and (best is None or d.score > best[1].score):
                best = (frac, d)
        if best is not None:
            ys, xs = np.nonzero(c.mask[best[1].box[1] : best[1].box[3], best[1].box[0] : best[1].box[2]])
            u = best[1].box[0] + float(xs.mean()) if len(xs) else best[1].u
            v = best[1].box[1] + float(ys.mean()) if len(ys) else best[1].v
            out[name] = Detection(name, u, v, best[1].box, len(xs), best[1].score, c.mask)
    return out
