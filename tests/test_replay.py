"""`farl replay`: the shield re-run over recorded episodes, compared with the decisions in the bags."""

from __future__ import annotations

import json
import shutil

import pytest

from farl_bringup.cli import main
from farl_bringup.sim_graph import run_sim
from farl_common.config import task_config


@pytest.fixture
def learned_bags(tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    cfg = task_config("fragile_push_wall")
    cfg.policy.kind = "learned"
    cfg.robot.horizon_steps = 30
    cfg.recorder.out_dir = str(tmp_path / "bags")
    cfg.learner.run_dir = str(run)
    cfg.learner.min_new_steps = 10_000  # no update: the policy the shield rolled out stays the run's
    run_sim(cfg, episodes=2, seed=0, run_id="R")
    return run, tmp_path / "bags"


def test_replay_with_the_same_shield_agrees_with_the_bags(learned_bags, tmp_path, capsys):
    run, bags = learned_bags
    out = tmp_path / "replay"
    assert main(["replay", str(bags), "--run", str(run), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "agreement 100.0%" in text
    data = json.loads((out / "replay.json").read_text())
    assert data["summary"]["episodes"] == 2 and data["summary"]["with_stored_decisions"] == 2
    for ep in data["episodes"]:
        assert ep["agreement"] == 1.0 and ep["mean_abs_risk_diff"] < 1e-4
        assert (out / f"{ep['bag']}.png").is_file()


def test_replay_with_another_threshold_reports_earlier_swaps(learned_bags, tmp_path, capsys):
    run, bags = learned_bags
    assert main(["replay", str(bags), "--run", str(run), "--eps-safe", "0", "--out", str(tmp_path / "r0")]) == 0
    data = json.loads((tmp_path / "r0" / "replay.json").read_text())
    # with eps_safe 0 every step with any risk swaps: at least as many swaps, never later
    assert data["summary"]["new_swaps"] >= data["summary"]["stored_swaps"]
    assert data["summary"]["later"] == 0
    assert all(ep["new_swaps"] == ep["steps"] for ep in data["episodes"])


def test_replay_of_demos_and_a_corrupt_bag(tiny_run, demo_dir, tmp_path, capsys):
    demos = tmp_path / "demos"
    shutil.copytree(demo_dir, demos)
    bad = sorted(p for p in demos.iterdir() if p.is_dir() and not p.name.startswith("."))[0]
    for f in bad.glob("*.mcap"):
        f.write_bytes(f.read_bytes()[:200])
    assert main(["replay", str(demos), "--run", str(tiny_run), "--out", str(tmp_path / "r")]) == 2
    out = capsys.readouterr().out
    assert "no stored shield decisions" in out
    assert f"unreadable: {bad}: unreadable bag" in out
    assert main(["replay", str(tmp_path / "nothing"), "--run", str(tiny_run)]) == 2
    assert "no such bag or folder" in capsys.readouterr().err


def test_replay_takes_the_task_from_the_bags_and_refuses_another_tasks_run(learned_bags, tmp_path, capsys, monkeypatch):
    """Bags of one task scored with a run of another would read another scene's risk: refused, exit 2,
    one line. Without --run, the run is the bags' task's own (runs/<task>/run, from the folder farl runs in)."""
    run, bags = learned_bags
    other = tmp_path / "other_run"
    shutil.copytree(run, other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["task"] = "disturbed_push"
    (other / "manifest.json").write_text(json.dumps(manifest))
    assert main(["replay", str(bags), "--run", str(other), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"farl replay: error: {bags} holds fragile_push_wall episodes, but {other} was pre-trained on "
        f"disturbed_push: give --run a fragile_push_wall run"
    ]
    assert not (tmp_path / "r" / "replay.json").exists()
    (tmp_path / "runs" / "fragile_push_wall").mkdir(parents=True)
    shutil.copytree(run, tmp_path / "runs" / "fragile_push_wall" / "run")
    monkeypatch.chdir(tmp_path)
    assert main(["replay", str(bags), "--out", str(tmp_path / "found")]) == 0
    assert json.loads((tmp_path / "found" / "replay.json").read_text())["summary"]["episodes"] == 2
