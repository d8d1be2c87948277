"""Episode bags: one rosbag2 bag per episode, and a reader that turns a folder of them into arrays.

A bag is written in a hidden folder beside its final place (`.farl-partial/NAME`) and moved out when
closed, so a crash never leaves a half bag that looks whole; readers never look inside that folder,
and `farl inspect` reports (and `--clean` removes) what a crash left there. Bags are plain rosbag2
(mcap by default, sqlite3 readable and writable): `ros2 bag play`, rosbags' AnyReader and mcap's
readers open them with no farl code, and `ros2 bag record` output of the same topics trains too.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rosbags.highlevel import AnyReader
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import StoragePlugin, Writer

from farl_common import messages as M
from farl_common import typestore as T
from farl_common.closing import CloseOrAbort
from farl_common.messages import TypestoreFactory
from farl_common.topics import DEFAULT_TOPICS, short_name, topic_qos

PARTIAL_DIR = ".farl-partial"
"""Bags being written live in this hidden folder beside their final place, under their final name
(rosbag2 names the storage file after the bag folder), and move out when closed."""
STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
KIND_CODES = {"task": 0, "recovery": 1, "failure": 2, "online": 3}


def kind_code(kind: str) -> int:
    """A bag from another recorder may carry a kind farl does not write: it is treated as online data."""
    return KIND_CODES.get(kind, KIND_CODES["online"])


SOURCE_TELEOP = 2
"""farl_interfaces/ActionCommand's SOURCE_TELEOP."""


def offered_qos(topic: str) -> Qos:
    """The QoS farl publishes `topic` with, stored with its connection: `ros2 bag play` then offers the
    episode events transient local (keep last 100), as farl's own subscribers require, camera images
    best effort (keep last 5), and the rest reliable, keep last 10 (farl_common.runtime.node.QosName)."""
    qos = topic_qos(short_name(topic) or "")
    zero = QosTime(0, 0)  # rosbag2's "not set"
    return Qos(
        QosHistory.KEEP_LAST,
        {"events": 100, "latest": 1, "sensor": 5}.get(qos, 10),
        QosReliability.BEST_EFFORT if qos == "sensor" else QosReliability.RELIABLE,
        QosDurability.TRANSIENT_LOCAL if qos in ("events", "latest") else QosDurability.VOLATILE,
        zero,
        zero,
        QosLiveliness.AUTOMATIC,
        zero,
        False,
    )


class BagError(RuntimeError):
    """A bag that cannot be read; the message is one line and starts with the bag's path."""


class BagWriteError(BagError):
    """A bag that could not be written (a full disk, a file-size limit, a folder gone): its partial bag
    is removed, so nothing half-written is left to look like an episode."""


class EpisodeBagWriter(CloseOrAbort):
    """Writes one episode bag; the bag appears under its final name only once `close()` succeeds."""

    def __init__(self, path: str | Path, storage: str = "mcap", metadata: dict[str, Any] | None = None) -> None:
        if storage not in STORAGES:
            raise ValueError(f"bag storage must be one of {sorted(STORAGES)}, got {storage!r}")
        self.path = Path(path)
        if self.path.exists():
            raise FileExistsError(f"{self.path}: bag exists already, not overwriting")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.parent / PARTIAL_DIR / self.path.name
        if self._tmp.exists():  # left by a crash: it was never a whole bag
            shutil.rmtree(self._tmp)
        self._tmp.parent.mkdir(exist_ok=True)
        self._factory = TypestoreFactory()
        self._writer = Writer(self._tmp, version=9, storage_plugin=STORAGES[storage])
        for k, v in (metadata or {}).items():
            self._writer.set_custom_data(f"farl.{k}", json.dumps(v))
        self._connections: dict[str, Any] = {}
        self.count = 0
        try:
            self._writer.open()
        except OSError as err:
            raise self._failed(err) from None

    def _failed(self, err: OSError) -> BagWriteError:
        self.abort()
        why = err.strerror or str(err)
        return BagWriteError(f"{self.path}: could not write the bag ({why}); this episode is not saved")

    def write(self, topic: str, typename: str, msg: Any, t_ns: int) -> None:
        self.write_raw(topic, typename, self._factory.serialize(msg, typename), t_ns)

    def write_raw(self, topic: str, typename: str, data: bytes, t_ns: int) -> None:
        conn = self._connections.get(topic)
        if conn is None:
            conn = self._writer.add_connection(
                topic, typename, typestore=self._factory.store, offered_qos_profiles=[offered_qos(topic)]
            )
            self._connections[topic] = conn
        try:
            self._writer.write(conn, int(t_ns), data)
        except OSError as err:
            raise self._failed(err) from None
        self.count += 1

    def set_metadata(self, key: str, value: Any) -> None:
        self._writer.set_custom_data(f"farl.{key}", json.dumps(value))

    def close(self) -> Path:
        try:
            self._writer.close()
            self._tmp.rename(self.path)
        except OSError as err:
            raise self._failed(err) from None
        try:
            self._tmp.parent.rmdir()
        except OSError:  # other bags still being written there
            pass
        return self.path

    def abort(self) -> None:
        """Drop the episode: nothing under the final name, the partial bag removed."""
        try:
            self._writer.close()
        except Exception:  # noqa: BLE001 - aborting: the bag is discarded whatever state it is in
            pass
        shutil.rmtree(self._tmp, ignore_errors=True)
        try:
            self._tmp.parent.rmdir()
        except OSError:
            pass


