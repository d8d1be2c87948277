"""`farl bench --ray`: the benchmark's pre-trainings and fine-tunings as Ray tasks, on one machine or a cluster.

Each pre-training (a task, and the seed whose folder it is) is one Ray task; each (task, method, seed)
fine-tuning is another, submitted at once with its pre-training's object ref as an argument, so Ray runs
it as soon as that pre-training is done, on whichever node has a free CPU. Folders travel through Ray's
object store, never a worker's disk: a task unpacks what it is given into a temporary folder of its own
and returns what it made, packed. The driver owns OUT: it unpacks each pre-training and fine-tuning
there and writes results.json the moment a result arrives, in the same layout and with the same
figures as `--jobs`. Ray retries a task whose worker died (`RayOptions.max_retries`); a restarted
driver or head resumes from OUT, skipping what is done, as `--jobs` does.

Ray is an optional extra (`pip install farl[cluster]`).
"""

from __future__ import annotations

import io
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from farl_bringup.bench import (
    BenchConfig,
    _keep_pretraining,
    _prepare,
    _pretrainings,
    _result_path,
    _run_one,
    _write_json,
    raise_failed,
    run_done,
)

LEFT_BEHIND = ("demos", "heldout")
"""What a pre-training folder keeps to itself: a complete, calibrated pre-training needs neither again
(`_prepare_task`), so they stay where they were made instead of crossing the cluster."""


@dataclass
class RayOptions:
    """How `farl bench --ray` uses the cluster."""

    address: str | None = None
    """Ray cluster to join (`ray start --head` prints it, e.g. "192.168.1.10:6379", or "auto"); None starts a
    local one on this machine's cores."""
    max_retries: int = 3
    """Times Ray re-runs a task whose worker process or node died (an error raised by the run is not retried)."""
    num_cpus: int | None = None
    """CPUs of a local cluster (None: all of this machine's); ignored when joining one."""


def pack(folder: Path, leave: tuple[str, ...] = ()) -> bytes:
    """A folder as gzip'd tar bytes, without its top-level entries named in `leave`; b"" if it does not exist."""
    if not folder.is_dir():
        return b""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for entry in sorted(folder.iterdir()):
            if entry.name not in leave:
                tar.add(entry, arcname=entry.name)
    return buf.getvalue()


def unpack(data: bytes, folder: Path) -> None:
    """`pack`'s bytes into `folder` (made if missing); what was there under the same names is replaced."""
    folder.mkdir(parents=True, exist_ok=True)
    if not data:
        return
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for name in {m.name.split("/")[0] for m in tar.getmembers()}:
            old = folder / name
            if old.is_dir():
                shutil.rmtree(old)
            elif old.exists():
                old.unlink()
        tar.extractall(folder, filter="data")


def prepare_task(task: str, cfg: BenchConfig, seed: int, threads: int, made: bytes) -> tuple[dict[str, Any], bytes]:
    """A Ray task: the pre-training seed `seed` fine-tunes from, resumed from `made` (what OUT had of it,
    packed), in a folder of its own. Returns its results.json entry and the folder, packed."""
    with tempfile.TemporaryDirectory(prefix="farl-bench-") as tmp:
        out = Path(tmp)
        pdir = out / task / cfg.pretraining(seed)
        unpack(made, pdir)
        entry = _prepare(task, out, cfg, seed, False, threads)
        return entry, pack(pdir, LEFT_BEHIND)


def finetune_task(
    task: str, method: str, seed: int, cfg: BenchConfig, pretraining: bytes
) -> tuple[dict[str, Any], bytes]:
    """A Ray task: one (task, method, seed) fine-tuning from its pre-training (packed), on one core.
    Returns the result and the fine-tuning's folder (its checkpoints), packed."""
    with tempfile.TemporaryDirectory(prefix="farl-bench-") as tmp:
        tdir = Path(tmp) / task
        unpack(pretraining, tdir / cfg.pretraining(seed))
        result = _run_one(task, tdir, method, seed, cfg, False, 1)
        return result, pack(tdir / "finetune" / method / f"seed{seed}")


