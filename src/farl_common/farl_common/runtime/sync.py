"""Approximate-time synchronisation of several inputs by header stamp.

The policy is message_filters' ApproximateTimeSynchronizer (the Python one shipped with ROS 2):
each input keeps its last `queue_size` messages by stamp; when a message arrives, the first set
with one message per input whose stamps all lie within `slop` is delivered, nearest stamps first,
and those messages are dropped from their queues.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from farl_common.messages import stamp_ns


class ApproximateTimeSync:
    def __init__(self, n_inputs: int, slop_s: float, callback: Callable[..., None], queue_size: int = 10) -> None:
        if n_inputs < 2:
            raise ValueError("synchronising needs at least two inputs")
        if slop_s <= 0:
            raise ValueError(f"slop_s must be > 0, got {slop_s}")
        self.slop_ns = int(slop_s * 1e9)
        self.queue_size = queue_size
        self.callback = callback
        self.queues: list[dict[int, Any]] = [{} for _ in range(n_inputs)]

    def add(self, index: int, msg: Any) -> None:
        t = stamp_ns(msg)
        q = self.queues[index]
        q[t] = msg
        while len(q) > self.queue_size:
            del q[min(q)]
        candidates: list[list[int]] = []
        for i, other in enumerate(self.queues):
            if i == index:
                continue
            near = sorted((s for s in other if abs(s - t) <= self.slop_ns), key=lambda s: abs(s - t))
            if not near:
                return
            candidates.append(near)
        for combo in itertools.product(*candidates):
            stamps = list(combo)
            stamps.insert(index, t)
            if max(stamps) - min(stamps) <= self.slop_ns:
                msgs = [self.queues[i][s] for i, s in enumerate(stamps)]
                for i, s in enumerate(stamps):
                    del self.queues[i][s]
                self.callback(*msgs)
                return
