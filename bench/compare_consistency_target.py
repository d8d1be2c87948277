"""The world model's consistency target (eq. 7): online encoder (TD-MPC2, the paper) vs a Polyak copy.

    .venv/bin/python bench/compare_consistency_target.py --run RUN [--scale 0.25] [--seeds 0 1]

Trains the world model of a pre-trained run twice per seed from the same data (the run's demos and
its policy failures), once with each consistency target, and calibrates C_H on the held-out demos
beside the run (RUN/../heldout, as the main job makes them). Prints the world model's final losses
and the calibration (eps_safe, false alarms, missed failures) for each: the shield only needs C_H
to separate steps before failures from safe steps.
"""

from __future__ import annotations

import argparse
import json
import warnings
from dataclasses import replace
from pathlib import Path

warnings.filterwarnings("ignore")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True, help="a pre-trained run (farl pretrain --out, or the main job's)")
    ap.add_argument("--scale", type=float, default=0.25, help="world-model step budget, as farl pretrain --scale")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    args = ap.parse_args()
    import torch

    from farl_bringup.pipeline import PretrainConfig
    from farl_common.bags import Dataset, load_dataset
    from farl_common.shield_settings import CalibrationSettings, ShieldSettings
    from farl_learning.checkpoint import load
    from farl_learning.data import Transitions
    from farl_learning.uni_o4 import policy_from_checkpoint
    from farl_learning.world_model import train_world_model
    from farl_safety_shield.calibrate import calibrate
    from farl_safety_shield.critics import WorldModelRisk

    torch.set_num_threads(1)
    run = Path(args.run)
    manifest = json.loads((run / "manifest.json").read_text())
    ds = load_dataset(manifest["demos"])  # relative to where the run was made: run this from there
    if (run / "policy_failures").is_dir():
        extra = load_dataset(run / "policy_failures")
        ds = Dataset.from_episodes(ds.episodes + extra.episodes)
    data = Transitions.from_dataset(ds.select(["task", "failure"]))
    held = load_dataset(run.parent / "heldout")
    policy = policy_from_checkpoint(load(run / "task_policy.pt", "task_policy"))
    shield, calib = ShieldSettings(), CalibrationSettings()
    base = PretrainConfig().scaled(args.scale).world_model
    print(
        f"{len(data)} transitions; world model {base.steps} steps; calibration on {len(held.episodes)} held-out demos"
    )
    for target in ("online", "polyak"):
        for seed in args.seeds:
            cfg = replace(base, consistency_target=target, seed=seed)
            torch.manual_seed(seed)
            wm, hist = train_world_model(data, cfg, progress=False)
            critic = WorldModelRisk(wm, policy, shield.horizon_steps, shield.gamma_risk)
            c = calibrate(critic, held, calib.lookahead_steps, calib.max_false_alarm)
            last = hist[-1]
            print(
                f"{target:6s} seed {seed}: loss {last['loss']:.3f} (consistency {last['consistency']:.4f}, "
                f"constraint {last['constraint']:.4f}); eps_safe {c.eps_safe:.3f}, false alarms "
                f"{c.false_alarm:.1%}, missed failures {c.missed:.1%}"
            )


if __name__ == "__main__":
    main()
