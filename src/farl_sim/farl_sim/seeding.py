"""How a run's seed becomes its episodes' seeds (demos, fine-tuning rollouts)."""

SEED_STRIDE = 1_000_003
"""Episode k of a set seeded `seed` is seeded `seed * SEED_STRIDE + k`: a prime stride, so sets of
different seeds never share a scene within a million episodes."""


def episode_seed(seed: int, k: int) -> int:
    return seed * SEED_STRIDE + k
