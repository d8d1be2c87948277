"""The hard envelope: the step bound, the box, refusals, and a 10^6-pair fuzz of its guarantees."""

from __future__ import annotations

import numpy as np
import pytest

from farl_robot.envelope import HardEnvelope, UnsafeCommand
from farl_robot.envelope_fuzz import random_pairs, violations

BOX = HardEnvelope([-0.5, 0.40, 0.05], [0.5, 1.0, 0.5], max_step_m=0.01)


def step_of(hand, action) -> np.ndarray:
    return BOX.step_m(BOX.filter(np.array(hand, float), np.array(action, float)))


@pytest.mark.parametrize(
    ("hand", "action"),
    [
        ([0.0, 0.6, 0.0], [0, 0, 0, 0]),  # below the box: the old clamp made a 5 cm step
        ([0.0, 0.2, 0.2], [0, 0, 0, 0]),  # in front of the box: the old clamp made a 20 cm step
        ([0.0, 0.2, 0.2], [0, -1, 0, 0]),  # outside and asking to go farther out
        ([2.0, -2.0, 3.0], [1, 1, 1, 1]),
    ],
)
def test_outside_the_box_one_bounded_step_back(hand, action) -> None:
    step = step_of(hand, action)
    assert np.linalg.norm(step) == pytest.approx(0.01)
    assert BOX.distance_to_box_m(np.array(hand) + step) < BOX.distance_to_box_m(np.array(hand)) - 0.009


def test_inside_the_box_moves_as_asked_within_the_step_limit() -> None:
    np.testing.assert_allclose(step_of([0, 0.7, 0.2], [0.5, -0.5, 0.0, 0.3]), [0.005, -0.005, 0.0])
    long = step_of([0, 0.7, 0.2], [1, 1, 1, 0])
    assert np.linalg.norm(long) == pytest.approx(0.01)
    np.testing.assert_allclose(long / np.linalg.norm(long), np.ones(3) / np.sqrt(3))


def test_at_the_face_the_step_slides_along_it() -> None:
    step = step_of([0.0, 0.7, 0.05], [0.0, 0.5, -1.0, 0.0])
    assert step[2] == pytest.approx(0.0, abs=1e-15)
    assert step[1] == pytest.approx(0.005)


@pytest.mark.parametrize(
    ("hand", "action", "words"),
    [
        ([0, 0.7, 0.2], [np.nan, 0, 0, 0], "non-finite action"),
        ([0, 0.7, 0.2], [0, np.inf, 0, 0], "non-finite action"),
        ([np.nan, 0.7, 0.2], [0, 0, 0, 0], "hand position"),
        ([1e300, 0.7, 0.2], [0, 0, 0, 0], "not trusted"),
        ([0, 0.7, 0.2], [0, 0, 0], "expected 4"),
    ],
)
def test_untrusted_input_is_refused(hand, action, words) -> None:
    with pytest.raises(UnsafeCommand, match=words):
        BOX.filter(np.array(hand, float), np.array(action, float))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"workspace_min_m": [0, 0, 0], "workspace_max_m": [1, 0, 1], "max_step_m": 0.01},
        {"workspace_min_m": [0, 0], "workspace_max_m": [1, 1], "max_step_m": 0.01},
        {"workspace_min_m": [0, 0, 0], "workspace_max_m": [1, 1, 1], "max_step_m": 0.0},
        {"workspace_min_m": [0, 0, np.nan], "workspace_max_m": [1, 1, 1], "max_step_m": 0.01},
    ],
)
def test_a_bad_envelope_is_refused(kwargs) -> None:
    with pytest.raises(ValueError):
        HardEnvelope(**kwargs)


def test_the_fuzz_checker_catches_the_old_clamp_order() -> None:
    """The checker must be able to fail: the pre-fix envelope (limit, then clamp) violates it."""

    class OldEnvelope(HardEnvelope):
        def filter_batch(self, hand_pos_m, actions):
            a = np.clip(np.asarray(actions, float), -1, 1)
            delta = a[:, :3] * self.action_scale_m
            n = np.linalg.norm(delta, axis=1, keepdims=True)
            delta *= np.minimum(1.0, self.max_step_m / np.maximum(n, 1e-300))
            lo, hi = self.box
            target = np.clip(hand_pos_m + delta, lo, hi)
            return np.concatenate([(target - hand_pos_m) / self.action_scale_m, a[:, 3:]], 1), np.ones(len(a), bool)

    old = OldEnvelope([-0.5, 0.40, 0.05], [0.5, 1.0, 0.5], max_step_m=0.01)
    hands, actions = random_pairs(old, 10_000, np.random.default_rng(1))
    counts = violations(old, hands, actions)
    assert counts["step longer than max_step_m"] > 0
    assert counts["untrusted input executed"] > 0


def test_fuzz_a_million_pairs_zero_violations() -> None:
    rng = np.random.default_rng(0)
    total = {}
    for _ in range(10):
        hands, actions = random_pairs(BOX, 100_000, rng)
        for k, v in violations(BOX, hands, actions).items():
            total[k] = total.get(k, 0) + v
    assert total == dict.fromkeys(total, 0)


def test_single_command_path_matches_the_batch_path() -> None:
    rng = np.random.default_rng(3)
    hands, actions = random_pairs(BOX, 2000, rng)
    batch, ok = BOX.filter_batch(hands, actions)
    for h, a, b, good in zip(hands, actions, batch, ok, strict=True):
        if good:
            np.testing.assert_array_equal(BOX.filter(h, a), b)
        else:
            with pytest.raises(UnsafeCommand):
                BOX.filter(h, a)
