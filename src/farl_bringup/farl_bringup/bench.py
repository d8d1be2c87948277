"""`farl bench`: the FailureBench comparison (paper Sec. V.B, Fig. 4-5, Table II).

For each task and seed: demonstrations (seeded by the seed) -> a pre-training -> eps_safe calibrated
on held-out demos -> every method's online fine-tuning of that seed from that checkpoint, so a result
says how a method does on the task, not on one pre-training (`BenchConfig.pretrain_per_seed`; off,
every seed shares one pre-training made from DEMO_SEED). Recorded per task, method and seed: failure
episodes during fine-tuning, mean training return, and deterministic evaluation of the policy before
(its own pre-training's) and after fine-tuning. Writes results.json, a Markdown table and plots.

Methods: farl (world-model critic + recovery policy), farl_mppi (world-model critic + MPPI
recovery), farl_qrisk (Recovery-RL Q_risk critic), farl_reach (FOSP reachability critic),
farl_anchor (farl with PPO held near the offline policy, `PPOConfig.anchor_coef`), uni_o4 (no
shield), ppo_lag (PPO-Lagrangian, no shield).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from farl_bringup.bench_fosp import FOSP_METHODS, cost_regret_of, run_fosp
from farl_common.shield_settings import CRITICS, CalibrationSettings, ShieldSettings

DEMO_SEED = 0
"""Seed of a task's demonstrations where all seeds share one pre-training (`pretrain_per_seed` off)."""

COLLAPSE_FRACTION = 0.8
"""A fine-tuning collapsed when its policy evaluates below this fraction of its own pre-trained one's."""

CAMPAIGN = {
    "tasks": ["bounded_push", "bounded_soccer", "fragile_push_wall", "obstructed_push", "disturbed_push"],
    "methods": ["farl", "uni_o4", "farl_qrisk", "farl_mppi", "ppo_lag", "farl_anchor"],
    "seeds": 5,
    "out": "bench/results/campaign",
}
"""`farl bench --campaign`: the paper's four FailureBench tasks and Disturbed Push, FARL, Uni-O4 and the
ablations, 5 seeds each with a pre-training of its own, into one folder; farl_anchor too, which
decides whether the anchor against collapse (`PPOConfig.anchor_coef`) earns a place as default."""

METHODS: dict[str, dict[str, Any]] = {
    "farl": {"shield": "world_model", "recovery": "policy", "lagrangian": False},
    "farl_mppi": {"shield": "world_model", "recovery": "mppi", "lagrangian": False},
    "farl_qrisk": {"shield": "q_risk", "recovery": "policy", "lagrangian": False},
    "farl_reach": {"shield": "reachability", "recovery": "policy", "lagrangian": False},
    "farl_anchor": {"shield": "world_model", "recovery": "policy", "lagrangian": False, "ppo": {"anchor_coef": 0.1}},
    "uni_o4": {"shield": "none", "recovery": "policy", "lagrangian": False},
    "ppo_lag": {"shield": "none", "recovery": "policy", "lagrangian": True},
    **{name: {"fosp": changes} for name, changes in FOSP_METHODS.items()},
}
"""FARL, its baselines and ablations, and FOSP with its ablations (`bench_fosp.FOSP_METHODS`)."""


