"""Shield decision latency and the cost of the shield in online fine-tuning.

    .venv/bin/python bench/bench_shield.py [--run RUN_DIR] [--decisions 2000] [--steps 4000]

Prints the median and p99 latency of one shield decision (one state, world-model critic, H from
the config, one CPU thread); the cost of one C_H against one Q_risk forward, fused inference path and
module path (each alternating with a Q_risk forward, so a busy machine slows both alike); and env
steps per second of fine-tuning with and without the shield. Targets: p99 under 2 ms and shield overhead under 2x
(issue 3); C_H at most 3x a Q_risk forward (issue 9). Also the MPPI ablation's cost of one
replacement action, on the CPU and, where torch sees one, the GPU. Without --run, a run is pre-trained
on a few demos first: latency and throughput depend on the network sizes, not on how well trained
they are.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
warnings.filterwarnings("ignore")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default=None)
    ap.add_argument("--decisions", type=int, default=2000)
    ap.add_argument("--steps", type=int, default=4000)
    args = ap.parse_args()
    import numpy as np
    import torch

    torch.set_num_threads(1)
    from farl_bringup.pipeline import PretrainConfig, finetune, pretrain
    from farl_common.shield_settings import CRITICS, ShieldSettings
    from farl_learning.ppo import PPOConfig
    from farl_safety_shield.loader import load_shield
    from farl_sim import make_env
    from farl_sim.demos import generate_demos

    tmp = tempfile.TemporaryDirectory()
    run = Path(args.run) if args.run else Path(tmp.name) / "run"
    if not args.run:
        for kind in ("task", "recovery", "failure"):
            generate_demos("fragile_push_wall", kind, 3, Path(tmp.name) / "demos", progress=False)
        pretrain("fragile_push_wall", Path(tmp.name) / "demos", run, PretrainConfig().scaled(0.01), progress=False)

    env = make_env("fragile_push_wall")
    states = []
    obs, _ = env.reset(seed=0)
    for _ in range(200):
        states.append(obs)
        obs, *_ = env.step(env.action_space.sample())
    for critic in CRITICS:
        shield = load_shield(run, ShieldSettings(critic=critic))
        lat = []
        for i in range(args.decisions):
            s = states[i % len(states)][None]
            a = np.zeros((1, 4))
            t0 = time.perf_counter_ns()
            shield.filter(s, a)
            lat.append((time.perf_counter_ns() - t0) / 1e6)
        lat = np.asarray(lat[100:])  # warm-up excluded
        print(
            f"shield decision [{critic:12s}]: median {np.median(lat):.3f} ms, p99 {np.percentile(lat, 99):.3f} ms "
            f"(one state, one thread, {len(lat)} decisions)"
        )
    from farl_safety_shield.loader import load_critic

    wm_critic, q_critic = load_critic(run, ShieldSettings()), load_critic(run, ShieldSettings(critic="q_risk"))
    calls = {
        "C_H fused": lambda s, a: wm_critic.risk(s, a),
        "C_H modules": lambda s, a: wm_critic.risk_unfused(s, a),
        "Q_risk forward": lambda s, a: q_critic.risk(s, a),
    }
    if wm_critic.fused is not None:  # networks the fused path does not know run the module path only
        s0 = torch.as_tensor(states[0][None], dtype=torch.float32)
        products, n_products = matrix_products_of(wm_critic.fused, s0, torch.zeros(1, 4))
        calls["C_H's matrix products"] = lambda s, a: products()
    # Each C_H variant alternates with a Q_risk forward, so that a busy machine slows both alike; the
    # variants are timed apart, since the module path reads another copy of the same networks (about
    # 2 MB) and would evict the fused path's weights from this CPU's 2 MB L2 between calls, which no
    # deployment does.
    q_call = calls.pop("Q_risk forward")
    med: dict[str, tuple[float, float]] = {}
    for name, call in calls.items():
        t_c, t_q = [], []
        for i in range(args.decisions):
            s = torch.as_tensor(states[i % len(states)][None], dtype=torch.float32)
            a = torch.zeros(1, 4)
            for call_, into in ((call, t_c), (q_call, t_q)):
                t0 = time.perf_counter_ns()
                call_(s, a)
                into.append((time.perf_counter_ns() - t0) / 1e3)
        med[name] = (float(np.median(t_c[100:])), float(np.median(t_q[100:])))
    graph = "yes" if wm_critic.fused is not None and wm_critic.fused.traced is not None else "no"
    print(f"one C_H (H={wm_critic.horizon}) against one Q_risk forward, each alternating with it (medians):")
    for name, (c, q) in med.items():
        what = f"{name} ({n_products})" if name == "C_H's matrix products" else name
        print(f"  {what:28s} {c:6.0f} us, Q_risk {q:4.0f} us: {c / q:.1f}x")
    print(
        f"  (fused: a recorded graph: {graph}; the matrix products: the same calls on the same tensors as the "
        "fused C_H, replayed alone as a recorded graph)"
    )
    from farl_learning.checkpoint import load
    from farl_learning.world_model import world_model_from_checkpoint
    from farl_safety_shield.recovery import MPPIRecovery

    for device in ["cpu"] + (["cuda"] if torch.cuda.is_available() else []):
        wm = world_model_from_checkpoint(load(run / "world_model.pt", "world_model"))
        mppi = MPPIRecovery(wm, 0.01, wm_critic.horizon, wm_critic.gamma, device=device)
        took = []
        for i in range(60):
            t0 = time.perf_counter_ns()
            mppi.actions(torch.as_tensor(states[i % len(states)][None], dtype=torch.float32))
            took.append((time.perf_counter_ns() - t0) / 1e6)
        print(
            f"MPPI recovery (farl_mppi) on {device}: median {np.median(took[10:]):.1f} ms per decision "
            f"({mppi.samples} samples x {mppi.iterations} iterations x H + 1 steps)"
        )
    rates = {}
    for shield_name in ("none", "world_model"):
        ppo = PPOConfig(num_envs=4, steps_per_env=200)
        t0 = time.perf_counter()
        tr = finetune(
            run,
            args.steps,
            shield=ShieldSettings() if shield_name == "world_model" else None,
            out=Path(tmp.name) / f"ft_{shield_name}",
            ppo=ppo,
            progress=False,
            resume=False,
        )
        rates[shield_name] = tr.steps / (time.perf_counter() - t0)
        tr.close()
        print(f"fine-tuning [{shield_name:11s}]: {rates[shield_name]:.0f} env steps/s (4 envs, PPO updates included)")
    print(f"shield overhead: {rates['none'] / rates['world_model']:.2f}x")


def matrix_products_of(fused, obs, action):
    """The matrix products one fused C_H (a `FusedRollout`) makes, recorded at aten level while it runs
    eagerly, replayed alone on the same tensors as a recorded graph: the part of C_H's cost no fusing
    of the other calls removes. Returns (replay, how many products)."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    aten = torch.ops.aten
    wanted = {aten.mm, aten.addmm, aten.bmm, aten.baddbmm}
    recorded = []

    class Record(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func.overloadpacket in wanted:
                recorded.append((func, args, kwargs or {}))
            return func(*args, **(kwargs or {}))

    with torch.inference_mode(), Record():
        fused._rollout(obs, action, *fused.policy_params)

    # the tensors go in as the graph's inputs, so that no pass can fold the products into constants
    tensors = [a for _, args, _ in recorded for a in args if isinstance(a, torch.Tensor)]

    def replay(*inputs):
        it = iter(inputs)
        return tuple(
            func(*(next(it) if isinstance(a, torch.Tensor) else a for a in args), **kw) for func, args, kw in recorded
        )

    with warnings.catch_warnings():
        graph = torch.jit.trace(replay, tuple(tensors), check_trace=False)
    return (lambda: graph(*tensors)), len(recorded)


if __name__ == "__main__":
    main()
