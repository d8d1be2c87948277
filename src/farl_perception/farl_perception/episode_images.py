"""Camera images from episode bags, one per state: what FOSP's world model reads beside the state (its
real-robot input, 64 x 64 colour images).

A bag recorded with `recorder.record_images` (or demonstrations made with `farl demos --images`) holds
the colour camera's frames on `/camera/camera/color/image_raw`. Each state of the episode gets the
newest frame received at or before it; a state with no frame, or only one older than `max_age_s`,
is an error naming the bag and the step, never a silently shifted image. Frames are cut to their
centre square and area-averaged down to `size` x `size`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from farl_common import typestore as T
from farl_common.bags import BagError, Dataset, Episode, unreadable_bag
from farl_common.topics import DEFAULT_TOPICS
from farl_perception.image_messages import ImageError, decode_color

MAX_AGE_S = 0.5
"""Oldest a frame may be, against the state it goes with (2.5 steps at 5 Hz)."""


def square_resize(img: np.ndarray, size: int) -> np.ndarray:
    """The centre square of an H x W x 3 uint8 image, area-averaged to size x size (uint8)."""
    h, w = img.shape[:2]
    side = min(h, w)
    if side < size:
        raise ImageError(f"a {w}x{h} image is smaller than the {size}x{size} the world model reads")
    top, left = (h - side) // 2, (w - side) // 2
    sq = img[top : top + side, left : left + side].astype(np.float64)
    # the integral image gives each output pixel the mean of the source pixels it covers
    cum = np.zeros((side + 1, side + 1, sq.shape[2]))
    cum[1:, 1:] = sq.cumsum(0).cumsum(1)
    edges = np.rint(np.linspace(0, side, size + 1)).astype(int)
    a, b = edges[:-1], edges[1:]
    total = cum[b][:, b] - cum[a][:, b] - cum[b][:, a] + cum[a][:, a]
    area = ((b - a)[:, None] * (b - a)[None, :])[..., None]
    return np.clip(np.rint(total / area), 0, 255).astype(np.uint8)


def episode_frames(ep: Episode, size: int, topics: dict[str, str] | None = None, max_age_s: float = MAX_AGE_S):
    """(T+1, size, size, 3) uint8: the camera image with each state of `ep` (its T rows' states, then the
    last next state), read from the bag `ep.path`. Raises BagError naming the bag and the step."""
    from rosbags.highlevel import AnyReader

    topics = {**DEFAULT_TOPICS, **(topics or {})}
    path = Path(ep.path)
    if len(ep.step) != len(ep):
        raise BagError(f"{path}: the episode carries no step numbers (read it with farl_common.bags.read_episode)")
    wanted = [int(k) for k in ep.step] + ([int(ep.step[-1]) + 1] if len(ep) else [])
    try:
        with AnyReader([path], default_typestore=T.farl_typestore()) as reader:
            return _frames_at_states(reader, path, wanted, size, topics, max_age_s)
    except BagError:
        raise
    except Exception as err:  # noqa: BLE001 - rosbags, mcap and CDR errors all mean: this bag is bad
        raise unreadable_bag(path, err) from None


def _frames_at_states(reader, path: Path, wanted: list[int], size: int, topics: dict[str, str], max_age_s: float):
    state_t: dict[int, int] = {}
    frames: list[tuple[int, bytes, str]] = []
    conns = [c for c in reader.connections if c.topic in (topics["state"], topics["camera_color"])]
    for conn, t, raw in reader.messages(connections=conns):
        if conn.topic == topics["state"]:
            state_t.setdefault(int(reader.deserialize(raw, conn.msgtype).step), int(t))
        else:
            frames.append((int(t), raw, conn.msgtype))
    if not frames:
        raise BagError(
            f"{path}: no camera images on {topics['camera_color']} (record with recorder.record_images, "
            "or make demos with farl demos --images)"
        )
    frames.sort(key=lambda f: f[0])
    times = np.array([f[0] for f in frames])
    out = np.empty((len(wanted), size, size, 3), np.uint8)
    decoded: dict[int, np.ndarray] = {}
    for row, k in enumerate(wanted):
        if k not in state_t:
            raise BagError(f"{path}: no state message for step {k}")
        i = int(np.searchsorted(times, state_t[k], side="right")) - 1
        if i < 0 or (state_t[k] - times[i]) > max_age_s * 1e9:
            age = "none before it" if i < 0 else f"the newest is {(state_t[k] - times[i]) / 1e9:.2f} s old"
            raise BagError(f"{path}: no camera image within {max_age_s} s of step {k} ({age})")
        if i not in decoded:
            try:
                decoded[i] = square_resize(decode_color(reader.deserialize(frames[i][1], frames[i][2])), size)
            except ImageError as err:
                raise BagError(f"{path}: step {k}: {err}") from None
        out[row] = decoded[i]
    return out


def dataset_frames(ds: Dataset, size: int, topics: dict[str, str] | None = None) -> list[np.ndarray]:
    """`episode_frames` of every episode in `ds`, in its order (`SequenceBuffer.from_dataset`'s frames)."""
    return [episode_frames(ep, size, topics) for ep in ds.episodes]
