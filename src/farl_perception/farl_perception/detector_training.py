"""`farl perception train-detector`: YOLOv8n fine-tuned on frames from recorded bags, offline.

Labels are bootstrapped from the colour filter (the paper's objects are painted, Sec. VI): each
frame's largest blob of an object's colour becomes that object's box, a frame where the colour finds
nothing is kept as a background image. Validation frames come from other bags (other episodes)
than the training frames wherever there are two bags or more, so the figure printed at the end is
not measured on near-copies of the training images. Nothing is downloaded: the network starts from
`yolov8n.yaml` or from weights the user gives, and ultralytics' font check finds a local font.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from farl_perception.detect import ColorDetector, ColorRange
from farl_perception.recorded_sources import BagFrame

Box = tuple[int, float, float, float, float]
"""YOLO label: class, centre x, centre y, width, height, all but the class as fractions of the image."""


class TrainingError(RuntimeError):
    """Training cannot start or did not produce weights; the message says why in one line."""


@dataclass
class DetectorTrainingSettings:
    """What `farl perception train-detector` does; every field is a command-line option."""

    epochs: int = 30
    """Passes over the training frames (about 10 s each for 20 frames at 640 px on 2 cores)."""
    imgsz_px: int = 416
    """Network input size; the same value belongs in perception.yolo_imgsz_px."""
    every: int = 5
    """Take every n-th frame of a bag: consecutive frames at 5 Hz are near-duplicates."""
    max_frames: int = 600
    """At most this many frames in all (the first ones, in bag order)."""
    val_fraction: float = 0.2
    """Share of the bags (at least one, if there are two) held out for validation."""
    batch: int = 8
    weights: str = ""
    """Start from these YOLOv8 weights (a file); empty: from scratch (yolov8n.yaml)."""
    seed: int = 0
    min_area_px: int = 30
    """A colour blob smaller than this is not labelled."""


@dataclass
class TrainingResult:
    weights: Path
    """The trained detector: set perception.yolo_weights to it."""
    train_frames: int
    val_frames: int
    boxes: dict[str, int]
    """Labelled boxes per object over all frames."""
    metrics: dict[str, float] = field(default_factory=dict)
    """ultralytics' validation figures of the final weights (precision, recall, mAP50, mAP50-95)."""


def bootstrap_labels(rgb: np.ndarray, detector: ColorDetector, names: list[str]) -> list[Box]:
    """The colour filter's boxes as YOLO labels, one per object found."""
    h, w = rgb.shape[:2]
    out: list[Box] = []
    for name, d in detector.detect(rgb).items():
        x0, y0, x1, y1 = d.box
        out.append((names.index(name), (x0 + x1) / 2 / w, (y0 + y1) / 2 / h, (x1 - x0) / w, (y1 - y0) / h))
    return out


def _split(bags: list[Path], val_fraction: float) -> set[Path]:
    """The bags held out for validation: the last ones, at least one when there are two or more."""
    if len(bags) < 2:
        return set()
    n = min(len(bags) - 1, max(1, round(len(bags) * val_fraction)))
    return set(bags[-n:])