@dataclass
class BenchConfig:
    """Budgets of one benchmark run."""

    steps: int = 100_000
    """Online fine-tuning steps per method and seed."""
    seeds: int = 3
    """Seeds per method, 0 .. seeds - 1."""
    method_seeds: dict[str, int] = field(default_factory=dict)
    """Seeds of the methods that differ from `seeds` (the paper's campaign: 5 for farl and uni_o4,
    3 for the ablations)."""
    demo_episodes: tuple[int, int, int] | None = None
    """Task, recovery and failure demonstrations; None: the task's own (`demos_for`)."""
    pretrain_scale: float = 1.0
    """Multiplies every pre-training gradient-step budget."""
    policy_failures: int | None = None
    """Failing rollouts of the pre-trained policy for the world model and critics (paper V.B.1);
    None: `PretrainConfig.policy_failure_episodes` times `pretrain_scale`."""
    constraint_reach: int = 0
    """`WorldModelConfig.constraint_reach`: 0 is eq. 8; K > 0 labels the K steps before a failure too."""
    eval_episodes: int = 30
    """Deterministic evaluation episodes before and after (20 gave returns 635 and 947 for the same policy
    on two seed sets: fewer say little)."""
    pretrain_per_seed: bool = True
    """Each seed has its own demonstrations (seeded by it), pre-training and calibration, shared by the
    methods at that seed; False: one pre-training per task from DEMO_SEED for every seed."""
    shield: ShieldSettings = field(default_factory=ShieldSettings)
    """H and gamma_risk of every shielded method (eps_safe is calibrated per critic)."""
    calibration: CalibrationSettings = field(default_factory=CalibrationSettings)
    """How eps_safe is calibrated, and on how many held-out demos."""

    def pretrain_config(self):
        """The pre-training these budgets ask for (`PretrainConfig`)."""
        from farl_bringup.pipeline import PretrainConfig

        pre = PretrainConfig().scaled(self.pretrain_scale, self.policy_failures)
        pre.world_model = replace(pre.world_model, constraint_reach=self.constraint_reach)
        return pre

    def demos_for(self, task: str) -> tuple[int, int, int]:
        """FailureBench: 20 task, 120 recovery, 40 failure demos. SafeReach: the FOSP paper's 200 (150 that
        touch nothing, 50 that touch) and 40 recoveries."""
        from farl_sim.safe_reach_tasks import SAFE_REACH

        if self.demo_episodes is not None:
            return self.demo_episodes
        return (150, 40, 50) if task in SAFE_REACH else (20, 120, 40)

    def seeds_of(self, method: str) -> int:
        return self.method_seeds.get(method, self.seeds)

    def pretraining(self, seed: int) -> str:
        """The folder under OUT/TASK of the pre-training seed `seed` fine-tunes from ("" = OUT/TASK)."""
        return f"pretrain/seed{seed}" if self.pretrain_per_seed else ""

    def demo_seed(self, seed: int) -> int:
        return seed if self.pretrain_per_seed else DEMO_SEED


def calibrated_as(entry: dict[str, Any] | None, cfg: BenchConfig) -> bool:
    """Whether a critic's shield.json entry was calibrated with the bench's calibration and shield settings."""
    if entry is None:
        return False
    wanted = {
        "lookahead": cfg.calibration.lookahead_steps,
        "max_false_alarm": cfg.calibration.max_false_alarm,
        "policy_rollouts": cfg.calibration.policy_rollouts,
        "horizon": cfg.shield.horizon_steps,
        "gamma_risk": cfg.shield.gamma_risk,
    }
    entry = {"policy_rollouts": 0, **entry}  # entries written before policy rollouts existed had none
    return all(entry.get(k) == v for k, v in wanted.items())


def _prepare_task(
    task: str, out: Path, cfg: BenchConfig, progress: bool, threads: int | None = None, demo_seed: int = DEMO_SEED
) -> dict[str, Any]:
    """Demos (seeded by `demo_seed`), a pre-training and every critic's calibration for `task` in `out`,
    each resumed where it stopped; then the pre-trained policy's evaluation. Returns the pre-training's
    entry (calibration and "before").

    A complete, calibrated run needs neither its demos nor its held-out set again, so a results folder
    copied without them (to another machine, say) still resumes. `threads`: torch's threads in a worker
    process; None keeps this process's setting (`farl --threads`)."""
    from farl_bringup.pipeline import calibrate_shield, generate_heldout, pretrain
    from farl_common.torch_threads import use_threads
    from farl_learning.checkpoint import load
    from farl_learning.finetune_rollouts import evaluate
    from farl_learning.run_manifest import IncompleteRun, check_run
    from farl_learning.uni_o4 import policy_from_checkpoint
    from farl_sim.demos import generate_demos

    if threads is not None:
        use_threads(threads)
    demos, held, run = out / "demos", out / "heldout", out / "run"
    try:
        check_run(run)
    except IncompleteRun:
        for kind, n in zip(("task", "recovery", "failure"), cfg.demos_for(task), strict=True):
            generate_demos(task, kind, n, demos, seed=demo_seed, progress=progress, resume=True)
        pretrain(task, demos, run, cfg.pretrain_config(), seed=demo_seed, progress=progress)
    calib_path = run / "shield.json"
    done = json.loads(calib_path.read_text()) if calib_path.exists() else {}
    for critic in CRITICS:
        if not calibrated_as(done.get(critic), cfg):
            generate_heldout(task, held, demo_seed, cfg.calibration, progress)
            settings = replace(cfg.shield, critic=critic)
            calibrate_shield(run, held, settings, cfg.calibration, verbose=progress)
    before_path = out / "before.json"
    if not before_path.is_file():
        pre = policy_from_checkpoint(load(run / "task_policy.pt"))
        _write_json(before_path, evaluate(task, pre, cfg.eval_episodes))
    return {
        "calibration": json.loads(calib_path.read_text()),
        "before": json.loads(before_path.read_text()),
        "id": pretraining_id(run),
    }