@dataclass
class StepArrays:
    """The per-step arrays an `Episode` and a `Dataset` share, aligned by step:
    obs[k] --action[k]--> next_obs[k] (a Dataset concatenates its episodes' ones)."""

    obs: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    cost: np.ndarray
    done: np.ndarray
    timeout: np.ndarray
    next_obs: np.ndarray

    def __len__(self) -> int:
        return len(self.reward)


TRANSITION_ARRAYS = tuple(f.name for f in dataclasses.fields(StepArrays))


@dataclass
class Episode(StepArrays):
    """One episode's transitions (`StepArrays`), what the shield decided at each step, and its labels."""

    path: Path
    proposed_action: np.ndarray
    risk: np.ndarray
    swapped: np.ndarray
    kind: str
    task: str
    outcome: str
    policy_version: int
    seed: int
    layout: list[tuple[str, int]] = field(default_factory=list)
    source: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.uint8))
    """Per step, who chose the executed action (ActionCommand.SOURCE_*: policy, recovery, teleop, scripted)."""
    policy: str = ""
    """What played the episode (EpisodeEvent.policy): ``learned:<weights fingerprint>``, ``scripted:...``,
    ``teleop:<device>``, ``mixed``; empty for bags written before farl labelled them."""
    step: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))
    """Per row, the step number its state carries in the bag (rows skip steps a bag lacks a message of)."""

    @property
    def episode_return(self) -> float:
        return float(self.reward.sum())

    @property
    def failed(self) -> bool:
        """Something broke (a cost, or an episode marked failure)."""
        return bool(self.cost.any()) or self.outcome == "failure"

    @property
    def intervened(self) -> np.ndarray:
        """Per step: a person had taken over from the policy (teleop actions in an online episode)."""
        if self.kind != "online" or len(self.source) != len(self):
            return np.zeros(len(self), dtype=bool)
        return self.source == SOURCE_TELEOP

    @property
    def ir_failure(self) -> bool:
        """The paper's failure count: something broke, or a person had to step in."""
        return self.failed or bool(self.intervened.any())


def takeover_segments(ep: Episode) -> list[Episode]:
    """The stretches of an online episode where a person had taken over, each as a recovery episode:
    a person's rescue is a recovery demonstration (the paper's recovery data)."""
    flags = ep.intervened
    out: list[Episode] = []
    k = 0
    while k < len(flags):
        if not flags[k]:
            k += 1
            continue
        end = k
        while end < len(flags) and flags[end]:
            end += 1
        part = {
            f.name: getattr(ep, f.name)[k:end]
            for f in dataclasses.fields(ep)
            if isinstance(getattr(ep, f.name), np.ndarray)  # every array of an Episode is per step
        }
        out.append(dataclasses.replace(ep, **part, kind="recovery", outcome="takeover"))
        k = end
    return out


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return f"{type(err).__name__}: {text}"[:300]


