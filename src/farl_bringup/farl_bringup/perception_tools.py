"""`farl perception view` and `farl perception calibrate`: look at what perception sees; fit the camera pose."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml
from tqdm import tqdm


def view(task: str, frames: int, out: Path, source: str = "mujoco", config: str | None = None, seed: int = 0) -> dict:
    """Annotated frames as PNGs in `out`; for the sim camera also the error against the true positions."""
    import cv2

    from farl_bringup.graph_spec import perception_params
    from farl_common.config import load_config, task_config
    from farl_perception.perception_node import settings_from_params
    from farl_perception.pipeline import Perception, annotate

    cfg = load_config(config) if config else task_config(task)
    cfg.perception.source = source  # type: ignore[assignment]
    params = perception_params(cfg)
    out.mkdir(parents=True, exist_ok=True)
    errors: dict[str, list[float]] = {n: [] for n in params.object_names}
    missed = dict.fromkeys(params.object_names, 0)
    env = None
    if source == "mujoco":
        from farl_perception.mujoco_source import MujocoCameraSource
        from farl_sim.experts import task_expert
        from farl_sim.failure_env import FailureBenchEnv

        env = FailureBenchEnv(cfg.task)
        obs, _ = env.reset(seed=seed)
        expert = task_expert(cfg.task)
        src = MujocoCameraSource(env, params.width_px, params.height_px)
        T = src.T_base_camera
    else:
        from farl_perception.calibration import load_calibration
        from farl_perception.realsense_source import RealSenseSource

        T = load_calibration(params.calibration)
        src = RealSenseSource(params.width_px, params.height_px, params.fps_hz, params.frame_timeout_s)
    per = Perception(settings_from_params(params, T))
    for w in per.warnings:
        print(f"note: {w}")
    try:
        for k in tqdm(range(frames), desc=f"perception view ({source})", unit="frame"):
            frame = src.read(k * 200_000_000 if env is not None else None)  # the sim steps at 5 Hz
            res = per.process(frame)
            for e in res.estimates:
                if e.confidence == 0:
                    missed[e.name] += 1
                elif e.name in frame.truth:
                    errors[e.name].append(float(np.linalg.norm(e.position_m - frame.truth[e.name])))
            cv2.imwrite(str(out / f"frame_{k:05d}.png"), annotate(frame, res)[..., ::-1])
            if env is not None:
                obs, _, term, trunc, _ = env.step(expert(obs))
                if term or trunc:
                    obs, _ = env.reset(seed=seed + k + 1)
    finally:
        src.close()
        if env is not None:
            env.close()
    summary = {}
    for name in params.object_names:
        e = np.array(errors[name]) * 100
        line = f"  {name}: seen in {frames - missed[name]} of {frames} frames"
        if len(e):
            line += f", error vs simulator median {np.median(e):.2f} cm, p95 {np.percentile(e, 95):.2f} cm"
        print(line)
        summary[name] = {"missed": missed[name], "errors_cm": e.tolist()}
    print(f"annotated frames: {out}/frame_*.png")
    return summary


def calibrate_from_points(points: Path, out: Path) -> float:
    """T_base_camera from matched points: `camera:` (positions perception measured, camera frame) and
    `base:` (the same points touched with the hand, base frame), as lists of [x, y, z] in metres."""
    from farl_perception.calibration import CalibrationError, fit_rigid, save_calibration

    try:
        data = yaml.safe_load(Path(points).read_text())
        cam, base = np.array(data["camera"], dtype=float), np.array(data["base"], dtype=float)
    except FileNotFoundError:
        raise CalibrationError(f"{points}: no such points file") from None
    except (yaml.YAMLError, KeyError, TypeError, ValueError) as err:
        raise CalibrationError(
            f"{points}: needs `camera:` and `base:` lists of [x, y, z] ({type(err).__name__})"
        ) from None
    T, residual = fit_rigid(cam, base)
    save_calibration(out, T, residual, f"{len(cam)} touched points from {points}")
    per_point = np.linalg.norm(cam @ T[:3, :3].T + T[:3, 3] - base, axis=1)
    print(
        f"calibration from {len(cam)} points: residual {residual * 1000:.1f} mm RMS, "
        f"worst {per_point.max() * 1000:.1f} mm"
    )
    print(f"written: {out}")
    return residual