def pretraining_id(run: Path) -> str:
    """What identifies a finished pre-training: a digest of its manifest's checkpoint digests. Each result
    records it, so runs at one seed that came from different pre-trainings (one made again after its
    folder was lost, say) show up (`campaign_criteria.mixed_pretrainings`)."""
    from farl_learning.run_manifest import check_run

    files = check_run(run)["files"]
    return hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()[:16]


def _result_path(tdir: Path, method: str, seed: int) -> Path:
    return tdir / "results" / f"{method}.seed{seed}.json"


def _run_one(
    task: str, tdir: Path, method: str, seed: int, cfg: BenchConfig, progress: bool, threads: int | None = None
) -> dict[str, Any]:
    """One (task, method, seed) fine-tuning from the seed's pre-training, evaluated; the result is written
    to TASK/results/ the moment it is done (by the process that made it, so parallel runs never write
    the same file)."""
    from farl_bringup.pipeline import finetune
    from farl_common.torch_threads import use_threads
    from farl_learning.ppo import PPOConfig

    if threads is not None:
        use_threads(threads)
    m = METHODS[method]
    if "fosp" in m:
        result = run_fosp(task, tdir, method, seed, cfg, progress, {"machine": _machine()})
        result["config"] = {**_result_config(cfg, None, task), **result["config"]}
        return _keep_result(tdir, method, seed, result)
    t0 = time.perf_counter()
    pdir = tdir / cfg.pretraining(seed)
    shield = None
    if m["shield"] != "none":
        shield = replace(cfg.shield, critic=m["shield"], recovery=m["recovery"]).calibrated(pdir / "run")
    trainer = finetune(
        pdir / "run",
        cfg.steps,
        shield=shield,
        lagrangian=m["lagrangian"],
        out=tdir / "finetune" / method / f"seed{seed}",
        seed=seed,
        ppo=PPOConfig(**m.get("ppo", {})),
        progress=progress,
    )
    result = {
        "method": method,
        "seed": seed,
        "config": {**_result_config(cfg, shield, task), "ppo": m.get("ppo", {})},
        "pretraining": {
            "folder": cfg.pretraining(seed),
            "demo_seed": cfg.demo_seed(seed),
            "id": pretraining_id(pdir / "run"),
        },
        "before": json.loads((pdir / "before.json").read_text()),
        **finetune_summary(task, trainer, cfg.eval_episodes),
        "seconds": time.perf_counter() - t0,
        "machine": _machine(),
    }
    trainer.close()
    return _keep_result(tdir, method, seed, result)


def _keep_result(tdir: Path, method: str, seed: int, result: dict[str, Any]) -> dict[str, Any]:
    path = _result_path(tdir, method, seed)
    path.parent.mkdir(exist_ok=True)
    _write_json(path, result)
    return result


