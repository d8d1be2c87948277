"""One episode's transitions, already collected, written as an episode bag in the graph's layout."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from farl_common.bags import EpisodeBagWriter
from farl_common.episode_messages import EpisodeMessages
from farl_common.messages import TypestoreFactory
from farl_common.topics import DEFAULT_TOPICS, TOPIC_TYPES

PERIOD_NS = 200_000_000
"""5 Hz, the real robot's control rate: stamps of episodes that never ran on a clock."""
T0_NS = 1_000_000_000


@dataclass
class Step:
    action: np.ndarray
    reward: float
    info: dict[str, Any]
    terminated: bool
    truncated: bool
    next_obs: np.ndarray


@dataclass
class CollectedEpisode:
    first_obs: np.ndarray
    steps: list[Step] = field(default_factory=list)


def write_episode_bag(
    path: str | Path,
    episode: CollectedEpisode,
    *,
    task: str,
    kind: str,
    seed: int,
    layout: Sequence[tuple[str, int]],
    source: str,
    outcome: str | None = None,
    number: int = 0,
    policy: str = "",
) -> Path:
    """Write `episode` (states, executed actions, feedback, start and end events) to a new bag."""
    rec = EpisodeMessages(
        TypestoreFactory(), task=task, kind=kind, episode=number, seed=seed, layout=layout, policy=policy
    )
    t = T0_NS

    def put(writer: EpisodeBagWriter, topic: str, msg: Any) -> None:
        writer.write(DEFAULT_TOPICS[topic], TOPIC_TYPES[topic], msg, t)

    with EpisodeBagWriter(path, metadata={"task": task, "kind": kind, "seed": seed}) as writer:
        put(writer, "episode_event", rec.start(t))
        put(writer, "state", rec.state(t, 0, episode.first_obs))
        for k, s in enumerate(episode.steps):
            put(writer, "action_executed", rec.action(t, k, s.action, source))
            t += PERIOD_NS
            put(writer, "step_feedback", rec.feedback(t, k, s.reward, s.info, s.terminated, s.truncated))
            put(writer, "state", rec.state(t, k + 1, s.next_obs))
        end = rec.end(t, outcome)
        put(writer, "episode_event", end)
        writer.set_metadata("outcome", str(end.outcome))
    return Path(path)