def write_dataset(
    frames: Iterable[BagFrame], out: Path, colors: dict[str, ColorRange], s: DetectorTrainingSettings
) -> tuple[Path, dict[str, int], int, int]:
    """An ultralytics detection dataset under `out` (images/, labels/, data.yaml).

    Returns data.yaml, boxes per object, and the training and validation frame counts."""
    import cv2

    names = list(colors)
    detector = ColorDetector(colors, s.min_area_px)
    items: list[tuple[BagFrame, list[Box]]] = []
    for item in frames:
        items.append((item, bootstrap_labels(item.frame.color, detector, names)))
        if len(items) >= s.max_frames:
            break
    if not items:
        raise TrainingError("no camera frames in the bags (record with perception.record_images: true)")
    boxes = {n: sum(1 for _, labels in items for c, *_ in labels if names[c] == n) for n in names}
    if not any(boxes.values()):
        raise TrainingError(
            f"the colour filter found none of {', '.join(names)} in {len(items)} frames: "
            "check perception.hsv_lo/hsv_hi with farl perception view"
        )
    bags = list(dict.fromkeys(i.bag for i, _ in items))
    val_bags = _split(bags, s.val_fraction)
    if not val_bags:  # one bag: every fifth frame validates
        val_idx = set(range(4, len(items), 5)) or {len(items) - 1}
    else:
        val_idx = {k for k, (i, _) in enumerate(items) if i.bag in val_bags}
    if out.exists():
        shutil.rmtree(out)
    counts = {"train": 0, "val": 0}
    for k, (item, labels) in enumerate(items):
        split = "val" if k in val_idx else "train"
        counts[split] += 1
        stem = f"{k:06d}"
        (out / "images" / split).mkdir(parents=True, exist_ok=True)
        (out / "labels" / split).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(out / "images" / split / f"{stem}.png"), item.frame.color[..., ::-1])
        (out / "labels" / split / f"{stem}.txt").write_text(
            "".join(f"{c} {x:.6f} {y:.6f} {w:.6f} {h:.6f}\n" for c, x, y, w, h in labels)
        )
    if counts["train"] == 0:
        raise TrainingError(f"only {len(items)} frames: too few to train on (record more, or lower --every)")
    data = out / "data.yaml"
    names_yaml = "".join(f"  {i}: {n}\n" for i, n in enumerate(names))
    data.write_text(f"path: {out.resolve()}\ntrain: images/train\nval: images/val\nnames:\n{names_yaml}")
    return data, boxes, counts["train"], counts["val"]


def offline_ultralytics(config_dir: Path):
    """ultralytics set up to never reach the network: YOLO_OFFLINE, its settings under `config_dir`
    (unless the user set YOLO_CONFIG_DIR), and a local font where training's plots look for Arial."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_CONFIG_DIR", str(config_dir))
    try:
        import ultralytics
        from ultralytics.utils import checks
    except ImportError as err:
        raise TrainingError(f"ultralytics is not installed ({err}): pip install -e .[camera]") from None
    import matplotlib

    font = Path(checks.USER_CONFIG_DIR) / "Arial.ttf"
    if not font.exists():
        font.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf", font)
    return ultralytics


def train_detector(
    frames: Iterator[BagFrame], out: Path, colors: dict[str, ColorRange], s: DetectorTrainingSettings
) -> TrainingResult:
    """Label, split, train on CPU; the best weights end up in `out/detector.pt`."""
    if s.weights and not Path(s.weights).is_file():
        raise TrainingError(f"--weights {s.weights}: no such file")
    out.mkdir(parents=True, exist_ok=True)
    data, boxes, n_train, n_val = write_dataset(frames, out / "dataset", colors, s)
    ultralytics = offline_ultralytics(out / ".ultralytics")
    model = ultralytics.YOLO(s.weights or "yolov8n.yaml")
    try:
        model.train(
            data=str(data),
            epochs=s.epochs,
            imgsz=s.imgsz_px,
            batch=s.batch,
            device="cpu",
            workers=0,
            amp=False,
            plots=False,
            seed=s.seed,
            project=str(out.resolve()),
            name="train",
            exist_ok=True,
            verbose=False,
        )
    except Exception as err:  # noqa: BLE001 - ultralytics raises many types; say what it said
        raise TrainingError(
            f"YOLO training failed ({type(err).__name__}: {' '.join(str(err).split())[:300]})"
        ) from None
    trainer = model.trainer
    best = Path(trainer.best) if trainer.best and Path(trainer.best).exists() else Path(trainer.last)
    if not best.exists():
        raise TrainingError(f"YOLO training wrote no weights under {out / 'train'}")
    weights = out / "detector.pt"
    shutil.copy(best, weights)
    metrics = {
        k.split("/")[-1].replace("(B)", ""): float(v)
        for k, v in (trainer.metrics or {}).items()
        if k.startswith("metrics/")
    }
    return TrainingResult(weights, n_train, n_val, boxes, metrics)
