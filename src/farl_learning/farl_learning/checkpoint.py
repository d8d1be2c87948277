"""Checkpoints written atomically (temp file in the same folder, fsync, rename): a crash or a reader
mid-write never sees half a file. Each holds its modules' weights, the config that built them and
a format tag; loading names the file in every error.

Loading never unpickles arbitrary objects (`torch.load(weights_only=True)`): policies are
hot-reloaded by running nodes, from disk or from the learner's `policy_weights` messages, and
unpickling can run any code the bytes carry. A checkpoint holds tensors and plain data (dicts,
lists, numbers, strings) only; one carrying a pickled Python object is refused.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import re
import tempfile
from pathlib import Path
from typing import Any

import torch

from farl_common.runtime.node import NodeError

FORMAT = "farl-checkpoint-1"


class CheckpointError(NodeError):
    """A checkpoint that is missing, unreadable or of the wrong kind; the message names the file. A
    NodeError: a node that cannot load its model at start says so in one line and exits 1."""


def save_atomic(path: str | Path, payload: dict[str, Any]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save({"format": FORMAT, **payload}, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a checkpoint is shared with other nodes
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def to_bytes(payload: dict[str, Any]) -> bytes:
    """A checkpoint as the bytes `save_atomic` would write: what the learner publishes on
    `policy_weights` for nodes with no shared disk (`loads` reads it back)."""
    buf = io.BytesIO()
    torch.save({"format": FORMAT, **payload}, buf)
    return buf.getvalue()


def load(path: str | Path, kind: str | None = None) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    return _read(path, str(path), kind)


def loads(data: bytes, source: str, kind: str | None = None) -> dict[str, Any]:
    """A checkpoint from its bytes (`to_bytes`), checked as `load` checks a file; `source` names it in errors."""
    return _read(io.BytesIO(bytes(data)), source, kind)


def _read(f: Any, source: str, kind: str | None) -> dict[str, Any]:
    expected = f"farl expected a {kind or 'farl'} checkpoint ({FORMAT}) from farl pretrain or the learner"
    try:
        data = torch.load(f, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"GLOBAL ([\w.]+)", str(err), re.IGNORECASE)
        if found is None:  # not a pickle at all, or a broken one; torch's message advises an unsafe load
            raise CheckpointError(
                f"{source}: unreadable checkpoint: not a file torch.save wrote (truncated, or another format); "
                f"{expected}"
            ) from None
        raise CheckpointError(
            f"{source}: refused: it carries pickled Python objects ({found.group(1)}), which could run code "
            "when loaded; farl checkpoints hold tensors and plain data only"
        ) from None
    except Exception as err:  # noqa: BLE001 - pickle, zip and torch errors all mean: unreadable
        why = str(err).split(". ")[0] if "weights_only" not in str(err) else "not a file torch.save wrote"
        raise CheckpointError(f"{source}: unreadable checkpoint ({type(err).__name__}: {why}); {expected}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{source}: not a farl checkpoint")
    if kind is not None and data.get("kind") != kind:
        raise CheckpointError(f"{source}: holds a {data.get('kind')!r}, expected a {kind!r}")
    return data


def policy_label(policy: torch.nn.Module) -> str:
    """The `policy` label of the actions a task policy plays (`learned:<weights fingerprint>`): the same in
    every node and run that holds these weights; the learner trains only on episodes carrying its own."""
    return f"learned:{weights_fingerprint(policy)}"


def weights_fingerprint(module: torch.nn.Module) -> str:
    """12 hex digits of SHA-256 over a module's weights: the same policy loaded from any file, in
    any process, gets the same label (episodes name the policy that played them with it)."""
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()[:12]
