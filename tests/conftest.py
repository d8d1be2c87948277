"""Shared fixtures: small demo sets made once per session, in a temporary folder."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import warnings

import pytest

warnings.filterwarnings("ignore", module="metaworld")
# Parsed bags are cached (farl_common.bags.cache_dir): the suite keeps its own, not the user's, and
# removes it when the session ends (one was left in /tmp per run before).
if "FARL_CACHE_DIR" not in os.environ:
    _cache = tempfile.mkdtemp(prefix="farl-test-cache-")
    os.environ["FARL_CACHE_DIR"] = _cache
    atexit.register(shutil.rmtree, _cache, ignore_errors=True)


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory):
    """Two task, two recovery and two failure demos of Fragile Push Wall (seed 0)."""
    from farl_sim.demos import generate_demos

    out = tmp_path_factory.mktemp("demos")
    for kind in ("task", "recovery", "failure"):
        generate_demos("fragile_push_wall", kind, 2, out, seed=0, progress=False)
    return out


SMALL = os.environ.get("FARL_SLOW_BUDGET", "small") == "small"
"""CI sets FARL_SLOW_BUDGET=small (the default here too); `full` runs the end-to-end tests longer."""


@pytest.fixture(scope="session")
def tiny_fosp_run(tmp_path_factory):
    """A FOSP run on a few SafeReach demos with a tiny world model: a real agent, quick to make."""
    from farl_bringup.fosp_pipeline import pretrain_fosp
    from farl_learning.fosp import FOSPConfig
    from farl_learning.rssm import RSSMConfig
    from farl_sim.safe_reach_demos import generate_safe_reach_demos

    root = tmp_path_factory.mktemp("fosp")
    counts = {"reached_safe": 3, "neither": 1, "touched_reached": 1, "touched_missed": 1}
    generate_safe_reach_demos(root / "demos", counts, progress=False)
    wm = RSSMConfig(deter=32, latents=4, classes=4, hidden=32)
    cfg = FOSPConfig(world_model=wm, hidden=32, batch_size=4, batch_length=8, horizon=3, imagine_starts=8)
    cfg.offline_steps, cfg.train_per_episode = 5, 2
    pretrain_fosp("safe_reach", root / "demos", root / "run", cfg, progress=False)
    return root / "run"


@pytest.fixture(scope="session")
def tiny_run(demo_dir, tmp_path_factory):
    """A pre-training run on the small demo set with tiny budgets: real checkpoints, quick to make."""
    from farl_bringup.pipeline import PretrainConfig, pretrain

    run = tmp_path_factory.mktemp("run")
    pretrain("fragile_push_wall", demo_dir, run, PretrainConfig().scaled(0.02), progress=False)
    return run
