"""SafeReach demonstrations in the FOSP paper's mix (Appendix D.1), written as episode bags.

200 episodes by default: 120 that reach the target without touching an obstacle, 30 that do
neither, 40 that touch an obstacle and still reach, 10 that touch and miss. Each comes from its
kind's scripted driver (`safe_reach_experts.DRIVERS`) with Gaussian action noise, and is kept only
if its outcome is its kind, so the labels are what happened, not what was meant. A bag's kind is
`task` when nothing was touched and `failure` otherwise (what FARL's readers expect); the paper's
four-way label is in its metadata (`label`) and its name.

Every episode is deterministic in (seed, kind, attempt).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from farl_common.bags import EpisodeBagWriter
from farl_common.episode_messages import EpisodeMessages
from farl_common.messages import TypestoreFactory
from farl_common.obs_layout import OBS_LAYOUT
from farl_sim.demos import record_episode
from farl_sim.safe_reach import SafeReachEnv, get_safe_reach
from farl_sim.safe_reach_experts import DRIVERS
from farl_sim.seeding import episode_seed

LABELS = tuple(DRIVERS)
PAPER_MIX: dict[str, int] = {"reached_safe": 120, "neither": 30, "touched_reached": 40, "touched_missed": 10}
"""FOSP Appendix D.1: 200 teleoperated trajectories of the real SafeReach task."""


def label_of(touched: bool, reached: bool) -> str:
    """The paper's four kinds, from what an episode did."""
    if touched:
        return "touched_reached" if reached else "touched_missed"
    return "reached_safe" if reached else "neither"


@dataclass
class SafeReachDemoSummary:
    written: dict[str, list[Path]]
    attempts: dict[str, int]


def generate_safe_reach_demos(
    out_dir: str | Path,
    counts: dict[str, int] | None = None,
    variant: str = "safe_reach",
    seed: int = 0,
    noise_std: float = 0.1,
    storage: str = "mcap",
    max_attempts_factor: int = 20,
    progress: bool = True,
) -> SafeReachDemoSummary:
    """Write `counts` episodes of each kind (default `PAPER_MIX`) into `out_dir`. Bags of an earlier,
    interrupted call with the same seed are kept and the set is completed (a resumed set equals an
    uninterrupted one)."""
    spec = get_safe_reach(variant)
    counts = dict(PAPER_MIX if counts is None else counts)
    unknown = set(counts) - set(LABELS)
    if unknown:
        raise ValueError(f"unknown SafeReach demo kinds {sorted(unknown)}; choose from {', '.join(LABELS)}")
    out = Path(out_dir)
    msgs = TypestoreFactory()
    env = SafeReachEnv(spec.name)
    written: dict[str, list[Path]] = {}
    attempts: dict[str, int] = {}
    bar = tqdm(total=sum(counts.values()), desc=f"SafeReach demos ({spec.name})", unit="ep", disable=not progress)
    try:
        for k_label, (label, n) in enumerate(counts.items()):
            prefix = f"{label}_{spec.name}_s{seed}"
            have = sorted(out.glob(f"{prefix}_ep*")) if out.exists() else []
            written[label] = have[:n]
            bar.update(len(written[label]))
            tries, matched = 0, 0
            while matched < n:
                if tries >= max(n, 1) * max_attempts_factor:
                    raise RuntimeError(f"SafeReach {label} demos: only {matched} of {n} after {tries} tries")
                # Attempts are numbered per kind, so one kind's count never shifts another's episodes.
                ep_seed = episode_seed(seed * len(LABELS) + k_label, tries)
                tries += 1
                if _dry_run(env, spec, label, ep_seed, [seed, k_label, tries - 1], noise_std) != label:
                    continue
                matched += 1
                if matched <= len(written[label]):
                    continue  # written by an interrupted call: the same attempts find the same episodes
                path = out / f"{prefix}_ep{matched - 1:05d}"
                obs, _ = env.reset(seed=ep_seed)
                actor = _actor(spec, label, [seed, k_label, tries - 1], noise_std)
                kind = "failure" if label.startswith("touched") else "task"
                rec = EpisodeMessages(
                    msgs,
                    task=spec.name,
                    kind=kind,
                    episode=matched - 1,
                    seed=ep_seed,
                    layout=OBS_LAYOUT,
                    policy=f"scripted:{spec.name}:{label}",
                )
                meta = {"task": spec.name, "kind": kind, "seed": ep_seed, "label": label}
                with EpisodeBagWriter(path, storage=storage, metadata=meta) as writer:
                    record_episode(env, obs, actor, spec.horizon_steps, rec, writer, "scripted")
                    writer.set_metadata("outcome", rec.outcome)
                if label_of(rec.failed, rec.succeeded) != label:  # the dry run and the recording are one episode
                    raise RuntimeError(f"{path}: SafeReach is not deterministic in its seed; the bag's label is wrong")
                written[label].append(path)
                bar.update(1)
            attempts[label] = tries
    finally:
        bar.close()
        env.close()
    return SafeReachDemoSummary(written, attempts)


def _actor(spec, label: str, rng_seed: list[int], noise_std: float):
    rng = np.random.default_rng(rng_seed)
    drive = DRIVERS[label](spec, rng)

    def act(o: np.ndarray) -> np.ndarray:
        return np.clip(drive(o) + rng.normal(0.0, noise_std, size=4), -1.0, 1.0)

    return act


def _dry_run(env: SafeReachEnv, spec, label: str, ep_seed: int, rng_seed: list[int], noise_std: float) -> str:
    """The kind the episode turns out to be: a bag's kind is written at its start, so each episode is
    played once unrecorded and recorded only when it is of the kind wanted (an episode is cheap)."""
    obs, _ = env.reset(seed=ep_seed)
    act = _actor(spec, label, rng_seed, noise_std)
    touched = reached = False
    for _ in range(spec.horizon_steps):
        obs, reward, terminated, truncated, info = env.step(act(obs))
        touched |= bool(info["cost"])
        reached |= reward > 0
        if terminated or truncated:
            break
    return label_of(touched, reached)