def run_on_ray(
    tasks: list[str],
    todo: list[tuple[str, str, int]],
    out: Path,
    cfg: BenchConfig,
    results: dict[str, Any],
    results_path: Path,
    progress: bool,
    options: RayOptions,
) -> None:
    """`run_bench`'s work list on a Ray cluster; results kept in OUT as they arrive (see the module)."""
    keys = _pretrainings(tasks, todo, cfg)
    if not keys:
        return  # all done: no cluster needed
    try:
        import ray
    except ImportError:
        raise RuntimeError("farl bench --ray needs Ray: pip install 'farl[cluster]'") from None
    from tqdm import tqdm

    started_here = not ray.is_initialized()
    if started_here:
        local = options.address is None
        ray.init(
            address=options.address,
            num_cpus=options.num_cpus if local else None,
            include_dashboard=False,
            log_to_driver=progress,
        )
    try:
        cpus = int(ray.cluster_resources().get("CPU", 1))
        # as --jobs gives a pre-training, and no more than one node has: a task must fit on a node
        largest = max((int(n["Resources"].get("CPU", 0)) for n in ray.nodes() if n.get("Alive")), default=1)
        threads = max(1, min(4, largest, cpus // max(1, len(keys))))
        prepare = ray.remote(num_cpus=threads, num_returns=2, max_retries=options.max_retries)(prepare_task)
        finetune = ray.remote(num_cpus=1, num_returns=2, max_retries=options.max_retries)(finetune_task)
        pending: dict[Any, tuple[Any, ...]] = {}
        for task, seed in keys:
            pdir = out / task / cfg.pretraining(seed)
            entry_ref, packed_ref = prepare.remote(task, cfg, seed, threads, pack(pdir, LEFT_BEHIND))
            pending[entry_ref] = ("prepare", task, seed, packed_ref)
            for t, m, s in todo:
                if (t, cfg.pretraining(s)) == (task, cfg.pretraining(seed)):
                    result_ref, folder_ref = finetune.remote(t, m, s, cfg, packed_ref)
                    pending[result_ref] = ("run", t, m, s, folder_ref)
        bar = tqdm(total=len(todo), desc="bench runs (ray)", unit="run", disable=not progress)
        say = bar.write if progress else (lambda _line: None)
        failed = []
        while pending:
            (ref,), _ = ray.wait(list(pending), num_returns=1)
            kind, *what = pending.pop(ref)
            if kind == "prepare":
                task, seed, packed_ref = what
                try:
                    entry = ray.get(ref)
                except Exception as err:  # noqa: BLE001 - its runs fail with it and are named at the end
                    say(f"{task}: pre-training FAILED: {err}")
                    continue
                unpack(ray.get(packed_ref), out / task / cfg.pretraining(seed))
                _keep_pretraining(results, task, cfg, seed, entry)
                _write_json(results_path, results)
                say(f"{task}: pre-trained and calibrated{f' (seed {seed})' if cfg.pretrain_per_seed else ''}")
                continue
            task, method, seed, folder_ref = what
            try:
                r = ray.get(ref)
            except Exception as err:  # noqa: BLE001 - the other runs go on; this one is named at the end
                failed.append(f"{task} {method} seed {seed}: {type(err).__name__}: {err}")
                say(f"{task} {method} seed {seed} FAILED: {err}")
                bar.update()
                continue
            unpack(ray.get(folder_ref), out / task / "finetune" / method / f"seed{seed}")
            shield = r["config"].get("shield") or {}
            if shield.get("eps_source"):  # the worker's folder is gone: name the calibration as OUT has it
                run = out / task / cfg.pretraining(seed) / "run"
                shield["eps_source"] = str(run / Path(shield["eps_source"]).name)
            path = _result_path(out / task, method, seed)
            path.parent.mkdir(parents=True, exist_ok=True)
            _write_json(path, r)
            results.setdefault(task, {"methods": {}})["methods"][f"{method}/{seed}"] = r
            _write_json(results_path, results)
            say(run_done(task, method, seed, r))
            bar.update()
        bar.close()
    finally:
        if started_here:
            ray.shutdown()
    raise_failed(failed, len(todo))
