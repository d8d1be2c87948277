"""SIGKILL of real `farl demos` and `farl sim` processes in mid-episode, then `farl inspect`: every
finished episode is readable, the half-written one is only in the unfinished folder (reported, never
listed as an episode), and running the command again carries on."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from farl_common.bags import PARTIAL_DIR, iter_bag_paths, load_dataset, read_episode

FARL = [sys.executable, "-m", "farl_bringup.cli"]


def _kill_mid_episode(argv: list[str], out: Path, finished: int) -> list[Path]:
    """Start `argv`; once `finished` bags are whole and the next one is being written, SIGKILL it. The
    process is stopped (SIGSTOP) while that is checked, so the kill lands where the check saw it."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    partial = out / PARTIAL_DIR

    def mid_episode() -> bool:
        try:  # the running process moves bags out and removes the empty partial folder as we look
            return any(partial.iterdir()) and len(list(iter_bag_paths(out))) >= finished
        except FileNotFoundError:
            return False

    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if mid_episode():
                proc.send_signal(signal.SIGSTOP)
                if mid_episode():
                    break
                proc.send_signal(signal.SIGCONT)
            time.sleep(0.01)
        assert proc.poll() is None, f"ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    return sorted(iter_bag_paths(out))


def _inspect(out: Path, *extra: str) -> str:
    done = subprocess.run([*FARL, "inspect", str(out), *extra], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _check_after_kill(out: Path, bags: list[Path]) -> None:
    assert bags, "no finished episode before the kill"
    for b in bags:
        read_episode(b)  # whole and readable
    assert len(load_dataset(out, strict=True).episodes) == len(bags)
    report = _inspect(out)
    assert f"unfinished: 1 bag(s) in {out / PARTIAL_DIR}" in report
    assert all(b.name in report for b in bags) and "UNREADABLE" not in report


@pytest.mark.slow
def test_demos_killed_mid_episode_keep_whole_bags_and_resume(tmp_path):
    out = tmp_path / "demos"
    argv = [*FARL, "demos", "--task", "fragile_push_wall", "--kind", "task", "--episodes", "4", "--out", str(out)]
    bags = _kill_mid_episode(argv, out, finished=2)
    _check_after_kill(out, bags)
    again = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    after = sorted(iter_bag_paths(out))
    assert after == [out / f"task_fragile_push_wall_s0_ep{i:05d}" for i in range(4)]
    assert after[: len(bags)] == bags  # carried on; nothing before the kill redone
    assert "unfinished" not in _inspect(out)  # the re-run cleared the dead episode


@pytest.mark.slow
def test_sim_killed_mid_episode_keeps_whole_bags_and_runs_again(tmp_path):
    out = tmp_path / "bags"
    argv = [*FARL, "sim", "fragile_push_wall", "--policy", "scripted", "--episodes", "3", "--out", str(out)]
    bags = _kill_mid_episode(argv, out, finished=1)
    _check_after_kill(out, bags)
    again = subprocess.run([*argv[:-4], "--episodes", "1", "--out", str(out)], capture_output=True, text=True,
                           timeout=600)  # fmt: skip
    assert again.returncode == 0, again.stderr
    after = sorted(iter_bag_paths(out))
    assert len(after) == len(bags) + 1 and set(bags) < set(after)
    assert "unfinished: 1 bag(s)" in _inspect(out)  # the killed run's dead episode is still reported ...
    assert "removed 1 unfinished bag(s)" in _inspect(out, "--clean")  # ... until it is cleaned
    assert "unfinished" not in _inspect(out)
