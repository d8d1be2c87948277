"""Shared fixtures: small demo sets made once per session, in a temporary folder."""

from __future__ import annotations

import os
import warnings

import pytest

os.environ.setdefault("MUJOCO_GL", "egl")
warnings.filterwarnings("ignore", module="metaworld")


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory):
    """Two task, two recovery and two failure demos of Fragile Push Wall (seed 0)."""
    from farl_sim.demos import generate_demos

    out = tmp_path_factory.mktemp("demos")
    for kind in ("task", "recovery", "failure"):
        generate_demos("fragile_push_wall", kind, 2, out, seed=0, progress=False)
    return out
