"""FOSP's runs in `farl bench`: pre-trained from the seed's own demonstrations (the same bags FARL's
pre-training uses) and fine-tuned online for the benchmark's step budget, with a result in the same
terms as FARL's (failure episodes, return, the evaluation before and after) plus FOSP's own cost
figures: J_c and the cost regret rho_c. Each ablation that changes the offline stage has its own
pre-training; the one without expansion shares FOSP's.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

FOSP_METHODS: dict[str, dict[str, Any]] = {
    "fosp": {},
    "fosp_no_expansion": {"expansion": False},
    "fosp_no_in_sample": {"in_sample": False},
    "fosp_no_reachability": {"reachability": False},
    "fosp_feasible_value": {"penalty": "feasible_value"},
}
"""FOSP and the four ablations of its Figure 3: without in-sample optimisation (i), without policy
expansion (ii), without the reachability function (iii), with the feasible value instead of the
augmented Lagrangian (iv)."""


def _offline_variant(method: str) -> str:
    changes = {k: v for k, v in FOSP_METHODS[method].items() if k != "expansion"}
    return "fosp_run" if not changes else f"fosp_run_{method.removeprefix('fosp_')}"


def run_fosp(task: str, tdir: Path, method: str, seed: int, cfg: Any, progress: bool, result_extra: dict) -> dict:
    """One (task, FOSP method, seed) run: its pre-training (resumed if finished), fine-tuning, evaluation."""
    from farl_bringup.fosp_pipeline import check_fosp_run, finetune_fosp, pretrain_fosp
    from farl_learning.fosp import FOSPConfig
    from farl_learning.run_manifest import IncompleteRun

    t0 = time.perf_counter()
    pdir = tdir / cfg.pretraining(seed)
    changes = FOSP_METHODS[method]
    run = pdir / _offline_variant(method)
    try:
        meta = check_fosp_run(run)
    except IncompleteRun:
        fcfg = replace(FOSPConfig(), **{k: v for k, v in changes.items() if k != "expansion"})
        meta = pretrain_fosp(task, pdir / "demos", run, fcfg.scaled(cfg.pretrain_scale), cfg.demo_seed(seed), progress)
    train_per_episode = FOSPConfig().scaled(cfg.pretrain_scale).train_per_episode
    doc = finetune_fosp(
        run,
        cfg.steps,
        out=tdir / "finetune" / method / f"seed{seed}",
        seed=seed,
        expansion=changes.get("expansion", True),
        train_per_episode=train_per_episode,
        progress=progress,
        eval_episodes=cfg.eval_episodes,
    )
    eps = doc["episodes"]
    tail = eps[-max(1, len(eps) // 5) :]
    steps = 0
    curve = []
    for e in eps:
        steps += e["steps"]
        curve.append([steps, e["return"], int(e["failure"]), e["cost"]])
    return {
        "method": method,
        "seed": seed,
        "config": {
            "fosp": changes,
            "offline_steps": meta["config"]["offline_steps"],
            "train_per_episode": train_per_episode,
        },
        "pretraining": {"folder": cfg.pretraining(seed), "demo_seed": cfg.demo_seed(seed), "fosp_run": run.name},
        "before": doc["before"],
        "steps": doc["steps"],
        "episodes": len(eps),
        "failure_episodes": int(sum(e["failure"] for e in eps)),
        "train_return_last20pct": float(np.mean([e["return"] for e in tail])) if tail else 0.0,
        "swaps_per_episode": 0.0,
        "offline_picks_per_episode": float(np.mean([e["offline_picks"] for e in eps])) if eps else 0.0,
        "cost_regret": doc["cost_regret"],
        "online_cost_per_episode": [e["cost"] for e in eps],
        "after": doc["after"],
        "curve": curve,
        "seconds": time.perf_counter() - t0,
        **result_extra,
    }


def cost_regret_of(result: dict[str, Any]) -> float:
    """rho_c of any method's result, as recorded; for results made before it was, the curve's failures
    over the steps (FailureBench ends an episode at its one failure step, so these are its costs)."""
    if "cost_regret" in result:
        return float(result["cost_regret"])
    if "curve" not in result or not result.get("steps"):
        return float("nan")
    return float(sum(row[2] for row in result["curve"]) / result["steps"])
