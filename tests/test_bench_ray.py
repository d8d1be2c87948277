"""`farl bench --ray` on a local Ray cluster: the same results as `--jobs`, a killed worker's task
retried, a re-run that skips what is done."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest
from conftest import SMALL
from test_bench import small_bench

from farl_bringup.bench import run_bench
from farl_bringup.bench_ray import RayOptions, pack, unpack

FINETUNE_TITLE = b"ray::finetune_task"
"""What Ray names a worker process while it runs a fine-tuning (its process title)."""


def _same_figures(out: Path) -> dict:
    """OUT/results.json without what differs between two runs of the same work in two folders (wall
    time, machine, and OUT itself in the calibration's path)."""
    text = (out / "results.json").read_text().replace(str(out), "OUT")
    return {
        task: {
            **entry,
            "methods": {
                k: {f: v for f, v in r.items() if f not in ("seconds", "machine")} for k, r in entry["methods"].items()
            },
        }
        for task, entry in json.loads(text).items()
    }


def _kill_first_finetune(stop: threading.Event, killed: list[int]) -> None:
    """SIGKILL the first worker process seen running a fine-tuning, as a node's crash would."""
    while not stop.is_set() and not killed:
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if cmd.startswith(FINETUNE_TITLE):
                os.kill(int(pid), signal.SIGKILL)
                killed.append(int(pid))
                return
        time.sleep(0.05)


def test_pack_and_unpack_carry_a_folder_and_leave_what_is_asked(tmp_path):
    src = tmp_path / "src"
    (src / "run").mkdir(parents=True)
    (src / "run" / "a.pt").write_bytes(b"weights")
    (src / "before.json").write_text("{}")
    (src / "demos").mkdir()
    (src / "demos" / "ep0").write_text("big")
    dst = tmp_path / "dst"
    (dst / "run").mkdir(parents=True)
    (dst / "run" / "stale.pt").write_text("old")
    unpack(pack(src, ("demos",)), dst)
    assert sorted(p.relative_to(dst).as_posix() for p in dst.rglob("*")) == ["before.json", "run", "run/a.pt"]
    assert (dst / "run" / "a.pt").read_bytes() == b"weights"
    assert pack(tmp_path / "missing") == b""
    unpack(b"", tmp_path / "empty")
    assert (tmp_path / "empty").is_dir()


@pytest.mark.slow
def test_ray_gives_the_results_of_jobs_retries_a_killed_worker_and_resumes(tmp_path):
    pytest.importorskip("ray")
    steps = 240 if SMALL else 2000
    cfg = small_bench(steps)  # each seed its own pre-training
    tasks, methods = ["fragile_push_wall"], ["farl", "uni_o4"]
    run_bench(tasks, methods, tmp_path / "jobs", cfg, progress=False, jobs=2)

    stop, killed = threading.Event(), []
    killer = threading.Thread(target=_kill_first_finetune, args=(stop, killed), daemon=True)
    killer.start()
    try:
        run_bench(tasks, methods, tmp_path / "ray", cfg, progress=False, ray=RayOptions(num_cpus=2, max_retries=2))
    finally:
        stop.set()
        killer.join()
    assert killed, "no fine-tuning worker was seen to kill"

    ray = json.loads((tmp_path / "ray" / "results.json").read_text())
    assert sorted(ray["fragile_push_wall"]["methods"]) == ["farl/0", "uni_o4/0"]
    # the killed run was run again, to the same figures
    assert _same_figures(tmp_path / "ray") == _same_figures(tmp_path / "jobs")
    eps_source = ray["fragile_push_wall"]["methods"]["farl/0"]["config"]["shield"]["eps_source"]
    assert eps_source == str(tmp_path / "ray" / "fragile_push_wall" / "pretrain" / "seed0" / "run" / "shield.json")
    # the folder holds what --jobs leaves: the pre-training, each fine-tuning's checkpoints, each result
    tdir = tmp_path / "ray" / "fragile_push_wall"
    assert (tdir / "pretrain" / "seed0" / "run" / "task_policy.pt").is_file()
    assert (tdir / "pretrain" / "seed0" / "before.json").is_file()
    assert sorted(p.name for p in (tdir / "results").iterdir()) == ["farl.seed0.json", "uni_o4.seed0.json"]
    assert any((tdir / "finetune" / "farl" / "seed0").iterdir())
    assert (tmp_path / "ray" / "report.md").is_file()

    # A re-run finds everything done: nothing is run again, nothing rewritten.
    stamps = {p: p.stat().st_mtime_ns for p in (tdir / "results").iterdir()}
    run_bench(tasks, methods, tmp_path / "ray", cfg, progress=False, ray=RayOptions(num_cpus=2))
    assert {p: p.stat().st_mtime_ns for p in (tdir / "results").iterdir()} == stamps
    assert json.loads((tmp_path / "ray" / "results.json").read_text()) == ray


def test_without_ray_installed_the_bench_says_how_to_get_it(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(RuntimeError, match=r"pip install 'farl\[cluster\]'"):
        run_bench(["fragile_push_wall"], ["uni_o4"], tmp_path, small_bench(10), progress=False, ray=RayOptions())
