"""Other ways to estimate the failure risk, each shielding the pre-trained policy: a diagnosis, not a benchmark.

    .venv/bin/python bench/detector_variants.py --run RUN --held HELDOUT --demos DEMOS [--episodes 40]
        [--variants c_h,c_h_sampled,...] [--samples 16]

Asks whether the world-model critic's shield lets through more failures than Recovery RL's Q_risk
because of the data each learns from or because of how it estimates (README, "Why the ablations
shield better"). Each variant is calibrated as `farl calibrate-shield` calibrates (held-out demos,
the 5 steps before each failure, at most 5% false alarms), then shields the same episodes of the
pre-trained policy, sampled as fine-tuning samples, as bench/shield_at_start.py does:

- `none`: no shield, the episodes the others change;
- `c_h`: eq. 10 as the shield computes it (the policy's mean action after the proposed one);
- `c_h_sampled`: eq. 10's E_pi as a Monte-Carlo mean over `--samples` rollouts whose actions are
  drawn from the policy (clipped to the action box, as executed);
- `c_h_sampled_max`: the largest of those sums, a pessimistic reading;
- `q_risk`: the run's Recovery RL critic (trained on every kind of demo and the policy failures);
- `q_risk_wm_data`: the same critic trained again on the world model's data only (task and failure
  demos, the policy failures), so that both critics learn from the same transitions;
- `c_h_all_kinds`: a world model trained again on every kind of demo (recovery included), as Q_risk is.

DEMOS is the run's demo folder (the last two variants train on it, with the run's own policy
failures, as `farl pretrain --only-world-model` gathers them). RUN's own checkpoints are not changed.
"""

from __future__ import annotations

import argparse
import os
import warnings
from dataclasses import asdict
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
warnings.filterwarnings("ignore")

VARIANTS = ("none", "c_h", "c_h_sampled", "c_h_sampled_max", "q_risk", "q_risk_wm_data", "c_h_all_kinds")


class SampledRisk:
    """C_H of eq. 10 with E_pi as a mean (or max) over rollouts that draw the policy's actions."""

    name = "world_model"

    def __init__(self, base, samples: int, reduce: str, seed: int = 0) -> None:
        import torch

        self.base, self.samples, self.reduce = base, samples, reduce
        self.gen = torch.Generator().manual_seed(seed)

    def risk(self, obs, action):
        import torch

        wm, policy, n = self.base.wm, self.base.policy, self.samples
        with torch.inference_mode():
            z = wm.encode(obs).repeat_interleave(n, 0)
            a = action.repeat_interleave(n, 0)
            total = torch.zeros(z.shape[0])
            for i in range(self.base.horizon + 1):
                total += self.base.gamma**i * wm.constraint_prob(z, a)
                if i == self.base.horizon:
                    break
                z = wm.next(z, a)
                a = policy.act(wm.decode(z), generator=self.gen).clamp(-1.0, 1.0)
            per_draw = total.view(obs.shape[0], n)
            return per_draw.mean(1) if self.reduce == "mean" else per_draw.max(1).values


def build(variant: str, run: Path, demos: Path, policy, samples: int):
    """The critic of `variant` for this run (training one where the variant asks for it)."""
    from dataclasses import replace

    from farl_bringup.pipeline import run_config, run_demos, with_policy_failures
    from farl_common.shield_settings import ShieldSettings
    from farl_learning.data import Transitions
    from farl_learning.run_manifest import check_run
    from farl_learning.world_model import train_world_model
    from farl_safety_shield.critics import QRiskCritic, WorldModelRisk
    from farl_safety_shield.loader import load_critic

    if variant in ("c_h", "q_risk"):
        return load_critic(run, ShieldSettings(critic="world_model" if variant == "c_h" else "q_risk"), policy)
    if variant.startswith("c_h_sampled"):
        base = load_critic(run, ShieldSettings(critic="world_model"), policy)
        return SampledRisk(base, samples, "max" if variant.endswith("max") else "mean")
    manifest = check_run(run)
    cfg, seed = run_config(manifest), int(manifest.get("seed", 0))
    ds = with_policy_failures(run_demos(run, manifest, demos), run, manifest["task"], cfg, seed, progress=False)
    if variant == "q_risk_wm_data":
        data = Transitions.from_dataset(ds.select(["task", "failure"]))
        return QRiskCritic.train(data, policy, replace(cfg.risk_critics, seed=seed), progress=False)
    wm, _ = train_world_model(Transitions.from_dataset(ds), replace(cfg.world_model, seed=seed), progress=False)
    settings = ShieldSettings(critic="world_model")
    return WorldModelRisk(wm, policy, settings.horizon_steps, settings.gamma_risk)


def main(argv: list[str] | None = None) -> dict[str, dict]:
    """Prints a line per variant; returns each one's calibration and shielded episodes' summary."""
    import sys

    import torch

    sys.path.insert(0, str(Path(__file__).parent))
    from shield_at_start import run_episodes, summarise

    from farl_common.bags import load_dataset
    from farl_common.shield_settings import CalibrationSettings
    from farl_learning.checkpoint import load
    from farl_learning.uni_o4 import policy_from_checkpoint
    from farl_safety_shield.calibrate import calibrate
    from farl_safety_shield.recovery import PolicyRecovery
    from farl_safety_shield.shield import Shield

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, required=True, help="a pre-trained run (farl pretrain)")
    ap.add_argument("--held", type=Path, required=True, help="held-out demos, as for farl calibrate-shield")
    ap.add_argument("--demos", type=Path, required=True, help="the demos the run was pre-trained on")
    ap.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of {', '.join(VARIANTS)}")
    ap.add_argument("--samples", type=int, default=16, help="rollouts per decision of the sampled variants")
    ap.add_argument("--episodes", type=int, default=40)
    ap.add_argument("--seed", type=int, default=20_000, help="first episode seed (held apart from training's)")
    args = ap.parse_args(argv)
    variants = args.variants.split(",")
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        ap.error(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}")
    torch.set_num_threads(1)
    cal_settings = CalibrationSettings()
    checkpoint = load(args.run / "task_policy.pt", "task_policy")
    policy, task = policy_from_checkpoint(checkpoint), checkpoint["task"]
    recovery = PolicyRecovery(policy_from_checkpoint(load(args.run / "recovery_policy.pt", "recovery_policy")))
    held = load_dataset(args.held)
    print(f"{task}: {args.episodes} episodes of the pre-trained policy, sampled as in fine-tuning, seeds {args.seed}+")
    out = {}
    for variant in variants:
        if variant == "none":
            out[variant] = {"episodes": run_episodes(task, policy, None, args.episodes, args.seed)}
            print(summarise(variant, out[variant]["episodes"]), flush=True)
            continue
        critic = build(variant, args.run, args.demos, policy, args.samples)
        cal = calibrate(critic, held, cal_settings.lookahead_steps, cal_settings.max_false_alarm)
        episodes = run_episodes(task, policy, Shield(critic, recovery, cal.eps_safe), args.episodes, args.seed)
        print(
            f"{summarise(variant, episodes)}  (eps_safe {cal.eps_safe:.4f}: held-out false alarms "
            f"{cal.false_alarm:.1%}, missed {cal.missed:.1%})",
            flush=True,
        )
        out[variant] = {"calibration": asdict(cal) | {"table": None}, "episodes": episodes}
    return out


if __name__ == "__main__":
    main()