def finetune_summary(task: str, trainer: Any, eval_episodes: int) -> dict[str, Any]:
    """What one fine-tuning did (failure episodes, training return over its last 20% of episodes,
    swaps per episode, the per-episode curve) and how its final policy evaluates: a result's figures."""
    from farl_learning.finetune_rollouts import evaluate

    eps = trainer.episodes
    tail = eps[-max(1, len(eps) // 5) :]
    return {
        "steps": trainer.steps,
        "episodes": len(eps),
        "failure_episodes": int(sum(e["failure"] for e in eps)),
        "train_return_last20pct": float(np.mean([e["return"] for e in tail])),
        "swaps_per_episode": float(np.mean([e["swaps"] for e in eps])),
        "cost_regret": float(sum(e.get("cost", 0.0) for e in eps) / max(1, trainer.steps)),
        "after": evaluate(task, trainer.policy, eval_episodes),
        # per episode: steps so far, return, failure (0/1), cost J_c (FailureBench: its one failure step)
        "curve": [[e["step"], e["return"], int(e["failure"]), e.get("cost", float(e["failure"]))] for e in eps],
    }


def _machine() -> dict[str, Any]:
    """Where a result was made: results from different machines or library versions differ per seed."""
    import platform

    import mujoco
    import torch

    return {
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "mujoco": mujoco.__version__,
        # MPPI plans on the GPU when there is one (farl_mppi)
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }


def _collect(out: Path, results: dict[str, Any]) -> None:
    """Fold every per-run result file under OUT/TASK/results/ into `results` (results.json's shape)."""
    for path in sorted(out.glob("*/results/*.json")):
        r = json.loads(path.read_text())
        task = path.parent.parent.name
        results.setdefault(task, {"methods": {}})["methods"][f"{r['method']}/{r['seed']}"] = r


def run_bench(
    tasks: list[str],
    methods: list[str],
    out: str | Path,
    cfg: BenchConfig | None = None,
    progress: bool = True,
    jobs: int = 1,
    ray: Any = None,
    campaign: bool = False,
) -> dict[str, Any]:
    """Every (task, method, seed) of the comparison not yet in OUT; `jobs` > 1 runs that many at once,
    each in its own process with one torch thread (the tasks' pre-trainings first, side by side); `ray`
    (`farl_bringup.bench_ray.RayOptions`) runs them as tasks on a Ray cluster instead. `campaign`: OUT is
    the campaign's folder, and its report judges the campaign's criteria (`campaign_criteria`)."""
    cfg = cfg or BenchConfig()
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; choose from {sorted(METHODS)}")
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    out = Path(out)
    for task in tasks:
        for run in [out / task / "run", *sorted((out / task / "pretrain").glob("seed*/run"))]:
            _check_pretraining(run, cfg)
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.json"
    results: dict[str, Any] = json.loads(results_path.read_text()) if results_path.exists() else {}
    results.pop("config", None)  # each result carries the config it was produced with
    _collect(out, results)

    def done(task: str, method: str, seed: int) -> bool:
        r = results.get(task, {}).get("methods", {}).get(f"{method}/{seed}")
        return r is not None and r.get("steps", 0) >= cfg.steps

    # Seed by seed across methods, so a campaign cut short still has every method at equal seeds.
    todo = [
        (t, m, s)
        for s in range(max(cfg.seeds_of(m) for m in methods))
        for m in methods
        for t in tasks
        if s < cfg.seeds_of(m) and not done(t, m, s)
    ]
    if ray is not None:
        from farl_bringup.bench_ray import run_on_ray

        run_on_ray(tasks, todo, out, cfg, results, results_path, progress, ray)
    elif jobs == 1:
        for task, seed in _pretrainings(tasks, todo, cfg):
            _keep_pretraining(results, task, cfg, seed, _prepare(task, out, cfg, seed, progress))
            _write_json(results_path, results)
            for _, method, s in _runs_from(todo, task, seed, cfg):
                r = _run_one(task, out / task, method, s, cfg, progress)
                results[task]["methods"][f"{method}/{s}"] = r
                _write_json(results_path, results)  # each result is kept the moment it is done
    else:
        _run_parallel(tasks, todo, out, cfg, jobs, results, results_path, progress)
    _write_json(results_path, results)
    report(out, campaign)
    return results


def _pretrainings(tasks: list[str], todo: list[tuple[str, str, int]], cfg: BenchConfig) -> list[tuple[str, int]]:
    """(task, seed) of each pre-training folder to make or resume, once, by the first seed that needs it:
    shared, every task's (its results.json entry is kept even with nothing left to run); per seed, those
    the runs to do start from."""
    needed = [(t, 0) for t in tasks] if not cfg.pretrain_per_seed else []
    by_folder: dict[tuple[str, str], tuple[str, int]] = {}
    for t, s in needed + [(t, s) for t, _, s in todo]:
        by_folder.setdefault((t, cfg.pretraining(s)), (t, s))
    return list(by_folder.values())


def _runs_from(todo: list[tuple[str, str, int]], task: str, seed: int, cfg: BenchConfig) -> list[tuple[str, str, int]]:
    """The runs of `todo` that fine-tune from the pre-training (task, seed) makes."""
    return [(t, m, s) for t, m, s in todo if (t, cfg.pretraining(s)) == (task, cfg.pretraining(seed))]


def _prepare(
    task: str, out: Path, cfg: BenchConfig, seed: int, progress: bool, threads: int | None = None
) -> dict[str, Any]:
    """The pre-training seed `seed` fine-tunes from, made or resumed (`_prepare_task`)."""
    pdir = out / task / cfg.pretraining(seed)
    return _prepare_task(task, pdir, cfg, progress, threads, cfg.demo_seed(seed))


def _keep_pretraining(results: dict[str, Any], task: str, cfg: BenchConfig, seed: int, entry: dict[str, Any]) -> None:
    """A pre-training's calibration and evaluation in results.json: the task's own entry where all seeds
    share one, else under the task's "pretrainings" by folder."""
    task_entry = results.setdefault(task, {"methods": {}})
    if cfg.pretrain_per_seed:
        task_entry.setdefault("pretrainings", {})[cfg.pretraining(seed)] = entry
    else:
        task_entry.update(entry)


def _check_pretraining(run: Path, cfg: BenchConfig) -> None:
    """A task's finished pre-training is reused only where it was made with the settings asked for, so
    that each result's recorded config is the one it came from; ValueError otherwise."""
    from farl_learning.run_manifest import MANIFEST

    path = run / MANIFEST
    if not path.is_file():
        return
    try:
        made = json.loads(path.read_text()).get("pretrain")
    except (OSError, ValueError, AttributeError):
        return  # check_run refuses it, and the task is pre-trained again
    want = json.loads(json.dumps(asdict(cfg.pretrain_config()), default=str))
    if isinstance(made, dict) and isinstance(made.get("world_model"), dict):
        made["world_model"] = {"constraint_reach": 0, **made["world_model"]}  # runs made before it existed
    if made is not None and made != want:
        differ = sorted(k for k in want if made.get(k) != want[k])
        raise ValueError(
            f"{run}: pre-trained with other settings than --pretrain-scale {cfg.pretrain_scale:g} --policy-failures "
            f"{cfg.policy_failures if cfg.policy_failures is not None else 'default'} --constraint-reach "
            f"{cfg.constraint_reach} ask for ({', '.join(differ)} differ): give those it was made with, or "
            "another --out"
        )


def _run_parallel(
    tasks: list[str],
    todo: list[tuple[str, str, int]],
    out: Path,
    cfg: BenchConfig,
    jobs: int,
    results: dict[str, Any],
    results_path: Path,
    progress: bool,
) -> None:
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from tqdm import tqdm

    # spawn: a forked child would inherit torch's thread pool and MuJoCo state from this process.
    with ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn")) as pool:
        keys = _pretrainings(tasks, todo, cfg)
        threads = max(1, min(4, jobs // max(1, len(keys))))  # the world model's training uses a few well
        pending = {pool.submit(_prepare, t, out, cfg, s, False, threads): ("prepare", t, s) for t, s in keys}
        bar = tqdm(total=len(todo), desc="bench runs", unit="run", disable=not progress)
        say = bar.write if progress else (lambda _line: None)
        failed = []
        while pending:
            fut = next(as_completed(pending))
            kind, *what = pending.pop(fut)
            if kind == "prepare":
                task, seed = what
                _keep_pretraining(results, task, cfg, seed, fut.result())
                _write_json(results_path, results)
                say(f"{task}: pre-trained and calibrated{f' (seed {seed})' if cfg.pretrain_per_seed else ''}")
                # the runs of a pre-training start as soon as it is done
                for t, m, s in _runs_from(todo, task, seed, cfg):
                    pending[pool.submit(_run_one, t, out / t, m, s, cfg, False, 1)] = ("run", t, m, s)
                continue
            task, method, seed = what
            try:
                r = fut.result()
            except Exception as err:  # noqa: BLE001 - the other runs go on; this one is named at the end
                failed.append(f"{task} {method} seed {seed}: {type(err).__name__}: {err}")
                say(f"{task} {method} seed {seed} FAILED: {err}")
                bar.update()
                continue
            results[task]["methods"][f"{method}/{seed}"] = r
            _write_json(results_path, results)
            say(run_done(task, method, seed, r))
            bar.update()
        bar.close()
    raise_failed(failed, len(todo))


def run_done(task: str, method: str, seed: int, r: dict[str, Any]) -> str:
    """The progress line of a finished run."""
    return (
        f"{task} {method} seed {seed}: {r['failure_episodes']} failure episodes, "
        f"eval return {_num(r['after']['return'])}, {r['seconds'] / 60:.1f} min"
    )


def raise_failed(failed: list[str], runs: int) -> None:
    """One error naming every run that failed, once the others are done and kept."""
    if failed:
        raise RuntimeError(f"{len(failed)} of {runs} run(s) failed (the others are kept): " + "; ".join(failed))


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)


def report(out: str | Path, campaign: bool = False) -> str:
    """table.md and the plots from everything in OUT/results.json (every task, method and seed there);
    `campaign`: report.md ends with the campaign's criteria, each judged (`campaign_criteria`)."""
    out = Path(out)
    path = out / "results.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no results here (farl bench --out {out} makes them)")
    results = json.loads(path.read_text())
    present = {r["method"] for t, e in results.items() if t != "config" for r in e.get("methods", {}).values()}
    methods = [m for m in METHODS if m in present]
    table = summary_table(results, methods)
    (out / "table.md").write_text(table)
    plot_results(results, methods, out)
    page = results_page(results, methods, out, table, campaign)
    if campaign:
        from farl_bringup.campaign_criteria import criteria_section

        page += "\n" + criteria_section(results)
    (out / "report.md").write_text(page)
    return table


def results_page(results: dict[str, Any], methods: list[str], out: Path, table: str, campaign: bool = False) -> str:
    """The folder's results page (the docs include it): protocol and command from the configs the runs
    recorded (`farl bench --campaign` for the campaign's folder), `table` (summary_table's), the plots."""
    tasks = [t for t in results if t != "config"]
    runs = [r for t in tasks for r in results[t]["methods"].values()]
    # the bench's own settings, from a run that recorded them (results from before FOSP's runs did not)
    cfg = next((r["config"] for r in runs if "pretrain_scale" in r.get("config", {})), {})
    seeds = {m: len({r["seed"] for r in runs if r["method"] == m}) for m in methods}  # per task, not in all
    scales = sorted({r["config"].get("pretrain_scale") for r in runs if r.get("config")} - {None})
    steps = sorted({r["config"].get("steps") for r in runs if r.get("config")} - {None})
    calib = cfg.get("calibration") or {}
    demos = cfg.get("demo_episodes") or (list(BenchConfig().demos_for(tasks[0])) if tasks else ["?", "?", "?"])
    method_list = ",".join(f"{m}:{n}" for m, n in seeds.items())
    per_seed = bool(cfg.get("pretrain_per_seed", False))  # results made before the option shared one
    command = (
        f"farl bench --tasks {','.join(tasks)} --methods {method_list} --steps {steps[-1] if steps else '?'} "
        f"--pretrain-scale {scales[-1] if scales else '?'}{'' if per_seed else ' --shared-pretraining'} --out {out}"
    )
    if campaign:
        command = "farl bench --campaign --jobs 2"

    who = (
        "Per task and seed, a pre-training of its own (demonstrations seeded by the seed"
        if per_seed
        else ("Per task, one pre-training shared by every method and seed (demonstrations of seed 0")
    )
    return "\n".join(
        [
            f"**Protocol.** {who}; budget x{', x'.join(f'{x:g}' for x in scales) or '?'}) on {demos[0]} task, "
            f"{demos[1]} recovery and {demos[2]} failure demonstrations; the shield's eps_safe calibrated on "
            f"held-out demos to at most {calib.get('max_false_alarm', '?')} false alarms (lookahead "
            f"{calib.get('lookahead_steps', '?')} steps); then {', '.join(f'{x:,}' for x in steps) or '?'} online "
            f"steps of each method and seed from that pre-training, its policy evaluated alone on "
            f"{cfg.get('eval_episodes', '?')} episodes before and after. "
            f"Seeds: {', '.join(f'{m} {n}' for m, n in seeds.items())}.{_fosp_protocol(runs)}",
            "",
            "**Reproduce** (resumable; `--report` rebuilds this page, the table and the plots):",
            "",
            "```sh",
            command,
            "```",
            "",
            table.strip(),
            "",
            "![failure episodes per task and method](failure_episodes.png)",
            "",
            "![return, cost per episode where recorded, and cumulative failure episodes over fine-tuning](curves.png)",
            "",
        ]
    )


def _fosp_protocol(runs: list[dict[str, Any]]) -> str:
    fosp = [r["config"] for r in runs if "fosp" in r.get("config", {})]
    if not fosp:
        return ""
    offline = sorted({c.get("offline_steps") for c in fosp} - {None})
    online = sorted({c.get("train_per_episode") for c in fosp} - {None})
    return (
        f" FOSP pre-trains on the same demonstrations for {', '.join(map(str, offline))} gradient steps and "
        f"trains {', '.join(map(str, online))} steps after each online episode (world model, critics, "
        "reachability function and actor, as the FOSP page describes)."
    )


def own_before(entry: dict[str, Any], run: dict[str, Any]) -> float:
    """A run's own pre-trained evaluation return (results made before runs recorded it: the task's one)."""
    return float((run.get("before") or entry.get("before") or {}).get("return", float("nan")))


def _agg(entry: dict[str, Any], method: str, key) -> tuple[float, float]:
    vals = [key(r) for r in entry["methods"].values() if r["method"] == method]
    return (float(np.mean(vals)), float(np.std(vals))) if vals else (float("nan"), float("nan"))


def _result_config(cfg: BenchConfig, shield: ShieldSettings | None, task: str) -> dict[str, Any]:
    """What one result was produced with: the budgets, the task's demonstrations, and the shield exactly
    as it ran."""
    c = {k: v for k, v in asdict(cfg).items() if k not in ("seeds", "method_seeds", "shield")}
    return {**c, "demo_episodes": list(cfg.demos_for(task)), "shield": asdict(shield) if shield is not None else None}


def failure_ratio_interval(
    farl: list[float], base: list[float], draws: int = 10_000, seed: int = 0
) -> tuple[float, float, float]:
    """FARL / Uni-O4 ratio of mean failure episodes, with a 95% bootstrap interval (seeds resampled
    with replacement within each method)."""
    rng = np.random.default_rng(seed)
    f, b = np.asarray(farl, dtype=float), np.asarray(base, dtype=float)
    fm = rng.choice(f, (draws, len(f))).mean(1)
    bm = rng.choice(b, (draws, len(b))).mean(1)
    ok = bm > 0
    ratios = fm[ok] / bm[ok]
    lo, hi = np.percentile(ratios, [2.5, 97.5]) if len(ratios) else (float("nan"), float("nan"))
    return float(f.mean() / b.mean()) if b.mean() > 0 else float("nan"), float(lo), float(hi)


def _fewer_or_more(reduction: float) -> str:
    """A relative change in failure episodes in words: 0.3 -> "30.0% fewer", -0.3 -> "30.0% more"."""
    return f"{100 * abs(reduction):.1f}% {'fewer' if reduction >= 0 else 'more'}"


def summary_table(results: dict[str, Any], methods: list[str]) -> str:
    lines = [
        "| task | method | seeds | failure episodes | train return (last 20%) | eval return before -> after | "
        "eval failure rate after | eval cost J_c after | cost regret rho_c | swaps/episode | steps/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    notes, reductions, configs, collapsed, counted = [], [], set(), [], 0
    for task, entry in results.items():
        if task == "config":
            continue
        for m in methods:
            runs = [r for r in entry["methods"].values() if r["method"] == m]
            if not runs:
                continue
            configs.update(json.dumps(r.get("config", {}).get("steps")) for r in runs)
            # each run against its own pre-training (results made before runs recorded it: the task's one)
            befores = [own_before(entry, r) for r in runs]
            before = float(np.mean(befores))
            for r, b in zip(runs, befores, strict=True):
                counted += 1
                if r["after"]["return"] < COLLAPSE_FRACTION * b:
                    collapsed.append(f"{task} {m} seed {r['seed']} ({_num(b)} -> {_num(r['after']['return'])})")
            f = _agg(entry, m, lambda r: r["failure_episodes"])
            tr = _agg(entry, m, lambda r: r["train_return_last20pct"])
            er = _agg(entry, m, lambda r: r["after"]["return"])
            ef = _agg(entry, m, lambda r: r["after"]["failure_rate"])
            sw = _agg(entry, m, lambda r: r["swaps_per_episode"])
            jc = _agg(entry, m, lambda r: r["after"].get("cost", float("nan")))
            rho = _agg(entry, m, cost_regret_of)
            # fine-tuning speed, where the run recorded its time (its machine is in the notes below)
            sps = _agg(entry, m, lambda r: r["steps"] / r["seconds"] if r.get("seconds") else float("nan"))
            lines.append(
                f"| {task} | {m} | {len(runs)} | {f[0]:.1f} ± {f[1]:.1f} | {_num(tr[0])} ± {_num(tr[1])} | "
                f"{_num(before)} -> {_num(er[0])} ± {_num(er[1])} | {ef[0]:.2f} | {_num(jc[0])} | {rho[0]:.4f} | "
                f"{sw[0]:.2f} | {_num(sps[0])} |"
            )
        farl = [r["failure_episodes"] for r in entry["methods"].values() if r["method"] == "farl"]
        base = [r["failure_episodes"] for r in entry["methods"].values() if r["method"] == "uni_o4"]
        if farl and base and np.mean(base) > 0:
            ratio, lo, hi = failure_ratio_interval(farl, base)
            reductions.append(1 - ratio)
            notes.append(
                f"{task}: FARL has {_fewer_or_more(1 - ratio)} failure episodes than Uni-O4 "
                f"(FARL / Uni-O4 = {ratio:.2f}, 95% bootstrap interval {lo:.2f}-{hi:.2f}; "
                f"{len(farl)} and {len(base)} seeds)."
            )
    if reductions:
        notes.append(
            f"Average over {len(reductions)} task(s): {_fewer_or_more(float(np.mean(reductions)))} failure episodes."
        )
    if counted:
        notes.append(
            f"Collapsed (evaluation return below {COLLAPSE_FRACTION:.0%} of its own pre-trained policy's): "
            f"{len(collapsed)} of {counted} runs{': ' + '; '.join(collapsed) if collapsed else ''}."
        )
    machines = sorted(
        {
            json.dumps(r.get("machine"), sort_keys=True) if r.get("machine") else "not recorded"
            for t, e in results.items()
            if t != "config"
            for r in e.get("methods", {}).values()
        }
    )
    if machines:
        notes.append("Made on: " + "; ".join(machines) + ".")
    if len(configs) > 1:
        notes.append(f"Note: these results come from runs of different lengths (steps {', '.join(sorted(configs))}).")
    return "\n".join(lines) + "\n\n" + "\n\n".join(notes) + "\n"


def _num(x: float) -> str:
    """A return or cost as the table shows it: whole numbers for FailureBench's hundreds, two decimals for
    SafeReach's 0-1 returns and few-step costs."""
    if not np.isfinite(x):
        return "—"
    return f"{x:.0f}" if abs(x) >= 10 else f"{x:.2f}"


def _smoothed(returns: np.ndarray, width: int = 10) -> np.ndarray:
    """The running mean of `width` episodes (as many as there are, at the start)."""
    cum = np.cumsum(returns)
    n = np.minimum(np.arange(1, len(returns) + 1), width)
    return (cum - np.concatenate([np.zeros(width), cum])[: len(returns)]) / n


def _across_seeds(per_seed: list[tuple[np.ndarray, np.ndarray]], points: int = 200):
    """Each seed's (steps, values) on one grid of steps, up to where every seed has data: grid, mean, sd."""
    end = min(steps[-1] for steps, _ in per_seed)
    start = max(steps[0] for steps, _ in per_seed)
    grid = np.linspace(start, end, points) if end > start else np.array([end])
    values = np.stack([np.interp(grid, steps, v) for steps, v in per_seed])
    return grid, values.mean(axis=0), values.std(axis=0)


def plot_results(results: dict[str, Any], methods: list[str], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    tasks = [t for t in results if t != "config"]
    if not tasks:
        return
    colours = dict(
        zip(
            METHODS,
            (
                *("tab:red", "tab:orange", "tab:purple", "tab:brown", "tab:pink", "tab:blue", "tab:green"),
                *("tab:cyan", "tab:olive", "tab:gray", "gold", "navy"),
            ),
            strict=True,
        )
    )
    # Fig. 4 style: failure episodes per task and method.
    fig, ax = plt.subplots(figsize=(2.2 + 1.6 * len(tasks), 3.6))
    width = 0.8 / max(1, len(methods))
    for j, m in enumerate(methods):
        means = [_agg(results[t], m, lambda r: r["failure_episodes"]) for t in tasks]
        ax.bar(
            np.arange(len(tasks)) + j * width,
            [x[0] for x in means],
            width,
            yerr=[x[1] for x in means],
            label=m,
            color=colours[m],
            capsize=3,
        )
    ax.set_xticks(np.arange(len(tasks)) + width * (len(methods) - 1) / 2, tasks, fontsize=8)
    ax.set_ylabel("failure episodes during fine-tuning")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "failure_episodes.png", dpi=110)
    plt.close(fig)

    # Fig. 5 style: return and cumulative failures over fine-tuning steps, mean and band across seeds;
    # where every run of a task records its episodes' cost, FOSP's Fig. 2 cost panel between them.
    def curves(t: str, m: str) -> list[np.ndarray]:
        runs = [np.asarray(r["curve"], dtype=float) for r in results[t]["methods"].values() if r["method"] == m]
        return [c for c in runs if len(c)]

    with_cost = {
        t: all(c.shape[1] > 3 for m in methods for c in curves(t, m)) and any(curves(t, m) for m in methods)
        for t in tasks
    }
    cols = 3 if any(with_cost.values()) else 2
    fig, axes = plt.subplots(len(tasks), cols, figsize=(5 * cols, 3.2 * len(tasks)), squeeze=False)
    for i, t in enumerate(tasks):
        panels = [(axes[i, 0], 1, _smoothed), (axes[i, cols - 1], 2, np.cumsum)]
        if with_cost[t]:
            panels.insert(1, (axes[i, 1], 3, _smoothed))
        elif cols == 3:
            axes[i, 1].set_axis_off()
        for m in methods:
            runs = curves(t, m)
            if not runs:
                continue
            for ax, col, how in panels:
                grid, mean, std = _across_seeds([(c[:, 0], how(c[:, col])) for c in runs])
                ax.plot(grid, mean, color=colours[m], label=f"{m} ({len(runs)} seeds)")
                ax.fill_between(grid, mean - std, mean + std, color=colours[m], alpha=0.2, lw=0)
        axes[i, 0].set_title(f"{t}: return (10-episode mean)", fontsize=9)
        if with_cost[t]:
            axes[i, 1].set_title(f"{t}: cost per episode J_c (10-episode mean)", fontsize=9)
        axes[i, cols - 1].set_title(f"{t}: cumulative failure episodes", fontsize=9)
        axes[i, 0].set_ylabel("mean ± 1 sd over seeds", fontsize=8)
        axes[i, cols - 1].yaxis.set_major_locator(MaxNLocator(integer=True))  # a count
        for ax, _, _ in panels:
            ax.set_xlabel("fine-tuning steps")
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=110)
    plt.close(fig)