def unreadable_bag(path: str | Path, err: BaseException) -> BagError:
    """The one-line BagError for a bag that rosbags, mcap or the CDR decoder could not read."""
    return BagError(f"{path}: unreadable bag ({_one_line(err)})")


def is_bag_dir(path: Path) -> bool:
    return path.is_dir() and (path / "metadata.yaml").is_file() and path.parent.name != PARTIAL_DIR


CACHE_FORMAT = 3
"""Bumped whenever `_parse_episode` would turn the same bag into different arrays."""
_CACHED_ARRAYS = (*TRANSITION_ARRAYS, "proposed_action", "risk", "swapped", "source", "step")
_CACHED_FIELDS = ("kind", "task", "outcome", "policy_version", "seed", "layout", "policy")


def cache_dir() -> Path | None:
    """Where parsed episodes are kept: $FARL_CACHE_DIR (`off`: no cache), else ~/.cache/farl/episodes."""
    env = os.environ.get("FARL_CACHE_DIR", "")
    if env == "off":
        return None
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "farl" / "episodes"


def read_episode(path: str | Path, topics: dict[str, str] | None = None) -> Episode:
    """Read one episode bag into aligned arrays, or raise BagError naming the bag.

    Parsed arrays are cached (`cache_dir()`) under a key made of the bag's bytes, the topic names
    and `CACHE_FORMAT`: a bag read again loads from the cache, a bag that changed in any byte is
    parsed afresh, and an unreadable bag is never cached. The cache is only an accelerator: a
    missing, unwritable or damaged cache falls back to parsing the bag."""
    path = Path(path)
    topics = {**DEFAULT_TOPICS, **(topics or {})}
    if not path.exists():
        raise BagError(f"{path}: no such bag")
    if path.parent.name == PARTIAL_DIR:
        raise BagError(f"{path}: partial bag (its writer never closed it)")
    cache = cache_dir()
    if cache is None or not path.is_dir():
        return _parse_episode(path, topics)
    entry = cache / f"{_bag_key(path, topics)}.episode"
    ep = _load_cached(entry, path)
    if ep is None:
        ep = _parse_episode(path, topics)
        _store_cached(entry, ep)
    return ep


def _bag_key(path: Path, topics: dict[str, str]) -> str:
    h = hashlib.sha256(f"farl-episode-{CACHE_FORMAT}:{sorted(topics.items())}".encode())
    for f in sorted(p for p in path.iterdir() if p.is_file()):
        h.update(f.name.encode())
        with f.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
    return h.hexdigest()


_CACHE_MAGIC = b"FARL-EPISODE\n"


def _load_cached(entry: Path, path: Path) -> Episode | None:
    """One read of one file: a JSON header, then each array's bytes (npz costs ~1 ms a bag in zip
    members; this ~0.1 ms)."""
    try:
        data = bytearray(entry.read_bytes())  # writable, so the arrays are too
        if not data.startswith(_CACHE_MAGIC):
            return None
        at = len(_CACHE_MAGIC)
        size = int.from_bytes(data[at : at + 8], "little")
        head = json.loads(data[at + 8 : at + 8 + size])
        base = at + 8 + size
        arrays = {
            name: np.frombuffer(data, np.dtype(dtype), int(np.prod(shape)), base + offset).reshape(shape)
            for name, dtype, shape, offset in head["arrays"]
        }
        fields = head["fields"]
        fields["layout"] = [(str(n), int(k)) for n, k in fields["layout"]]
        return Episode(path=path, **{k: arrays[k] for k in _CACHED_ARRAYS}, **fields)
    except Exception:  # noqa: BLE001 - absent, torn or foreign: parse the bag instead
        return None


def _store_cached(entry: Path, ep: Episode) -> None:
    arrays, table, offset = [], [], 0
    for name in _CACHED_ARRAYS:
        a = np.ascontiguousarray(getattr(ep, name))
        arrays.append(a.tobytes())
        table.append([name, a.dtype.str, list(a.shape), offset])
        offset += a.nbytes
    head = json.dumps({"fields": {k: getattr(ep, k) for k in _CACHED_FIELDS}, "arrays": table}).encode()
    tmp = entry.with_name(f".{entry.name}.{os.getpid()}.tmp")
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        with tmp.open("wb") as f:
            f.write(_CACHE_MAGIC + len(head).to_bytes(8, "little") + head)
            for chunk in arrays:
                f.write(chunk)
        os.replace(tmp, entry)
    except OSError:  # a read-only or full cache costs speed, never data
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass


