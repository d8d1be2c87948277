"""What FOSP's image input costs on the CPU: gradient steps per second of the default agent reading the
state alone and the state with SIZE x SIZE camera images (Table 4's B x T batches through the CNN
encoder and decoder), and milliseconds per SafeReach frame rendered offscreen at that size. The replay
holds random states and flat-coloured images: the cost of a step does not depend on their values.

    python bench/fosp_image_speed.py [SIZE] [STEPS] [THREADS]
    python bench/fosp_image_speed.py 64 20 1
"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch

from farl_learning.fosp import FOSPAgent, FOSPConfig
from farl_learning.fosp_data import SequenceBuffer
from farl_learning.rssm import RSSMConfig

OBS, ACT, EPISODES, LENGTH = 39, 4, 8, 80


def replay(image_size: int | None) -> SequenceBuffer:
    rng = np.random.default_rng(0)
    buf = SequenceBuffer(OBS, ACT, image_size=image_size)
    for _ in range(EPISODES):
        images = None
        if image_size is not None:
            colours = rng.integers(0, 256, (LENGTH + 1, 1, 1, 3), dtype=np.uint8)
            images = np.broadcast_to(colours, (LENGTH + 1, image_size, image_size, 3)).copy()
        obs = rng.normal(size=(LENGTH + 1, OBS))
        buf.add_episode(obs, rng.uniform(-1, 1, (LENGTH, ACT)), np.zeros(LENGTH), np.zeros(LENGTH), False, images)
    return buf


def steps_per_s(image_size: int | None, steps: int) -> float:
    agent = FOSPAgent(OBS, ACT, FOSPConfig(world_model=RSSMConfig(image_size=image_size)))
    buf = replay(image_size)
    agent.train_step(buf)  # first-step allocations out of the timing
    t0 = time.perf_counter()
    for _ in range(steps):
        agent.train_step(buf)
    return steps / (time.perf_counter() - t0)


def step_ms(size: int, frames: int = 40) -> tuple[float, float, float]:
    """Milliseconds per SafeReach step: without a render, with the learning camera's plain render at `size`
    (what FOSP from images uses), and with the scene's full render (shadows, multisampling)."""
    from farl_sim.safe_reach import IMAGE_CAMERA, SafeReachEnv

    times = []
    for plain in (True, False):
        env = SafeReachEnv(
            "safe_reach", "rgb_array", camera_name=IMAGE_CAMERA, image_width=size, image_height=size, plain_render=plain
        )
        env.reset(seed=0)
        env.render()
        for render in (False, True) if plain else (True,):
            t0 = time.perf_counter()
            for _ in range(frames):
                env.step(np.zeros(ACT))
                if render:
                    env.render()
            times.append((time.perf_counter() - t0) / frames * 1000)
        env.close()
    return times[0], times[1], times[2]


def main() -> None:
    size = int(sys.argv[1]) if len(sys.argv) > 1 else 64
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    torch.set_num_threads(int(sys.argv[3]) if len(sys.argv) > 3 else 1)
    state = steps_per_s(None, steps)
    image = steps_per_s(size, steps)
    print(f"FOSP gradient steps/s ({torch.get_num_threads()} torch thread(s), B x T = 16 x 16, {steps} steps):")
    print("| input | steps/s |")
    print("|---|---|")
    print(f"| state | {state:.2f} |")
    print(f"| state + {size}x{size} image | {image:.2f} ({state / image:.1f}x slower) |")
    bare, plain, full = step_ms(size)
    print(
        f"SafeReach step: {bare:.1f} ms; with the {size}x{size} learning camera's render: {plain:.1f} ms "
        f"(with shadows and multisampling: {full:.1f} ms)"
    )


if __name__ == "__main__":
    main()
