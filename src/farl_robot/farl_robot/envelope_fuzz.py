"""Random (hand position, action) pairs and the envelope's guarantees checked on each.

Shared by the fuzz test (tests/test_envelope.py) and bench/bench_envelope.py, so the test and the
printed figure check the same properties on the same kind of input.
"""

from __future__ import annotations

import numpy as np

from farl_robot.envelope import HardEnvelope

SPECIALS = np.array([np.nan, np.inf, -np.inf, 1e300, -1e300, 1e6, -1e6, 0.0, 1.0, -1.0])


def random_pairs(env: HardEnvelope, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """`n` hand positions and actions: inside, near and far outside the box, with special values mixed in."""
    lo, hi = env.box
    span = hi - lo
    kind = rng.integers(0, 4, size=n)
    hands = np.empty((n, 3))
    inside = kind == 0
    hands[inside] = lo + rng.random((int(inside.sum()), 3)) * span
    near = kind == 1  # a few steps around the faces and corners
    hands[near] = np.clip(lo + rng.random((int(near.sum()), 3)) * span, lo, hi) + rng.normal(
        0.0, 3 * env.max_step_m, (int(near.sum()), 3)
    )
    far = kind >= 2
    hands[far] = rng.uniform(-3.0, 3.0, (int(far.sum()), 3))
    scale = rng.choice([1.0, 1e3], (n, 1))  # in range, beyond the [-1, 1] clip, and far beyond it
    actions = np.concatenate([rng.normal(0.0, 2.0, (n, 3)) * scale, rng.normal(size=(n, 1))], 1)
    for arr in (hands, actions):  # about 2% of the values are NaN, inf or huge
        mask = rng.random(arr.shape) < 0.005
        arr[mask] = rng.choice(SPECIALS, int(mask.sum()))
    return hands, actions


def violations(env: HardEnvelope, hands: np.ndarray, actions: np.ndarray, tol_m: float = 1e-9) -> dict[str, int]:
    """How often each guarantee of `HardEnvelope` fails on these pairs (all zeros when it holds)."""
    out, ok = env.filter_batch(hands, actions)
    with np.errstate(invalid="ignore", over="ignore"):  # the inputs hold NaN, inf and 1e300 on purpose
        trusted = np.all(np.isfinite(hands), 1) & np.all(np.isfinite(actions), 1)
        trusted &= np.all(np.abs(hands) <= env.max_hand_offset_m, 1)
        step = env.step_m(out)
        h = np.where(ok[:, None], hands, 0.0)
        new = h + step
        lo, hi = env.box
        was_in = np.all((h >= lo) & (h <= hi), 1)
        now_in = np.all((new >= lo - tol_m) & (new <= hi + tol_m), 1)
        d0, d1 = env.distance_to_box_m(h), env.distance_to_box_m(new)
        return {
            "untrusted input executed": int(np.sum(ok & ~trusted)),
            "trusted input refused": int(np.sum(~ok & trusted)),
            "non-finite output": int(np.sum(~np.all(np.isfinite(out), 1))),
            "refused but moves": int(np.sum(~ok & np.any(out != 0.0, 1))),
            "step longer than max_step_m": int(np.sum(ok & (np.linalg.norm(step, axis=1) > env.max_step_m + tol_m))),
            "left the box": int(np.sum(ok & was_in & ~now_in)),
            "outside and not moving towards the box": int(np.sum(ok & ~was_in & ~(d1 < d0))),
            "gripper not clipped": int(np.sum(ok & (np.abs(out[:, 3]) > 1.0))),
        }