def _parse_episode(path: Path, topics: dict[str, str]) -> Episode:
    by_topic = {
        topics[k]: k
        for k in ("state", "action_proposed", "action_executed", "shield_decision", "step_feedback", "episode_event")
    }
    states: dict[int, np.ndarray] = {}
    executed: dict[int, np.ndarray] = {}
    sources: dict[int, int] = {}
    proposed: dict[int, np.ndarray] = {}
    decisions: dict[int, tuple[float, bool]] = {}
    feedback: dict[int, Any] = {}
    start: Any = None
    end: Any = None
    layout: list[tuple[str, int]] = []
    try:
        with AnyReader([path], default_typestore=T.farl_typestore()) as reader:
            conns = [c for c in reader.connections if c.topic in by_topic]
            for conn, _, raw in reader.messages(connections=conns):
                name = by_topic[conn.topic]
                msg = reader.deserialize(raw, conn.msgtype)
                if name == "state":
                    states[int(msg.step)] = np.asarray(msg.values, dtype=np.float64)
                    if not layout:
                        layout = M.state_layout(msg)
                elif name == "action_executed":
                    executed[int(msg.step)] = np.asarray(msg.values, dtype=np.float64)
                    sources[int(msg.step)] = int(msg.source)
                elif name == "action_proposed":
                    proposed[int(msg.step)] = np.asarray(msg.values, dtype=np.float64)
                elif name == "shield_decision":
                    decisions[int(msg.step)] = (float(msg.risk), bool(msg.swapped))
                elif name == "step_feedback":
                    feedback[int(msg.step)] = msg
                elif name == "episode_event":
                    if int(msg.event) == 0:
                        start = msg
                    else:
                        end = msg
    except BagError:
        raise
    except Exception as err:  # noqa: BLE001 - rosbags, mcap, zstd and CDR errors all mean: this bag is bad
        raise unreadable_bag(path, err) from None
    if not executed:
        executed = proposed  # a graph without a shield executes what the policy proposed
    steps = sorted(k for k in feedback if k in states and k in executed and k + 1 in states)
    if not steps and not states:
        raise BagError(f"{path}: no {topics['state']} messages: not an episode bag")
    event = end or start
    obs_dim = len(next(iter(states.values())))
    act_dim = len(next(iter(executed.values()))) if executed else 0

    def stack(rows: Iterable[np.ndarray], width: int) -> np.ndarray:
        # By row count, not -1: an episode that ended before its first step (aborted at step 0) has
        # no rows, and numpy cannot infer -1 from an empty array.
        listed = list(rows)
        return np.array(listed, dtype=np.float32).reshape(len(listed), width)

    fb = [feedback[k] for k in steps]
    return Episode(
        path=path,
        obs=stack((states[k] for k in steps), obs_dim),
        action=stack((executed[k] for k in steps), act_dim),
        reward=np.array([m.reward for m in fb], dtype=np.float32),
        cost=np.array([m.cost for m in fb], dtype=np.float32),
        done=np.array([m.terminated for m in fb], dtype=bool),
        timeout=np.array([m.truncated for m in fb], dtype=bool),
        next_obs=stack((states[k + 1] for k in steps), obs_dim),
        proposed_action=stack((proposed.get(k, executed[k]) for k in steps), act_dim),
        risk=np.array([decisions.get(k, (np.nan, False))[0] for k in steps], dtype=np.float32),
        swapped=np.array([decisions.get(k, (np.nan, False))[1] for k in steps], dtype=bool),
        kind=str(event.kind) if event is not None else "online",
        task=str(event.task) if event is not None else "",
        outcome=str(end.outcome) if end is not None else "aborted",
        policy_version=int(event.policy_version) if event is not None else 0,
        seed=int(event.seed) if event is not None else -1,
        layout=layout,
        source=np.array([sources.get(k, 0) for k in steps], dtype=np.uint8),
        policy=str(getattr(end, "policy", "")),
        step=np.array(steps, dtype=np.int32),
    )


