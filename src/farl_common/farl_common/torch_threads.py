"""torch's CPU threads, chosen deliberately rather than left to torch.

farl's networks are small MLPs: a training step is many small matrix products whose cost is mostly
per-call overhead, so torch's default pool (one thread per core) gains little on a quiet machine
and loses badly on a busy one (a world-model step took 9 s instead of 0.45 s on a loaded 2-core
machine, issue 9). farl uses one thread unless told otherwise: `farl --threads N`, or FARL_THREADS=N
for the `farl` command and the ROS nodes alike. bench/bench_threads.py measures both ways.
"""

from __future__ import annotations

import os
import sys

ENV = "FARL_THREADS"
DEFAULT_THREADS = 1


def default_threads() -> int:
    """$FARL_THREADS, else one thread."""
    raw = os.environ.get(ENV)
    if raw is None or not raw.strip():
        return DEFAULT_THREADS
    try:
        n = int(raw)
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"{ENV}={raw!r}: must be a whole number >= 1")
    return n


def use_threads(n: int | None = None) -> int:
    """Set torch's intra-op threads to `n` (default: `default_threads()`). Where torch is not loaded yet,
    the same number goes into OMP_NUM_THREADS and MKL_NUM_THREADS, which torch reads when it is first
    imported: a command that refuses its input, or never needs torch, does not pay for importing it.
    Returns the number set."""
    n = default_threads() if n is None else n
    if n < 1:
        raise ValueError(f"threads must be >= 1, got {n}")
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(n)
    else:
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(n)
    return n
