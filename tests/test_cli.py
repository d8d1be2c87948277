"""The `farl` command as a user runs it: demos, the mocked sim mode, inspect."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from farl_bringup.cli import main

REPO = Path(__file__).resolve().parents[1]


def test_demos_then_inspect(tmp_path, capsys):
    assert main(["demos", "--task", "obstructed_push", "--kind", "all", "--episodes", "1", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr()
    assert "task: 1 episode bags" in out.out and "recovery: 1" in out.out and "failure: 1" in out.out
    assert "demos (obstructed_push)" in out.err  # the progress bar
    plot = tmp_path / "plot.png"
    assert main(["inspect", str(tmp_path), "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert re.search(
        r"task_obstructed_push_s0_ep00000 +task +obstructed_push +\d+ +[\d.]+ success +no +"
        r"scripted:obstructed_push:task$",
        out,
        re.M,
    )
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


def test_ctrl_c_still_prints_every_finished_episode(tmp_path, capsys, monkeypatch):
    """Episodes are reported between batches of simulated events: a Ctrl-C inside a batch must not lose
    the line of an episode that batch finished."""
    import farl_bringup.sim_graph as sim_graph
    from farl_robot.robot_node import RobotNode

    monkeypatch.setattr(sim_graph, "EVENTS_PER_REPORT", 10**9)  # everything in one batch
    end = RobotNode._end_episode

    def end_then_ctrl_c(self, *args, **kwargs):
        end(self, *args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(RobotNode, "_end_episode", end_then_ctrl_c)
    argv = ["sim", "--task", "fragile_push_wall", "--episodes", "3", "--out", str(tmp_path), "--policy", "scripted"]
    assert main(argv) == 130
    captured = capsys.readouterr()
    assert re.search(r"^  episode +0: return", captured.out, re.M), captured.out
    assert "interrupted" in captured.err


def test_sim_says_where_online_learning_starts_and_fresh_starts_again(tiny_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)

    def sim(out: str, *extra: str) -> str:
        argv = [
            "sim",
            "--task",
            "fragile_push_wall",
            "--run",
            str(run),
            "--episodes",
            "1",
            "--out",
            str(tmp_path / out),
        ]
        assert main([*argv, "--config", str(_short_config(tmp_path)), *extra]) == 0
        return capsys.readouterr().out

    assert "online learning starts from the pre-trained policy" in sim("b1")
    from farl_learning.checkpoint import load, save_atomic

    online = run / "online_policy.pt"
    save_atomic(online, {**load(online), "updates": 34, "version": 34})
    assert "continuing online learning at policy version 34" in sim("b2")
    assert "--fresh: online learning starts again from the pre-trained policy" in sim("b3", "--fresh")
    assert int(load(online).get("updates", -1)) == 0


def _short_config(tmp_path):
    import yaml

    cfg = yaml.safe_load((REPO / "config" / "fragile_push_wall.yaml").read_text())
    cfg["robot"]["horizon_steps"] = 10
    path = tmp_path / "short.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_inspect_reports_a_corrupt_bag_and_lists_the_rest(tmp_path, capsys):
    main(["demos", "--task", "bounded_push", "--kind", "task", "--episodes", "2", "--out", str(tmp_path)])
    bad = sorted(tmp_path.glob("task_*"))[0]
    (bad / f"{bad.name}.mcap").write_bytes(b"\x89MCAP0\r\n garbage")
    capsys.readouterr()
    assert main(["inspect", str(tmp_path)]) == 2
    out = capsys.readouterr().out
    assert f"{bad.name}" in out and "UNREADABLE" in out and "unreadable: " in out
    assert "task_bounded_push_s0_ep00001" in out


def test_inspect_reports_unfinished_bags_and_cleans_them(tmp_path, capsys):
    from farl_common.bags import PARTIAL_DIR, EpisodeBagWriter

    main(["demos", "--task", "bounded_push", "--kind", "task", "--episodes", "1", "--out", str(tmp_path)])
    w = EpisodeBagWriter(tmp_path / "crashed_ep")  # never closed: as a SIGKILL mid-episode leaves it
    w.write("/x", "std_msgs/msg/UInt32", w._factory.new("std_msgs/msg/UInt32", data=1), 1)
    capsys.readouterr()
    assert main(["inspect", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "crashed_ep" not in out and f"unfinished: 1 bag(s) in {tmp_path / PARTIAL_DIR}" in out
    assert main(["inspect", str(tmp_path), "--clean"]) == 0
    assert "removed 1 unfinished bag(s)" in capsys.readouterr().out
    assert not (tmp_path / PARTIAL_DIR).exists() and len(list(tmp_path.iterdir())) == 1


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


def test_calibration_on_policy_rollouts(tiny_run, demo_dir, tmp_path, capsys):
    """`--policy-rollouts N` adds N rollouts of the run's own policy (kept whatever their outcome, named
    after its weights) to the held-out demos; shield.json records it, and the bench calibrates again
    when its settings differ from the recorded ones."""
    import json
    import shutil

    from farl_bringup.bench import BenchConfig, calibrated_as
    from farl_bringup.pipeline import CALIBRATION_ROLLOUTS, policy_label
    from farl_common.bags import load_dataset
    from farl_common.shield_settings import CalibrationSettings
    from farl_learning.checkpoint import load
    from farl_learning.uni_o4 import policy_from_checkpoint

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    assert main(["calibrate-shield", "--run", str(run), "--demos", str(demo_dir)]) == 0
    before = capsys.readouterr().out
    assert main(["calibrate-shield", "--run", str(run), "--demos", str(demo_dir), "--policy-rollouts", "2"]) == 0
    after = capsys.readouterr().out
    rollouts = load_dataset(run / CALIBRATION_ROLLOUTS)
    assert len(rollouts.episodes) == 2 and {e.kind for e in rollouts.episodes} == {"task"}
    assert {e.policy for e in rollouts.episodes} == {policy_label(policy_from_checkpoint(load(run / "task_policy.pt")))}

    def safe_steps(text):
        return int(text.split(" steps of safe task episodes")[0].split()[-1])

    safe_rollout_steps = sum(len(e) for e in rollouts.episodes if not e.failed)
    assert safe_steps(after) == safe_steps(before) + safe_rollout_steps > safe_steps(before)
    entry = json.loads((run / "shield.json").read_text())["world_model"]
    assert entry["policy_rollouts"] == 2 and "and 2 policy rollouts" in after
    assert calibrated_as(entry, BenchConfig(calibration=CalibrationSettings(policy_rollouts=2)))
    assert not calibrated_as(entry, BenchConfig())
    assert calibrated_as({**entry, "policy_rollouts": 0}, BenchConfig())
    assert not calibrated_as(None, BenchConfig())


def test_pretrain_refuses_demos_without_all_three_kinds(tmp_path, capsys):
    main(["demos", "--task", "bounded_push", "--kind", "task", "--episodes", "1", "--out", str(tmp_path / "d")])
    argv = ["pretrain", "--task", "bounded_push", "--demos", str(tmp_path / "d"), "--out", str(tmp_path / "r")]
    assert main(argv) == 2
    assert "no recovery or failure demos" in capsys.readouterr().err
    assert main(["finetune", "--run", str(tmp_path / "nope"), "--steps", "10"]) == 2
    assert "no such run folder" in capsys.readouterr().err


def test_an_unfinished_or_altered_run_is_refused_by_every_consumer(tiny_run, demo_dir, tmp_path, capsys):
    """Pre-training killed between checkpoints leaves no manifest: nothing trains, calibrates,
    replays or runs a graph on it; a checkpoint changed afterwards is named."""
    import json
    import shutil

    from farl_learning.run_manifest import MANIFEST

    manifest = json.loads((tiny_run / MANIFEST).read_text())
    assert {"task_policy.pt", "recovery_policy.pt", "world_model.pt"} <= set(manifest["files"])
    assert manifest["task"] == "fragile_push_wall" and manifest["demos"] == str(demo_dir)
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    (run / MANIFEST).unlink()
    (run / "world_model.pt").unlink()  # killed while the world model trained
    commands = [
        ["finetune", "--run", str(run), "--steps", "10", "--out", str(tmp_path / "ft")],
        ["calibrate-shield", "--run", str(run), "--demos", str(demo_dir)],
        ["replay", str(demo_dir), "--run", str(run)],
        ["sim", "fragile_push_wall", "--run", str(run), "--episodes", "1", "--out", str(tmp_path / "b")],
    ]
    for argv in commands:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert "pre-training did not finish" in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "ft").exists() and not (tmp_path / "b").exists()
    shutil.rmtree(run)
    shutil.copytree(tiny_run, run)
    with open(run / "recovery_policy.pt", "ab") as f:
        f.write(b"\0")
    assert main(commands[0]) == 2
    assert "recovery_policy.pt changed since pre-training finished" in capsys.readouterr().err
    assert main(["sim", "fragile_push_wall", "--run", str(tmp_path / "typo"), "--episodes", "1"]) == 2
    assert "no such run folder" in capsys.readouterr().err and not (tmp_path / "typo").exists()


def test_only_the_world_model_is_trained_again_and_the_run_says_how(tiny_run, demo_dir, tmp_path, capsys):
    import json
    import shutil

    from farl_learning.run_manifest import MANIFEST, check_run, file_sha256

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    assert main(["calibrate-shield", "--run", str(run), "--demos", str(demo_dir)]) == 0
    before = {p.name: file_sha256(p) for p in run.glob("*.pt")}
    argv = ["pretrain", "--task", "fragile_push_wall", "--demos", str(demo_dir), "--out", str(run)]
    assert main([*argv, "--only-world-model", "--constraint-reach", "2"]) == 0
    assert "calibrate it again" in capsys.readouterr().out
    after = {p.name: file_sha256(p) for p in run.glob("*.pt")}
    assert {k for k in before if before[k] != after[k]} == {"world_model.pt"}  # policies and critics kept
    manifest = check_run(run)
    assert manifest["pretrain"]["world_model"]["constraint_reach"] == 2 and manifest["seed"] == 0
    old = json.loads((tiny_run / MANIFEST).read_text())["pretrain"]
    assert {k: v for k, v in manifest["pretrain"].items() if k != "world_model"} == {
        k: v for k, v in old.items() if k != "world_model"
    }
    assert not (run / "shield.json").exists()  # the old calibration was the old model's
    argv[2] = "bounded_push"
    assert main([*argv, "--only-world-model"]) == 2
    assert "is a fragile_push_wall run, not bounded_push" in capsys.readouterr().err


def test_demos_resume_where_they_stopped_and_match_an_uninterrupted_set(tmp_path, capsys):
    from farl_common.bags import read_episode

    argv = ["demos", "--task", "bounded_push", "--kind", "recovery", "--seed", "3"]
    assert main([*argv, "--episodes", "2", "--out", str(tmp_path / "a")]) == 0  # "interrupted" after 2
    assert main([*argv, "--episodes", "4", "--out", str(tmp_path / "a")]) == 0
    assert main([*argv, "--episodes", "4", "--out", str(tmp_path / "b")]) == 0
    a, b = sorted((tmp_path / "a").iterdir()), sorted((tmp_path / "b").iterdir())
    assert [p.name for p in a] == [p.name for p in b] and len(a) == 4
    assert [read_episode(p).seed for p in a] == [read_episode(p).seed for p in b]
    assert main([*argv, "--episodes", "4", "--out", str(tmp_path / "a")]) == 0  # complete: nothing to do
    assert len(list((tmp_path / "a").iterdir())) == 4


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["demos", "--task", "bounded_push", "--kind", "task", "--episodes", "0", "--out", "x"], "must be >= 1, got 0"),
        (["sim", "fragile_push_wall", "--episodes", "-2"], "must be >= 1, got -2"),
        (["finetune", "--run", "r", "--steps", "0"], "--steps: must be >= 1, got 0"),
        (["finetune", "--run", "r", "--steps", "-5"], "must be >= 1, got -5"),
        (["finetune", "--run", "r", "--steps", "10", "--eps-safe", "10.5"], "between 0 and 10"),
        (["bench", "--tasks", "nope_task", "--out", "x"], "unknown nope_task; choose from bounded_push"),
        (["bench", "--methods", "farl,magic", "--out", "x"], "unknown magic; choose from farl"),
        (["bench", "--methods", "farl:0", "--out", "x"], "farl:0: seeds after ':' must be a whole number >= 1"),
        (["bench", "--methods", "magic:3", "--out", "x"], "unknown magic; choose from farl"),
        (["bench", "--jobs", "0", "--out", "x"], "must be >= 1, got 0"),
        (["perception", "view", "--task", "fragile_push_wall", "--frames", "0"], "must be >= 1"),
        (["replay", "x", "--ros", "--speed", "0"], "must be > 0"),
    ],
)
def test_numbers_and_names_are_checked_before_anything_runs(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_bench_methods_take_their_own_seed_counts():
    from farl_bringup.cli import build_parser

    args = build_parser().parse_args(["bench", "--methods", "farl:5,uni_o4:5,farl_qrisk", "--seeds", "3", "--out", "x"])
    assert args.methods == [("farl", 5), ("uni_o4", 5), ("farl_qrisk", None)]
    from farl_bringup.bench import BenchConfig

    cfg = BenchConfig(seeds=args.seeds, method_seeds={m: n for m, n in args.methods if n is not None})
    assert [cfg.seeds_of(m) for m, _ in args.methods] == [5, 5, 3]


def test_bench_campaign_runs_the_campaign_into_its_folder_with_a_pre_training_per_seed(tmp_path, monkeypatch, capsys):
    import farl_bringup.bench as bench

    calls = []

    rays = []

    judged = []

    def fake_run_bench(tasks, methods, out, cfg, jobs=1, ray=None, campaign=False):
        calls.append((tasks, methods, Path(out), cfg))
        rays.append(ray)
        judged.append(campaign)
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "table.md").write_text("| table |\n")

    monkeypatch.setattr(bench, "run_bench", fake_run_bench)
    monkeypatch.chdir(tmp_path)
    assert main(["bench", "--campaign", "--steps", "10"]) == 0
    tasks, methods, out, cfg = calls[-1]
    assert tasks == bench.CAMPAIGN["tasks"] and methods == bench.CAMPAIGN["methods"]
    assert out == Path("bench/results/campaign") and cfg.pretrain_per_seed
    assert all(cfg.seeds_of(m) == 5 for m in methods)
    assert main(["bench", "--campaign", "--tasks", "bounded_push", "--seeds", "2", "--out", "x"]) == 0
    tasks, methods, out, cfg = calls[-1]
    assert tasks == ["bounded_push"] and out == Path("x") and cfg.seeds == 2
    assert main(["bench", "--shared-pretraining", "--out", "y"]) == 0
    tasks, methods, out, cfg = calls[-1]
    assert tasks == ["fragile_push_wall"] and methods == ["farl", "uni_o4"] and not cfg.pretrain_per_seed
    assert "one pre-training per task" in capsys.readouterr().out
    assert judged == [True, True, False]  # the campaign's report judges its criteria; another folder's does not
    assert main(["bench"]) == 2 and len(calls) == 3  # nothing runs without a folder to write to
    assert "give --out FOLDER (or --campaign" in capsys.readouterr().err
    assert rays == [None, None, None]  # --jobs unless --ray is asked for
    assert main(["bench", "--campaign", "--ray"]) == 0 and rays[-1].address is None  # a local Ray instance
    assert main(["bench", "--campaign", "--ray", "10.0.0.1:6379", "--ray-retries", "5"]) == 0
    assert (rays[-1].address, rays[-1].max_retries) == ("10.0.0.1:6379", 5)


def test_every_option_says_what_it_is_and_its_default():
    import argparse

    from farl_bringup.cli import build_parser

    def parsers(p):
        yield p
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    yield from parsers(sub)

    checked = 0
    for parser in parsers(build_parser()):
        text = " ".join(parser.format_help().split())
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
                continue
            checked += 1
            name = action.option_strings[0] if action.option_strings else action.dest
            assert action.help, f"{parser.prog} {name}: no help text"
            if action.option_strings and action.default not in (None, False):
                shown = ",".join(action.default) if isinstance(action.default, list) else action.default
                assert f"(default: {shown})" in text, f"{parser.prog} {name}: default not shown"
    assert checked > 80


def test_an_unwritable_out_is_refused_before_any_work(capsys):
    argv = ["demos", "--task", "bounded_push", "--kind", "task", "--episodes", "1", "--out", "/proc/farl_out"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("farl demos: error: --out /proc/farl_out: cannot write in /proc") and "demos (" not in err


def test_a_bug_below_farl_shows_its_traceback_and_farls_own_errors_one_line(monkeypatch, capsys, tmp_path):
    import torch

    import farl_bringup.cli as cli

    def shape_bug(args):
        return torch.zeros(2) @ torch.zeros(3)

    monkeypatch.setattr(cli, "_cmd_inspect", shape_bug)
    with pytest.raises(RuntimeError, match="size"):
        main(["inspect", str(tmp_path)])  # a programming error is not dressed up as a user error

    def own_check(args):
        from farl_sim.demos import generate_demos

        generate_demos("bounded_push", "task", 0, "unused")  # farl's own check raises ValueError

    monkeypatch.setattr(cli, "_cmd_inspect", own_check)
    assert main(["inspect", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == "farl inspect: error: episodes must be >= 1, got 0"
    with pytest.raises(ValueError):
        main(["--debug", "inspect", str(tmp_path)])


def test_torch_threads_are_chosen_deliberately(tmp_path, monkeypatch, capsys):
    import torch

    before = torch.get_num_threads()
    try:
        argv = ["demos", "--task", "bounded_push", "--kind", "task", "--episodes", "1", "--out", str(tmp_path)]
        assert main(["--threads", "2", *argv]) == 0 and torch.get_num_threads() == 2
        monkeypatch.delenv("FARL_THREADS", raising=False)
        assert main(argv) == 0 and torch.get_num_threads() == 1  # the default: one thread
        monkeypatch.setenv("FARL_THREADS", "lots")
        capsys.readouterr()
        assert main(argv) == 2
        assert "FARL_THREADS='lots': must be a whole number >= 1" in capsys.readouterr().err
        with pytest.raises(SystemExit):
            main(["--threads", "0", *argv])
    finally:
        torch.set_num_threads(before)


def test_finetune_killed_mid_collection_resumes_without_logging_episodes_twice(tiny_run, tmp_path):
    """SIGKILL of a real `farl finetune` after its first checkpoint, while it is collecting the next
    rollout (episodes already appended to episodes.jsonl): the resumed run's log equals an
    uninterrupted run's, line for line."""
    import json
    import signal
    import subprocess
    import sys
    import time

    from farl_learning.checkpoint import load

    def argv(out):
        return [sys.executable, "-m", "farl_bringup.cli", "finetune", "--run", str(tiny_run), "--steps", "1600",
                "--out", str(out)]  # fmt: skip

    straight = tmp_path / "straight"
    subprocess.run(argv(straight), check=True, capture_output=True, timeout=600)
    killed = tmp_path / "killed"
    proc = subprocess.Popen(argv(killed), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log, ckpt = killed / "episodes.jsonl", killed / "finetune.pt"
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if ckpt.exists() and log.exists():
                saved = len(load(ckpt, "finetune")["episodes"])
                if len(log.read_text().splitlines()) > saved:  # mid-collection, past the checkpoint
                    break
            time.sleep(0.02)
        assert proc.poll() is None, "finetune ended before it could be killed mid-collection"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    assert len(log.read_text().splitlines()) > saved
    resumed = subprocess.run(argv(killed), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stdout
    lines = log.read_text().splitlines()
    assert [json.loads(x)["episode"] for x in lines] == list(range(len(lines)))
    assert lines == (straight / "episodes.jsonl").read_text().splitlines()


def test_the_sim_summary_reads_as_a_sentence_for_one_episode(tmp_path, capsys):
    """`farl sim --episodes 1` says "1 episode" and "1 success" (it said "1 episodes, 1 successes")."""
    assert main(["sim", "fragile_push_wall", "--policy", "scripted", "--episodes", "1", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "fragile_push_wall: 1 episode, scripted policy" in out
    assert "done: 1 episode, 1 success, 0 failures, 200 steps" in out, out
