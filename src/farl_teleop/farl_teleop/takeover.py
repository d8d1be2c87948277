"""Who acts this step during online learning: the policy (through the shield) or a person.

One rule, used by the teleop node and by `farl finetune --person`: a person who moves the device
beyond its deadband has the arm; while they rest it, the hand holds; `release_s` after their last
movement the policy has it again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from farl_teleop.operators import OperatorInput

TAKEOVER_ENDS = ("resume", "end_episode")


@dataclass
class Decision:
    action: np.ndarray
    intervened: bool
    """The person's action (or their hold): source TELEOP, out of PPO's policy term."""
    released: bool
    """A takeover ended at this step: the policy's action goes out again (or the episode ends)."""


class TakeoverArbiter:
    def __init__(self, release_s: float = 1.0) -> None:
        self.release_s = release_s
        self.active_until_s = -np.inf
        self.in_takeover = False
        self.last = OperatorInput(None)

    def observe(self, inp: OperatorInput, now_s: float) -> None:
        """The person's latest input (from each device poll)."""
        self.last = inp
        if inp.action is not None:
            self.active_until_s = now_s + self.release_s

    def active(self, now_s: float) -> bool:
        return now_s <= self.active_until_s

    def decide(self, policy_action: np.ndarray, now_s: float) -> Decision:
        if self.active(now_s):
            self.in_takeover = True
            return Decision(self.last.command(), True, False)  # resting, not yet released: a hold
        released, self.in_takeover = self.in_takeover, False
        return Decision(np.asarray(policy_action, dtype=np.float64), False, released)

    def reset(self) -> None:
        """A new episode: nobody holds the arm."""
        self.active_until_s = -np.inf
        self.in_takeover = False
        self.last = OperatorInput(None)


@dataclass
class PersonSettings:
    """A scripted person at the controls during `farl finetune` (see `ScriptedPerson`)."""

    takeover_m: float = 0.03
    """Grabs the controls when the object comes this close to its hazard."""
    carry_s: float = 2.0
    """Lets go after this long."""
    release_s: float = 1.0
    """Control returns to the policy this long after the person let go."""
    takeover_end: str = "resume"
    """After a takeover: resume (the policy acts again) or end_episode."""

    def __post_init__(self) -> None:
        if self.takeover_end not in TAKEOVER_ENDS:
            raise ValueError(f"takeover_end must be one of {TAKEOVER_ENDS}, got {self.takeover_end!r}")
        if not self.takeover_m > 0 or self.carry_s <= 0 or self.release_s < 0:
            raise ValueError("person: takeover_m and carry_s must be > 0, release_s >= 0")

    def make(self, task: str) -> PersonAtControls:
        return PersonAtControls(task, self)


class PersonAtControls:
    """One environment's scripted person and arbiter, keeping what the person did as recovery data."""

    def __init__(self, task: str, settings: PersonSettings) -> None:
        from farl_teleop.operators import ScriptedPerson

        self.settings = settings
        self.person = ScriptedPerson(task, settings.takeover_m, settings.carry_s)
        self.arbiter = TakeoverArbiter(settings.release_s)
        self.segments: list[Any] = []
        """This episode's takeovers so far, each a `CollectedEpisode` of the person's steps."""
        self._open: Any = None
        """The takeover under way, if any: where the step being executed is recorded."""

    def new_episode(self, obs: np.ndarray) -> None:
        self.arbiter.reset()
        self.person.new_episode()
        self.segments, self._open = [], None

    def step(self, obs: np.ndarray, policy_action: np.ndarray, now_s: float) -> Decision:
        from farl_common.episode_bag import CollectedEpisode

        self.arbiter.observe(self.person.poll(now_s, obs), now_s)
        d = self.arbiter.decide(policy_action, now_s)
        if not d.intervened:
            self._open = None
        elif self._open is None:
            self._open = CollectedEpisode(np.asarray(obs))
            self.segments.append(self._open)
        return d

    def record(self, action, reward, info, terminated, truncated, next_obs) -> None:
        """The outcome of the step `step` decided; kept when the person acted."""
        from farl_common.episode_bag import Step

        if self._open is not None:
            self._open.steps.append(
                Step(
                    np.asarray(action),
                    float(reward),
                    dict(info),
                    bool(terminated),
                    bool(truncated),
                    np.asarray(next_obs),
                )
            )

    def save_takeovers(self, folder: Path, task: str, episode: int, seed: int) -> list[Path]:
        """Each takeover of the episode as a recovery bag; a bag already there (a resumed run) is kept."""
        from farl_common.episode_bag import write_episode_bag
        from farl_common.obs_layout import OBS_LAYOUT

        out = []
        for k, seg in enumerate(self.segments):
            path = Path(folder) / f"takeover_{task}_ep{episode:06d}_{k}"
            if not path.exists():
                broke = any(s.info.get("failure", False) for s in seg.steps)
                write_episode_bag(
                    path,
                    seg,
                    task=task,
                    kind="recovery",
                    seed=seed,
                    layout=OBS_LAYOUT,
                    source="teleop",
                    outcome="failure" if broke else "success",
                    policy="teleop:scripted",
                )
            out.append(path)
        self.segments, self._open = [], None
        return out
