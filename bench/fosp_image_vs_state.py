"""FOSP's offline policy from the state alone and from the state with camera images, on the same SafeReach
demonstrations: per seed, `farl demos --images SIZE` makes the seed's demos (the benchmark's, with the
work-area camera's frames added), then FOSP pre-trains twice at the default offline budget x SCALE and
each offline policy is evaluated alone on fixed seeds. Writes OUT/image_vs_state_s<seed>.json after every
run and OUT/image_vs_state.md from every seed's file there, so one process per seed can share OUT.

    python bench/fosp_image_vs_state.py OUT [SEEDS] [SCALE] [SIZE]
    python bench/fosp_image_vs_state.py bench/results/safe_reach_images 0 0.5 64 &
    python bench/fosp_image_vs_state.py bench/results/safe_reach_images 1 0.5 64
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

from farl_bringup.cli import SAFE_REACH_RECOVERY_SHARE
from farl_bringup.fosp_pipeline import EVAL_EPISODES, pretrain_fosp
from farl_learning.fosp import FOSPConfig
from farl_sim.safe_reach_demos import generate_safe_reach_demos
from farl_sim.safe_reach_tasks import PAPER_MIX

TASK = "safe_reach"


def table(rows: list[dict]) -> str:
    lines = [
        f"FOSP's offline policy on {TASK}, {EVAL_EPISODES} deterministic evaluation episodes per run.",
        "",
        "| seed | input | J_r | J_c | failure episodes | success | offline steps | train s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        e = r["offline_eval"]
        lines.append(
            f"| {r['seed']} | {r['input']} | {e['return']:.2f} | {e['cost']:.2f} | {e['failure_rate']:.0%} | "
            f"{e['success_rate']:.0%} | {r['offline_steps']} | {r['train_s']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    out = Path(sys.argv[1])
    seeds = [int(s) for s in (sys.argv[2] if len(sys.argv) > 2 else "0").split(",")]
    scale = float(sys.argv[3]) if len(sys.argv) > 3 else 0.5
    size = int(sys.argv[4]) if len(sys.argv) > 4 else 64
    torch.set_num_threads(1)
    out.mkdir(parents=True, exist_ok=True)
    counts = {**PAPER_MIX, "recovery": round(SAFE_REACH_RECOVERY_SHARE * sum(PAPER_MIX.values()))}
    for seed in seeds:
        path = out / f"image_vs_state_s{seed}.json"
        rows: list[dict] = json.loads(path.read_text()) if path.exists() else []
        done = {r["input"] for r in rows}
        demos = out / f"demos_s{seed}"
        generate_safe_reach_demos(demos, counts, TASK, seed=seed, image_size=size)
        for image in (None, size):
            name = "state" if image is None else f"state + {size}x{size} image"
            if name in done:
                continue
            cfg = FOSPConfig().scaled(scale)
            cfg.world_model.image_size = image
            t0 = time.perf_counter()
            doc = pretrain_fosp(TASK, demos, out / f"run_s{seed}_{'image' if image else 'state'}", cfg, seed=seed)
            rows.append(
                {
                    "seed": seed,
                    "input": name,
                    "offline_eval": doc["offline_eval"],
                    "offline_steps": cfg.offline_steps,
                    "train_s": time.perf_counter() - t0,
                }
            )
            path.write_text(json.dumps(rows, indent=1))
            every = [r for f in sorted(out.glob("image_vs_state_s*.json")) for r in json.loads(f.read_text())]
            (out / "image_vs_state.md").write_text(table(every))
            print(table(every))


if __name__ == "__main__":
    main()
