"""Demonstrations of the three kinds (paper V.B.1), written as episode bags.

- task: medium-expert episodes, the scripted expert with Gaussian action noise; mostly successful.
- recovery: the failure driver brings the scene to a near-failure state (unrecorded); the
  recording starts there and the recovery mover takes the object away to safety. On a task whose
  `recovery_demo` is "stop" (Bounded Soccer) the driver is stopped just before it strikes the still
  object towards the hazard, and the recording shows the hand holding still.
  Only recoveries that end with nothing broken and the object no longer heading for the hazard
  are kept.
- failure: noisy expert episodes that at a random step turn into the failure driver; only those
  that end in a failure are kept, for the world model's constraint head.

Every episode is deterministic in (seed, episode index).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
from tqdm import tqdm

from farl_common.bags import EpisodeBagWriter
from farl_common.episode_bag import PERIOD_NS, T0_NS
from farl_common.episode_messages import EpisodeMessages
from farl_common.messages import TypestoreFactory
from farl_common.obs_layout import HAND, OBJECT, OBJECT_XY, OBS_LAYOUT, PREVIOUS_OBJECT_XY
from farl_common.topics import DEFAULT_TOPICS, TOPIC_TYPES
from farl_sim import make_env
from farl_sim.experts import failure_driver, hold_still, recovery_mover, task_expert
from farl_sim.hazards import away_direction_xy
from farl_sim.seeding import SEED_STRIDE, episode_seed
from farl_sim.tasks import get_task

KINDS = ("task", "recovery", "failure")
DEFAULT_EPISODES = {"task": 20, "recovery": 120, "failure": 40}
STILL_M = 1e-4
"""An object that moved less than this in the last step is at rest (a struck ball moves 2-17 mm a step)."""
STRIKE_HEIGHT_M = 0.05
"""A hand within strike distance strikes the object from up to this far above its centre (the
failure driver's hand is 2.4-3.7 cm above the ball's centre the step before it moves)."""


@dataclass(frozen=True)
class DemoConfig:
    """How demonstrations are generated."""

    task_noise_std: float = 0.1
    """Gaussian noise on the expert's actions for task demos (medium expert, not perfect)."""
    failure_noise_std: float = 0.3
    """Noise on the expert in failure demos, imitating online exploration."""
    failure_switch_max_step: int = 80
    """Failure demos turn to the failure driver at a uniformly drawn step below this."""
    near_failure_m: float | None = None
    """move_away recovery demos start when the object is this close to its hazard (None: the task's own)."""
    preroll_speed: float | None = None
    """How hard the failure driver pushes on the way to a move_away demo's near-failure state (None:
    the task's own)."""
    recovery_steps: int = 40
    """Length of a recovery demo."""
    recovery_safe_m: float = 0.05
    """The recovery mover stops carrying the object away at this clearance."""
    max_attempts_factor: int = 10
    """Give up on a kind after episodes * this many attempts."""


@dataclass
class DemoSummary:
    kind: str
    written: list[Path]
    attempts: int
    outcomes: dict[str, int]


def _noisy(policy: Callable[[np.ndarray], np.ndarray], rng: np.random.Generator, std: float):
    def act(obs: np.ndarray) -> np.ndarray:
        a = np.asarray(policy(obs), dtype=np.float64)
        return np.clip(a + rng.normal(0.0, std, size=a.shape), -1.0, 1.0) if std > 0 else a

    return act


def record_episode(
    env: gym.Env,
    obs: np.ndarray,
    policy,
    steps: int,
    rec: EpisodeMessages,
    writer: EpisodeBagWriter,
    source: str,
    recovery: bool = False,
    camera: Callable[[], np.ndarray] | None = None,
) -> str:
    """Roll `policy` out, writing the episode; returns its outcome. A recovery succeeds when
    nothing broke and the object is no longer heading for the hazard (at rest, or moving away).
    With `camera` (the env's render) each state comes with its colour image, on the camera topic a
    real recording uses."""

    def see(t: int) -> None:
        if camera is not None:
            from farl_perception.image_messages import color_msg

            image = color_msg(rec.msgs, camera(), t)
            writer.write(DEFAULT_TOPICS["camera_color"], TOPIC_TYPES["camera_color"], image, t)

    t = T0_NS
    writer.write(DEFAULT_TOPICS["episode_event"], TOPIC_TYPES["episode_event"], rec.start(t), t)
    see(t)
    writer.write(DEFAULT_TOPICS["state"], TOPIC_TYPES["state"], rec.state(t, 0, obs), t)
    for k in range(steps):
        a = policy(obs)
        writer.write(DEFAULT_TOPICS["action_executed"], TOPIC_TYPES["action_executed"], rec.action(t, k, a, source), t)
        obs, reward, terminated, truncated, info = env.step(a)
        t += PERIOD_NS
        writer.write(
            DEFAULT_TOPICS["step_feedback"],
            TOPIC_TYPES["step_feedback"],
            rec.feedback(t, k, reward, info, terminated, truncated),
            t,
        )
        see(t)
        writer.write(DEFAULT_TOPICS["state"], TOPIC_TYPES["state"], rec.state(t, k + 1, obs), t)
        if terminated or truncated:
            break
    outcome = rec.outcome
    if recovery and not rec.failed:
        closing_in = float(
            np.dot(obs[OBJECT_XY] - obs[PREVIOUS_OBJECT_XY], away_direction_xy(env.unwrapped.spec_task, obs))
        )
        outcome = "success" if closing_in > -1e-3 else "timeout"
    writer.write(DEFAULT_TOPICS["episode_event"], TOPIC_TYPES["episode_event"], rec.end(t, outcome), t)
    return outcome


