"""Per-object temporal filtering: smoothing, outlier rejection, confidence and age.

A detection that jumps further than `max_jump_m` from the estimate is held back; if the object
really moved (a person put it elsewhere), `confirm_frames` consistent detections in a row accept
the new place. An object not seen keeps its last estimate, with confidence 0 and a growing age,
so the robot node can hold rather than act on an old position.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Track:
    position_m: np.ndarray
    last_seen_ns: int
    confidence: float
    candidate: np.ndarray | None = None
    candidate_count: int = 0


@dataclass(frozen=True)
class Estimate:
    name: str
    position_m: np.ndarray
    """Base frame; NaN until first seen."""
    confidence: float
    """0 when not seen in this frame."""
    age_s: float
    """Since the object was last seen; inf if never."""


class ObjectTracker:
    def __init__(self, names: list[str], smoothing: float = 0.5, max_jump_m: float = 0.08, confirm_frames: int = 3):
        self.names = list(names)
        self.smoothing, self.max_jump_m, self.confirm_frames = smoothing, max_jump_m, confirm_frames
        self.tracks: dict[str, Track] = {}
        self.rejected = 0

    def update(self, stamp_ns: int, seen: dict[str, tuple[np.ndarray, float]]) -> list[Estimate]:
        """`seen`: name -> (base-frame position, detection score) for the objects found in this frame."""
        out = []
        for name in self.names:
            hit = seen.get(name)
            t = self.tracks.get(name)
            fresh = False
            if hit is not None and np.all(np.isfinite(hit[0])):
                p, score = np.asarray(hit[0], dtype=np.float64), float(hit[1])
                if t is None:
                    t = self.tracks[name] = Track(p.copy(), stamp_ns, score)
                    fresh = True
                elif np.linalg.norm(p - t.position_m) <= self.max_jump_m:
                    t.position_m = self.smoothing * t.position_m + (1 - self.smoothing) * p
                    t.last_seen_ns, t.confidence, t.candidate, t.candidate_count = stamp_ns, score, None, 0
                    fresh = True
                else:
                    self.rejected += 1
                    same = t.candidate is not None and np.linalg.norm(p - t.candidate) <= self.max_jump_m
                    t.candidate, t.candidate_count = p, (t.candidate_count + 1 if same else 1)
                    if t.candidate_count >= self.confirm_frames:
                        t.position_m, t.last_seen_ns, t.confidence = p.copy(), stamp_ns, score
                        t.candidate, t.candidate_count = None, 0
                        fresh = True
            if t is None:
                out.append(Estimate(name, np.full(3, np.nan), 0.0, float("inf")))
            else:
                age = max(0.0, (stamp_ns - t.last_seen_ns) / 1e9)
                out.append(Estimate(name, t.position_m.copy(), t.confidence if fresh else 0.0, age))
        return out
