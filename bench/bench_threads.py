"""torch threads: one world-model training step and one PPO update with 1 thread and with one per core,
on a quiet machine and on a busy one (a spinning process per core, as beside another job).

    .venv/bin/python bench/bench_threads.py [--steps 40]

Prints milliseconds per step (median); farl's default is one thread (farl_common/torch_threads.py).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import time
import warnings

warnings.filterwarnings("ignore")


def _spin(stop) -> None:
    while not stop.is_set():
        pass


def _measure(threads: int, steps: int) -> tuple[float, float]:
    import torch

    from farl_learning.data import Transitions
    from farl_learning.nets import GaussianPolicy, ValueNet
    from farl_learning.ppo import PPOConfig, PPOLearner
    from farl_learning.world_model import WorldModel, WorldModelConfig

    torch.set_num_threads(threads)
    gen = torch.Generator().manual_seed(0)
    n, obs_dim, act_dim = 20_000, 39, 4
    ep = torch.arange(n) // 200
    data = Transitions(
        obs=torch.randn(n, obs_dim, generator=gen),
        action=torch.rand(n, act_dim, generator=gen) * 2 - 1,
        reward=torch.rand(n, generator=gen),
        cost=(torch.rand(n, generator=gen) < 0.01).float(),
        done=(torch.arange(n) % 200 == 199),
        next_obs=torch.randn(n, obs_dim, generator=gen),
        next_action=torch.rand(n, act_dim, generator=gen) * 2 - 1,
        has_next_action=torch.ones(n, dtype=torch.bool),
        episode=ep,
    )
    cfg = WorldModelConfig()
    wm = WorldModel(obs_dim, act_dim, cfg)
    target = WorldModel(obs_dim, act_dim, cfg).requires_grad_(False)
    opt = torch.optim.Adam(wm.parameters(), lr=cfg.lr)
    wm_ms = []
    for _ in range(steps):
        t0 = time.perf_counter()
        loss, _ = wm.loss(data.windows(cfg.batch_size, cfg.horizon, gen, cfg.failure_fraction), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        wm_ms.append((time.perf_counter() - t0) * 1e3)
    learner = PPOLearner(GaussianPolicy(obs_dim, act_dim), ValueNet(obs_dim), PPOConfig(epochs=4))
    ppo_ms = []
    for _ in range(max(3, steps // 10)):
        traj = [
            learner.on_policy_trajectory(
                data.obs[k * 200 : (k + 1) * 200].numpy(),
                data.action[k * 200 : (k + 1) * 200].numpy(),
                data.reward[k * 200 : (k + 1) * 200].numpy(),
                data.cost[k * 200 : (k + 1) * 200].numpy(),
                True,
                data.next_obs[(k + 1) * 200 - 1].numpy(),
            )
            for k in range(4)
        ]
        t0 = time.perf_counter()
        learner.update(traj, 0.0)
        ppo_ms.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(wm_ms[3:]), statistics.median(ppo_ms)


def _child(threads: int, steps: int, q) -> None:
    q.put(_measure(threads, steps))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=40)
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    ctx = mp.get_context("spawn")  # a fresh torch per measurement: the thread pool is fixed once used
    print(f"{cores} cores; world-model step = batch 256, H 5 (eq. 4-9); PPO update = 800 steps, 4 epochs")
    for busy in (False, True):
        stop = ctx.Event()
        spinners = [ctx.Process(target=_spin, args=(stop,)) for _ in range(cores if busy else 0)]
        for s in spinners:
            s.start()
        for threads in sorted({1, cores}):
            q = ctx.Queue()
            p = ctx.Process(target=_child, args=(threads, args.steps, q))
            p.start()
            wm_ms, ppo_ms = q.get()
            p.join()
            print(
                f"{'busy ' if busy else 'quiet'} machine, {threads} thread(s): world-model step {wm_ms:8.1f} ms, "
                f"PPO update {ppo_ms:8.1f} ms"
            )
        stop.set()
        for s in spinners:
            s.join()


if __name__ == "__main__":
    main()