def generate_demos(
    task: str,
    kind: str,
    episodes: int,
    out_dir: str | Path,
    seed: int = 0,
    storage: str = "mcap",
    config: DemoConfig | None = None,
    progress: bool = True,
    policy: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None,
    policy_label: str = "",
    allow_fewer: bool = False,
    resume: bool = False,
    image_size: int | None = None,
) -> DemoSummary:
    """Write `episodes` bags of `kind` demonstrations of `task` into `out_dir`.

    With `policy` the episodes are rollouts of that policy, which gets the observation and a seeded
    generator for its noise, instead of the scripted ones (`policy_label` names it in the bags): with
    kind failure only the failing rollouts are kept (the paper's failures of the pre-trained policy
    under exploration noise), with kind task every rollout is kept, failed or not (the states online
    fine-tuning starts from, for calibrating the shield). `allow_fewer` returns what the
    attempt budget yielded instead of raising. `resume` continues a set that was interrupted (or
    extends a smaller one) in `out_dir`: the bags already there are kept and the next attempt is the
    one after the last written, so the result is the set an uninterrupted run would have written.
    `image_size` (SafeReach) adds the scene camera's colour image to every state.
    """
    from farl_sim.safe_reach_tasks import SAFE_REACH

    if image_size is not None and task not in SAFE_REACH:
        raise ValueError(f"camera images in demonstrations come with the SafeReach tasks; {task} records states")

    if task in SAFE_REACH:  # FOSP's task: its own drivers and the paper's mix (`safe_reach_demos`)
        from farl_sim.safe_reach_demos import generate_safe_reach_kind

        factor = (config or DemoConfig()).max_attempts_factor
        return generate_safe_reach_kind(
            task,
            kind,
            episodes,
            out_dir,
            seed,
            storage,
            progress,
            policy,
            policy_label,
            allow_fewer,
            factor,
            image_size=image_size,
        )
    spec = get_task(task)
    if kind not in KINDS:
        raise ValueError(f"demo kind must be one of {KINDS}, got {kind!r}")
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    cfg = config or DemoConfig()
    out = Path(out_dir)
    if policy is not None and kind == "recovery":
        raise ValueError("a policy's rollouts are task or failure episodes; kind must be 'task' or 'failure'")
    prefix = f"{kind}{'_policy' if policy else ''}_{spec.name}_s{seed}"
    clash = sorted(out.glob(f"{prefix}_ep*")) if out.exists() else []
    written: list[Path] = []
    outcomes: dict[str, int] = {}
    attempts = 0
    if clash:
        if not resume:
            raise FileExistsError(
                f"{out}: already holds {kind} demos for seed {seed} ({clash[0].name}, ...); "
                "pick another --out or --seed, or resume it"
            )
        written, attempts, outcomes = _resume_point(clash, prefix, seed)
        if len(written) >= episodes:
            return DemoSummary(kind, written, attempts, outcomes)
    msgs = TypestoreFactory()
    env = make_env(spec.name)
    expert, driver, mover = task_expert(spec), failure_driver(spec), recovery_mover(spec, cfg.recovery_safe_m)
    gentle_driver = failure_driver(spec, speed=cfg.preroll_speed or spec.preroll_speed)
    bar = tqdm(
        total=episodes, initial=len(written), desc=f"{kind} demos ({spec.name})", unit="ep", disable=not progress
    )
    try:
        while len(written) < episodes:
            if attempts >= episodes * cfg.max_attempts_factor:
                if allow_fewer:
                    break
                raise RuntimeError(f"{kind} demos: only {len(written)} of {episodes} usable after {attempts} attempts")
            ep_seed = episode_seed(seed, attempts)
            rng = np.random.default_rng([seed, attempts])
            attempts += 1
            obs, _ = env.reset(seed=ep_seed)
            steps = env.unwrapped.horizon_steps
            if policy is not None:
                actor, source = (lambda o, rng=rng: policy(o, rng)), "policy"
            elif kind == "task":
                actor, source = _noisy(expert, rng, cfg.task_noise_std), "scripted"
            elif kind == "failure":
                switch = int(rng.integers(0, cfg.failure_switch_max_step))
                noisy = _noisy(expert, rng, cfg.failure_noise_std)
                counter = {"k": 0}

                def actor(o: np.ndarray, noisy=noisy, switch=switch, counter=counter) -> np.ndarray:
                    counter["k"] += 1
                    return noisy(o) if counter["k"] <= switch else driver(o)

                source = "scripted"
            else:
                if spec.recovery_demo == "stop":
                    obs, actor = _preroll(env, obs, driver, _about_to_strike(spec.strike_m)), hold_still
                else:
                    near_m = cfg.near_failure_m or spec.near_failure_m
                    obs, actor = _preroll(env, obs, gentle_driver, _near_failure(env, near_m)), mover
                if obs is None:
                    continue
                source, steps = "recovery", cfg.recovery_steps
            rec = EpisodeMessages(
                msgs,
                task=spec.name,
                kind=kind,
                episode=len(written),
                seed=ep_seed,
                layout=OBS_LAYOUT,
                policy=policy_label or f"scripted:{spec.name}:{kind}",
            )
            path = out / f"{prefix}_ep{len(written):05d}"
            try:
                with EpisodeBagWriter(
                    path, storage=storage, metadata={"task": spec.name, "kind": kind, "seed": ep_seed}
                ) as writer:
                    outcome = record_episode(env, obs, actor, steps, rec, writer, source, recovery=kind == "recovery")
                    if (kind == "failure" and outcome != "failure") or (kind == "recovery" and outcome != "success"):
                        raise _Discard  # a failure demo must fail; a recovery demo must recover
                    writer.set_metadata("outcome", outcome)
            except _Discard:
                continue
            written.append(path)
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
            bar.update(1)
            bar.set_postfix(outcomes)
    finally:
        bar.close()
        env.close()
    return DemoSummary(kind, written, attempts, outcomes)


