"""SafeReach demonstrations, written as episode bags: the FOSP paper's mix (Appendix D.1), and FARL's
three kinds made from it.

The paper's 200 episodes: 120 that reach the target without touching an obstacle, 30 that do
neither, 40 that touch an obstacle and still reach, 10 that touch and miss. Each comes from its
label's scripted driver (`safe_reach_experts.DRIVERS`) with Gaussian action noise and is kept only if
what happened is its label, so labels are outcomes, not intentions. A bag's kind is `task` when
nothing was touched and `failure` otherwise (what FARL's readers expect); the four-way label is in its
metadata (`label`) and its name.

FARL also needs recovery demos: from a state where the hand has come within a few centimetres of an
obstacle (driven there unrecorded), the hand backs away without touching it (label `recovery`).
`generate_safe_reach_kind` gives `farl_sim.demos.generate_demos`'s interface (kind task = the
untouched labels, failure = the touched ones, in the paper's proportions; recovery; or a policy's
rollouts), so FARL's pipeline and the benchmark run on SafeReach unchanged.

Every episode is deterministic in (seed, label, attempt).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from farl_common.bags import EpisodeBagWriter
from farl_common.episode_messages import EpisodeMessages
from farl_common.messages import TypestoreFactory
from farl_common.obs_layout import OBS_LAYOUT
from farl_sim.demos import DemoSummary, record_episode
from farl_sim.safe_reach import IMAGE_CAMERA, SafeReachEnv, get_safe_reach
from farl_sim.safe_reach_experts import DRIVERS, back_off, into_obstacle, near_an_obstacle
from farl_sim.safe_reach_tasks import PAPER_MIX, label_of
from farl_sim.seeding import episode_seed

LABELS = (*DRIVERS, "recovery", "policy")
FARL_KIND_LABELS = {"task": ("reached_safe", "neither"), "failure": ("touched_reached", "touched_missed")}
RECOVERY_STEPS = 20
"""Length of a recovery demo (the hand is clear of the obstacle well within it)."""

PolicyFn = Callable[[np.ndarray, np.random.Generator], np.ndarray]


@dataclass
class SafeReachDemoSummary:
    written: dict[str, list[Path]]
    attempts: dict[str, int]


def split_like_the_paper(kind: str, episodes: int) -> dict[str, int]:
    """`episodes` of FARL's `kind` as the paper's labels in its proportions (task: 120:30, failure: 40:10)."""
    labels = FARL_KIND_LABELS[kind]
    weights = np.array([PAPER_MIX[lbl] for lbl in labels], dtype=float)
    first = round(float(episodes * weights[0] / weights.sum()))
    first = min(max(first, 1 if episodes > 1 else episodes), episodes)
    return {labels[0]: first, labels[1]: episodes - first} if episodes - first else {labels[0]: first}


class _Episode:
    """One attempt: the driver (and, for recovery, the unrecorded run-up) from its seeds."""

    def __init__(self, spec, label: str, rng_seed: list[int], noise_std: float, policy: PolicyFn | None) -> None:
        self.spec, self.label, self.noise_std = spec, label, noise_std
        self.rng = np.random.default_rng(rng_seed)
        if policy is not None:
            self.drive = lambda o, rng=self.rng: np.clip(policy(o, rng), -1.0, 1.0)
            self.noise_std = 0.0
        elif label == "recovery":
            self.drive = back_off(spec)
        else:
            self.drive = DRIVERS[label](spec, self.rng)

    def act(self, o: np.ndarray) -> np.ndarray:
        a = self.drive(o)
        return np.clip(a + self.rng.normal(0.0, self.noise_std, size=4), -1.0, 1.0) if self.noise_std else a

    def start(self, env: SafeReachEnv, ep_seed: int) -> np.ndarray | None:
        """Reset; for a recovery, drive towards an obstacle until the hand is near it (None: it touched
        first, or never came near)."""
        obs, _ = env.reset(seed=ep_seed)
        if self.label != "recovery":
            return obs
        run_up = into_obstacle(self.spec, self.rng)
        for _ in range(self.spec.horizon_steps):
            if near_an_obstacle(self.spec, obs):
                return obs
            obs, _, terminated, truncated, info = env.step(run_up(obs))
            if info["cost"] or terminated or truncated:
                return None
        return None


def _play(env: SafeReachEnv, episode: _Episode, ep_seed: int, steps: int) -> str | None:
    obs = episode.start(env, ep_seed)
    if obs is None:
        return None
    touched = reached = False
    for _ in range(steps):
        obs, reward, terminated, truncated, info = env.step(episode.act(obs))
        touched |= bool(info["cost"])
        reached |= reward > 0
        if terminated or truncated:
            break
    if episode.label == "recovery":
        return None if touched or near_an_obstacle(episode.spec, obs) else "recovery"
    return label_of(touched, reached)


def generate_safe_reach_demos(
    out_dir: str | Path,
    counts: dict[str, int] | None = None,
    variant: str = "safe_reach",
    seed: int = 0,
    noise_std: float = 0.1,
    storage: str = "mcap",
    max_attempts_factor: int = 20,
    progress: bool = True,
    policy: PolicyFn | None = None,
    policy_label: str = "",
    keep: Callable[[str], bool] | None = None,
    allow_fewer: bool = False,
    image_size: int | None = None,
) -> SafeReachDemoSummary:
    """Write `counts` episodes of each label (default `PAPER_MIX`; `recovery` too) into `out_dir`. Bags
    of an earlier, interrupted call with the same seed are kept and the set completed: the same attempts
    find the same episodes. With `policy` the label is `policy` and `keep` says which outcomes to keep.
    With `image_size` each state comes with the scene camera's colour image, `image_size` square (FOSP's
    real-robot input is 64 x 64).
    """
    spec = get_safe_reach(variant)
    counts = dict(PAPER_MIX if counts is None else counts)
    unknown = set(counts) - set(LABELS)
    if unknown:
        raise ValueError(f"unknown SafeReach demo kinds {sorted(unknown)}; choose from {', '.join(LABELS)}")
    out = Path(out_dir)
    msgs = TypestoreFactory()
    if image_size is None:
        env = SafeReachEnv(spec.name)
    else:
        env = SafeReachEnv(
            spec.name,
            "rgb_array",
            camera_name=IMAGE_CAMERA,
            image_width=image_size,
            image_height=image_size,
            plain_render=True,
        )
    written: dict[str, list[Path]] = {}
    attempts: dict[str, int] = {}
    bar = tqdm(total=sum(counts.values()), desc=f"SafeReach demos ({spec.name})", unit="ep", disable=not progress)
    try:
        for label, n in counts.items():
            k_label = LABELS.index(label)
            prefix = f"{label}_{spec.name}_s{seed}"
            have = sorted(out.glob(f"{prefix}_ep*")) if out.exists() else []
            written[label] = have[:n]
            bar.update(len(written[label]))
            tries, matched = 0, 0
            while matched < n:
                if tries >= max(n, 1) * max_attempts_factor:
                    if allow_fewer:
                        break
                    raise RuntimeError(f"SafeReach {label} demos: only {matched} of {n} after {tries} tries")
                # Attempts are numbered per label, so one label's count never shifts another's episodes.
                ep_seed = episode_seed(seed * len(LABELS) + k_label, tries)
                rng_seed = [seed, k_label, tries]
                tries += 1
                steps = RECOVERY_STEPS if label == "recovery" else spec.horizon_steps
                got = _play(env, _Episode(spec, label, rng_seed, noise_std, policy), ep_seed, steps)
                if policy is None:
                    wanted = got == label
                else:
                    wanted = got is not None and (keep is None or keep(got))
                if not wanted:
                    continue
                matched += 1
                if matched <= len(written[label]):
                    continue  # written by an interrupted call
                path = out / f"{prefix}_ep{matched - 1:05d}"
                episode = _Episode(spec, label, rng_seed, noise_std, policy)
                obs = episode.start(env, ep_seed)
                assert obs is not None  # the run above started from the same seeds
                if label == "recovery":
                    kind = "recovery"
                else:
                    kind = "failure" if got and got.startswith("touched") else "task"
                name = policy_label or f"scripted:{spec.name}:{label}"
                rec = EpisodeMessages(
                    msgs, task=spec.name, kind=kind, episode=matched - 1, seed=ep_seed, layout=OBS_LAYOUT, policy=name
                )
                meta = {"task": spec.name, "kind": kind, "seed": ep_seed, "label": got}
                with EpisodeBagWriter(path, storage=storage, metadata=meta) as writer:
                    source = "policy" if policy is not None else ("recovery" if kind == "recovery" else "scripted")
                    camera = env.render if image_size is not None else None
                    record_episode(env, obs, episode.act, steps, rec, writer, source, camera=camera)
                    writer.set_metadata("outcome", rec.outcome)
                if label != "recovery" and label_of(rec.failed, rec.succeeded) != got:
                    shutil.rmtree(path, ignore_errors=True)
                    raise RuntimeError(f"{path}: SafeReach did not repeat its episode from the same seeds")
                written[label].append(path)
                bar.update(1)
            attempts[label] = tries
    finally:
        bar.close()
        env.close()
    return SafeReachDemoSummary(written, attempts)


def generate_safe_reach_kind(
    task: str,
    kind: str,
    episodes: int,
    out_dir: str | Path,
    seed: int = 0,
    storage: str = "mcap",
    progress: bool = True,
    policy: PolicyFn | None = None,
    policy_label: str = "",
    allow_fewer: bool = False,
    max_attempts_factor: int = 20,
    image_size: int | None = None,
) -> DemoSummary:
    """`farl_sim.demos.generate_demos` for SafeReach: FARL's kind task or failure as the paper's labels in
    its proportions, recovery, or (with `policy`) the policy's rollouts (kind task: all; failure: those
    that touched)."""
    if kind not in ("task", "recovery", "failure"):
        raise ValueError(f"demo kind must be one of task, recovery, failure; got {kind!r}")
    if policy is not None:
        if kind == "recovery":
            raise ValueError("a policy's rollouts are task or failure episodes; kind must be 'task' or 'failure'")
        keep = (lambda got: got.startswith("touched")) if kind == "failure" else (lambda got: True)
        counts = {"policy": episodes}
    else:
        keep = None
        counts = {"recovery": episodes} if kind == "recovery" else split_like_the_paper(kind, episodes)
    s = generate_safe_reach_demos(
        out_dir, counts, task, seed=seed, storage=storage, progress=progress, policy=policy,
        policy_label=policy_label, keep=keep, allow_fewer=allow_fewer, max_attempts_factor=max_attempts_factor,
        image_size=image_size,
    )  # fmt: skip
    written = [p for paths in s.written.values() for p in paths]
    return DemoSummary(kind, written, sum(s.attempts.values()), {k: len(v) for k, v in s.written.items()})
