"""A pre-training run's manifest: what was trained from what, written last and atomically.

`farl pretrain` writes the checkpoints one by one; a Ctrl-C (or a full disk, or a kill) between them
leaves a folder that holds some and not others. Only `manifest.json`, written after the last one,
says the run is complete: it lists each checkpoint with its SHA-256, the demos it came from and the
settings. Every consumer (`farl sim`, `finetune`, `calibrate-shield`, `replay`, the launch of a
learned graph) checks it first and refuses an incomplete or altered run in one line.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from farl_learning.checkpoint import CheckpointError

MANIFEST = "manifest.json"
REQUIRED = ("task_policy.pt", "recovery_policy.pt", "world_model.pt")
"""What a learned graph cannot run without (the alternative critics are listed when trained)."""


class IncompleteRun(CheckpointError):
    """A run folder that is missing, unfinished or altered since pre-training; the message says which."""


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_manifest(run: str | Path, task: str, sources: dict[str, Any]) -> Path:
    """Seal `run`: every checkpoint in it with its digest, plus `sources` (demos, settings, seed)."""
    run = Path(run)
    files = {p.name: file_sha256(p) for p in sorted(run.glob("*.pt"))}
    missing = [f for f in REQUIRED if f not in files]
    if missing:
        raise IncompleteRun(f"{run}: cannot seal a run without {', '.join(missing)}")
    doc = {"task": task, "complete": True, "written": time.strftime("%Y-%m-%d %H:%M:%S"), "files": files, **sources}
    tmp = run / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2, default=str))
    os.replace(tmp, run / MANIFEST)
    return run / MANIFEST


def check_run(run: str | Path) -> dict[str, Any]:
    """The manifest of a complete, unaltered run; IncompleteRun (one line) otherwise."""
    run = Path(run)
    if not run.is_dir():
        raise IncompleteRun(f"{run}: no such run folder (farl pretrain --out {run} makes one)")
    path = run / MANIFEST
    if not path.is_file():
        if any(run.glob("*.pt")):
            raise IncompleteRun(
                f"{run}: pre-training did not finish (no {MANIFEST}; interrupted?): run farl pretrain --out {run} again"
            )
        raise IncompleteRun(f"{run}: not a pre-training run (no {MANIFEST}; farl pretrain --out {run} makes one)")
    try:
        doc = json.loads(path.read_text())
        files = dict(doc["files"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise IncompleteRun(f"{path}: unreadable manifest ({type(err).__name__}); pre-train again") from None
    for name, digest in files.items():
        f = run / name
        if not f.is_file():
            raise IncompleteRun(f"{run}: {name} is missing since pre-training finished")
        if file_sha256(f) != digest:
            raise IncompleteRun(f"{run}: {name} changed since pre-training finished (its SHA-256 differs)")
    return doc