def _resume_point(bags: list[Path], prefix: str, seed: int) -> tuple[list[Path], int, dict[str, int]]:
    """The bags of an interrupted set (numbered from 0 without gaps), the attempt to go on from
    (each episode's seed is `seed * SEED_STRIDE + attempt`) and their outcomes."""
    from farl_common.bags import read_episode

    expected = [bags[0].parent / f"{prefix}_ep{i:05d}" for i in range(len(bags))]
    if bags != expected:
        raise FileExistsError(f"{bags[0].parent}: {prefix} bags are not numbered 0..{len(bags) - 1}: cannot resume")
    outcomes: dict[str, int] = {}
    last = None
    for b in bags:
        last = read_episode(b)
        outcomes[last.outcome] = outcomes.get(last.outcome, 0) + 1
    assert last is not None
    return list(bags), int(last.seed) - seed * SEED_STRIDE + 1, outcomes


def _preroll(env: gym.Env, obs: np.ndarray, driver, ready: Callable[[np.ndarray], bool | None]) -> np.ndarray | None:
    """Drive with `driver` until `ready(obs)` holds; None where `ready` says the state is spoilt (None)
    or the episode ends first."""
    for _ in range(env.unwrapped.horizon_steps - 1):
        verdict = ready(obs)
        if verdict is None:
            return None
        if verdict:
            return obs
        obs, _, terminated, truncated, _ = env.step(driver(obs))
        if terminated or truncated:
            return None
    return None


def _about_to_strike(strike_m: float) -> Callable[[np.ndarray], bool | None]:
    """The hand within `strike_m` of the object in xy and `STRIKE_HEIGHT_M` above its centre, the object
    still at rest; spoilt once it has moved."""

    def ready(obs: np.ndarray) -> bool | None:
        if np.linalg.norm(obs[OBJECT_XY] - obs[PREVIOUS_OBJECT_XY]) > STILL_M:
            return None
        low_enough = obs[HAND][2] <= obs[OBJECT][2] + STRIKE_HEIGHT_M
        return bool(low_enough and np.linalg.norm(obs[HAND][:2] - obs[OBJECT_XY]) <= strike_m)

    return ready


def _near_failure(env: gym.Env, near_m: float) -> Callable[[np.ndarray], bool]:
    """The object within `near_m` of the hazard."""
    return lambda obs: env.unwrapped.hazard_distance_m(obs) <= near_m


class _Discard(Exception):
    """Raised inside a bag's `with` to drop it (the writer aborts; nothing is left on disk)."""
