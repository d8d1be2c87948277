"""Two changes to FARL tried on one task against FARL and Uni-O4, same pre-training, same seeds.

    .venv/bin/python bench/shield_variants.py --run RUN --held HELDOUT --out DIR [--steps 100000] [--seeds 3]
        [--variants farl,farl_rejected,...] [--eps-safe EPS]

Variants (issue 9, Bounded Soccer; README, "Three more tasks"):
- `farl`: the default (H and lookahead from RUN/shield.json, swapped steps out of PPO's policy term);
- `farl_swaps_in_pi`: PPO's policy term also learns from the steps the shield swapped
  (`PPOConfig.recovery_in_policy_loss`);
- `farl_h10`: a longer lead, H = 10 with eps_safe calibrated on held-out failures labelled 10 steps
  ahead (a copy of RUN, recalibrated; RUN itself is not touched);
- `farl_rejected`: the draws the shield rejected enter PPO's policy term with a normalised advantage
  of -1 (`PPOConfig.rejected_advantage`), so the task policy learns to propose less of what the shield
  refuses;
- `farl_anchor`: PPO held near the pre-trained policy on every state of the batch, swapped ones
  included (`PPOConfig.anchor_coef` = 0.1; README, Bounded Push: a shield that swaps on most steps);
- `uni_o4`: no shield.

Each run's summary lands in DIR/NAME.seedN.json when it finishes (a re-run skips those), and a
table of means is printed at the end. One thread per run, one run at a time.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from pathlib import Path

import numpy as np
import torch  # noqa: F401 - use_threads sets the threads of a torch already imported


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True, help="a complete pre-training (farl pretrain / farl bench)")
    ap.add_argument("--held", required=True, help="its held-out demos (calibration)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=100_000)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--variants", default="farl,farl_swaps_in_pi,farl_h10,uni_o4", help="comma-separated")
    ap.add_argument(
        "--eps-safe",
        type=float,
        default=None,
        help="every shielded variant at this eps_safe instead of its calibrated one (a stricter shield than "
        "calibration chose, to see what learning makes of a shield that swaps on most steps)",
    )
    args = ap.parse_args()
    from farl_common.torch_threads import use_threads

    use_threads(1)
    from farl_bringup.bench import finetune_summary
    from farl_bringup.pipeline import calibrate_shield, check_run, finetune
    from farl_common.shield_settings import CalibrationSettings, ShieldSettings
    from farl_learning.ppo import PPOConfig

    run, out = Path(args.run), Path(args.out)
    task = check_run(run)["task"]
    out.mkdir(parents=True, exist_ok=True)
    wanted = args.variants.split(",")
    long_lead = out / "run_h10"
    if "farl_h10" in wanted and not long_lead.exists():
        shutil.copytree(run, long_lead)
        calibrate_shield(
            long_lead,
            Path(args.held),
            ShieldSettings(critic="world_model", horizon_steps=10),
            CalibrationSettings(lookahead_steps=10),
        )
    variants = {
        "farl": (run, True, PPOConfig()),
        "farl_swaps_in_pi": (run, True, PPOConfig(recovery_in_policy_loss=True)),
        "farl_h10": (long_lead, True, PPOConfig()),
        "farl_rejected": (run, True, PPOConfig(rejected_advantage=-1.0)),
        "farl_anchor": (run, True, PPOConfig(anchor_coef=0.1)),
        "uni_o4": (run, False, PPOConfig()),
    }
    unknown = set(wanted) - set(variants)
    if unknown:
        raise SystemExit(f"unknown variant(s) {sorted(unknown)}; choose from {sorted(variants)}")
    variants = {k: v for k, v in variants.items() if k in wanted}
    for seed in range(args.seeds):
        for name, (source, shielded, ppo) in variants.items():
            path = out / f"{name}.seed{seed}.json"
            if path.exists():
                continue
            t0 = time.time()
            shield = None
            if shielded:
                shield = ShieldSettings(critic="world_model").calibrated(source).with_eps(args.eps_safe)
            tr = finetune(source, args.steps, shield=shield, out=out / "ft" / name / f"seed{seed}", seed=seed, ppo=ppo)
            result = {**finetune_summary(task, tr, 30), "minutes": (time.time() - t0) / 60}
            tr.close()
            path.write_text(json.dumps(result, indent=1))
    print("| variant | failure episodes | eval return after | train return (last 20%) | swaps/episode |")
    print("|---|---|---|---|---|")
    for name in variants:
        rs = [json.loads(p.read_text()) for p in sorted(out.glob(f"{name}.seed*.json"))]
        if len(rs) < 2:
            continue
        f = [r["failure_episodes"] for r in rs]
        ev = [r["after"]["return"] for r in rs]
        print(
            f"| {name} ({len(rs)} seeds) "
            f"| {statistics.mean(f):.1f} ± {statistics.stdev(f):.1f} ({', '.join(map(str, f))}) "
            f"| {statistics.mean(ev):.0f} ± {statistics.stdev(ev):.0f} "
            f"| {np.mean([r['train_return_last20pct'] for r in rs]):.0f} "
            f"| {np.mean([r['swaps_per_episode'] for r in rs]):.1f} |"
        )


if __name__ == "__main__":
    main()
