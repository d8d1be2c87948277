"""The `farl` command as a user runs it: demos, the mocked sim mode, inspect."""

from __future__ import annotations

import re

import pytest

from farl_bringup.cli import main


def test_demos_then_inspect(tmp_path, capsys):
    assert main(["demos", "--task", "obstructed_push", "--kind", "all", "--episodes", "1", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr()
    assert "task: 1 episode bags" in out.out and "recovery: 1" in out.out and "failure: 1" in out.out
    assert "demos (obstructed_push)" in out.err  # the progress bar
    plot = tmp_path / "plot.png"
    assert main(["inspect", str(tmp_path), "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"task_obstructed_push_s0_ep00000 +task +obstructed_push +\d+ +[\d.]+ success +no", out)
    assert re.search(r"failure +1 episodes .* failure episodes 1", out)
    assert plot.stat().st_size > 5000


def test_sim_prints_each_episode_and_leaves_bags(tmp_path, capsys):
    argv = [
        "sim",
        "fragile_push_wall",
        "--episodes",
        "2",
        "--seed",
        "1",
        "--out",
        str(tmp_path),
        "--policy",
        "scripted",
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    lines = [ln for ln in out.splitlines() if ln.strip().startswith("episode")]
    assert len(lines) == 2
    assert re.search(r"episode +0: return +[\d.]+ +steps 200 +success yes +failure no", lines[0])
    assert "2 bags in" in out
    assert main(["inspect", str(tmp_path)]) == 0


def test_inspect_reports_a_corrupt_bag_and_lists_the_rest(tmp_path, capsys):
    main(["demos", "--task", "bounded_push", "--kind", "task", "--episodes", "2", "--out", str(tmp_path)])
    bad = sorted(tmp_path.glob("task_*"))[0]
    (bad / f"{bad.name}.mcap").write_bytes(b"\x89MCAP0\r\n garbage")
    capsys.readouterr()
    assert main(["inspect", str(tmp_path)]) == 2
    out = capsys.readouterr().out
    assert f"{bad.name}" in out and "UNREADABLE" in out and "unreadable: " in out
    assert "task_bounded_push_s0_ep00001" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["sim", "fragile_push_wall", "--config", "nope.yaml"], "config file not found"),
        (["inspect", "nope_dir"], "no such bag or folder"),
    ],
)
def test_errors_are_one_clear_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and err.startswith("farl ")


def test_calibrate_then_finetune_and_resume(tiny_run, demo_dir, tmp_path, capsys):
    import json
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    assert main(["calibrate-shield", "--run", str(run), "--demos", str(demo_dir)]) == 0
    out = capsys.readouterr().out
    assert "<- chosen" in out and "false alarm" in out
    calib = json.loads((run / "shield.json").read_text())["world_model"]
    assert 0 <= calib["false_alarm"] <= 1 and 0 <= calib["missed"] <= 1
    argv = ["finetune", "--run", str(run), "--steps", "150", "--out", str(tmp_path / "ft")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"eps_safe {calib['eps_safe']:.3f} ({run / 'shield.json'})" in out and "failure episodes" in out
    lines = (tmp_path / "ft" / "episodes.jsonl").read_text().splitlines()
    assert lines and {"return", "failure", "swaps", "version"} <= set(json.loads(lines[0]))
    assert main([*argv[:4], "300", *argv[5:]]) == 0  # more steps: picks up where it stopped
    assert "resuming" in capsys.readouterr().out


def test_pretrain_refuses_demos_without_all_three_kinds(tmp_path, capsys):
    main(["demos", "--task", "bounded_push", "--kind", "task", "--episodes", "1", "--out", str(tmp_path / "d")])
    argv = ["pretrain", "--task", "bounded_push", "--demos", str(tmp_path / "d"), "--out", str(tmp_path / "r")]
    assert main(argv) == 2
    assert "no recovery or failure demos" in capsys.readouterr().err
    assert main(["finetune", "--run", str(tmp_path / "nope"), "--steps", "10"]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