def iter_bag_paths(root: str | Path) -> Iterator[Path]:
    """Episode bags under `root` (a bag itself, or any folder above bags), sorted, partial ones skipped."""
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"{root}: no such bag or folder")
    if is_bag_dir(root):
        yield root
        return
    for meta in sorted(root.rglob("metadata.yaml")):
        bag = meta.parent
        if not any(part.startswith(".") for part in bag.relative_to(root).parts):
            yield bag


def read_episodes(root: str | Path) -> Iterator[tuple[Path, Episode | None, str]]:
    """Every episode bag under `root` as (path, episode, "") or, for a bag that cannot be read,
    (path, None, its one-line error); BagError when there is no bag at all."""
    paths = list(iter_bag_paths(root))
    if not paths:
        raise BagError(f"{root}: no episode bags here")
    for p in paths:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ep = read_episode(p)
        except BagError as err:
            yield p, None, str(err)
            continue
        yield p, ep, ""


@dataclass
class Dataset(StepArrays):
    """Transitions of many episodes, concatenated (arrays are float32 except flags and codes)."""

    kind: np.ndarray
    episode_index: np.ndarray
    episodes: list[Episode]
    errors: list[str]

    @classmethod
    def from_episodes(cls, episodes: list[Episode], errors: list[str] | None = None) -> Dataset:
        """Concatenate episodes (all with the same state size) into one dataset."""
        obs_dim = episodes[0].obs.shape[1]
        for ep in episodes:
            if ep.obs.shape[1] != obs_dim:
                raise BagError(f"{ep.path}: state has {ep.obs.shape[1]} values, other bags have {obs_dim}")

        def cat(name: str) -> np.ndarray:
            return np.concatenate([getattr(ep, name) for ep in episodes])

        return cls(
            **{name: cat(name) for name in TRANSITION_ARRAYS},
            kind=np.concatenate([np.full(len(ep), kind_code(ep.kind), dtype=np.int8) for ep in episodes]),
            episode_index=np.concatenate([np.full(len(ep), i, dtype=np.int32) for i, ep in enumerate(episodes)]),
            episodes=list(episodes),
            errors=list(errors or []),
        )

    def select(self, kinds: Iterable[str]) -> Dataset:
        codes = [KIND_CODES[k] for k in kinds]
        m = np.isin(self.kind, codes)
        keep = np.unique(self.episode_index[m])  # sorted: searchsorted below renumbers into it
        return Dataset(
            **{name: getattr(self, name)[m] for name in TRANSITION_ARRAYS},
            kind=self.kind[m],
            episode_index=np.searchsorted(keep, self.episode_index[m]).astype(np.int32),
            episodes=[self.episodes[int(i)] for i in keep],
            errors=self.errors,
        )


def load_dataset(
    root: str | Path,
    kinds: Iterable[str] | None = None,
    topics: dict[str, str] | None = None,
    strict: bool = False,
) -> Dataset:
    """Every readable episode under `root` as training arrays.

    A bag that cannot be read is reported (warning, and in `Dataset.errors`) and skipped, so one
    corrupt file loses only itself; `strict=True` raises its BagError instead. When `kinds` asks for
    recovery data, the takeover stretches of online episodes come too (`takeover_segments`).
    """
    want = set(kinds) if kinds is not None else None
    episodes: list[Episode] = []
    errors: list[str] = []
    for p in iter_bag_paths(root):
        try:
            ep = read_episode(p, topics)
        except BagError as err:
            if strict:
                raise
            errors.append(str(err))
            warnings.warn(str(err), stacklevel=2)
            continue
        if want is None or ep.kind in want:
            episodes.append(ep)
        if want is not None and "recovery" in want and ep.kind == "online":
            episodes.extend(takeover_segments(ep))
    if not episodes:
        hint = f" ({len(errors)} unreadable)" if errors else ""
        raise BagError(f"{root}: no readable episode bags{hint}")
    return Dataset.from_episodes(episodes, errors)
