"""`farl perception ...`: look at what perception sees, fit the camera pose, train the detector.

view: annotated frames from the sim camera, a RealSense or recorded bags. calibrate: the camera
pose from touched points or from a samples folder of board views. capture-board: take those
samples with the real arm and camera. board: the board to print. train-detector: YOLOv8n on
frames from bags, labelled by the colour filter.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml
from tqdm import tqdm


def view(
    task: str,
    frames: int,
    out: Path,
    source: str = "mujoco",
    config: str | None = None,
    seed: int = 0,
    bags: str | None = None,
) -> dict:
    """Annotated frames as PNGs in `out`; for the sim camera also the error against the true positions."""
    import cv2

    from farl_bringup.graph_spec import perception_params
    from farl_common.config import load_config, task_config
    from farl_perception.frames import StaleFrame
    from farl_perception.perception_node import settings_from_params
    from farl_perception.pipeline import Perception, annotate

    cfg = load_config(config) if config else task_config(task)
    cfg.perception.source = "mujoco" if source == "bag" and cfg.robot.backend == "sim" else source  # type: ignore[assignment]
    params = perception_params(cfg)
    out.mkdir(parents=True, exist_ok=True)
    errors: dict[str, list[float]] = {n: [] for n in params.object_names}
    missed = dict.fromkeys(params.object_names, 0)
    env = None
    if source == "mujoco":
        from farl_perception.mujoco_source import MujocoCameraSource
        from farl_sim import make_env
        from farl_sim.experts import task_expert

        env = make_env(cfg.task)
        obs, _ = env.reset(seed=seed)
        expert = task_expert(cfg.task)
        src = MujocoCameraSource(env, params.width_px, params.height_px)
        T = src.T_base_camera
    elif source == "bag":
        from farl_perception.recorded_sources import BagFrames

        if not bags:
            raise ValueError("--source bag needs --bags PATH (episode bags recorded with perception.record_images)")
        T = camera_pose(cfg)
        src = BagFrames(bags)
    else:
        from farl_perception.realsense_source import RealSenseSource

        T = camera_pose(cfg)
        src = RealSenseSource(params.width_px, params.height_px, params.fps_hz, params.frame_timeout_s)
    per = Perception(settings_from_params(params, T))
    for w in per.warnings:
        print(f"note: {w}")
    try:
        for k in tqdm(range(frames), desc=f"perception view ({source})", unit="frame"):
            try:
                frame = src.read(k * 200_000_000 if env is not None or source == "bag" else None)  # 5 Hz
            except StaleFrame as err:
                if source != "bag" or k == 0:
                    raise
                print(f"note: {err}")
                frames = k
                break
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


def camera_pose(cfg) -> np.ndarray:
    """T_base_camera: the sim camera's (it is placed, not measured), else the calibration file's."""
    from farl_perception.calibration import load_calibration

    if cfg.robot.backend == "sim":
        from farl_perception.mujoco_source import CAMERA_POS, CAMERA_TARGET, look_at

        return look_at(CAMERA_POS, CAMERA_TARGET)
    return load_calibration(cfg.perception.calibration)


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


def calibrate_from_board(samples: Path, out: Path) -> float:
    """T_base_camera from a samples folder (capture-board): board views with the hand's pose."""
    from farl_perception.board_calibration import calibrate_folder
    from farl_perception.calibration import save_calibration

    cal, missed = calibrate_folder(samples)
    if missed:
        print(f"note: board not found in {len(missed)} samples, left out: {', '.join(missed)}")
    save_calibration(out, cal.T_base_camera, cal.residual_m, f"{cal.samples} board views from {samples}")
    t = cal.T_base_camera[:3, 3]
    print(
        f"calibration from {cal.samples} board views: reprojection {cal.reprojection_px:.2f} px RMS, "
        f"board corners {cal.residual_m * 1000:.1f} mm RMS between the robot's chain and the camera's view"
    )
    print(f"camera at ({t[0]:+.3f}, {t[1]:+.3f}, {t[2]:+.3f}) m in the base frame; written: {out}")
    return cal.residual_m


def write_board(out: Path, spec) -> Path:
    """The board as a PNG to print; its spec beside it (measure the print: printers scale)."""
    import cv2

    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), spec.image()):
        raise OSError(f"{out}: cannot write the image")
    spec_file = out.with_suffix(".yaml")
    spec_file.write_text(yaml.safe_dump(spec.as_dict(), sort_keys=False))
    w, h = spec.size_m()
    print(f"board {spec.kind} {spec.squares_x}x{spec.squares_y}, {w * 100:.1f} x {h * 100:.1f} cm: {out} ({spec_file})")
    return out


def capture_board(cfg, out: Path, count: int, spec, prompt=input, camera=None, robot=None) -> Path:
    """Take `count` board views with the real arm: the person moves the hand (guiding mode) so the
    camera sees the board, presses Enter; the hand pose and the frame are stored. `camera` and
    `robot` replace the RealSense and the franky driver the config names (tests)."""
    from farl_bringup.graph_spec import robot_params
    from farl_perception.board_calibration import find_board, write_samples

    if camera is None:
        from farl_perception.realsense_source import RealSenseSource

        pc = cfg.perception
        camera = RealSenseSource(pc.width_px, pc.height_px, pc.fps_hz, pc.frame_timeout_s)
    if robot is None:
        from farl_robot.robot_node import make_driver

        if cfg.robot.backend != "franky":
            raise ValueError(
                f"capture-board needs the real arm: a config with robot.backend franky (franka_{cfg.task})"
            )
        robot, _ = make_driver(robot_params(cfg, 0, 0))
    robot.connect()
    camera.open()
    taken: list[tuple[np.ndarray, np.ndarray]] = []
    k = None
    try:
        while len(taken) < count:
            answer = prompt(f"[{len(taken) + 1}/{count}] move the hand so the camera sees the board, Enter (q: stop) ")
            if answer.strip().lower() == "q":
                break
            frame = camera.read()
            k = frame.intrinsics
            view = find_board(frame.color, k, spec)
            if view is None:
                print("  board not found in this frame: move it into view, closer, or less tilted")
                continue
            taken.append((frame.color, robot.hand_pose()))
            print(f"  sample {len(taken)}: {len(view.object_points)} corners, {view.reprojection_px:.2f} px")
    finally:
        camera.close()
        robot.close()
    if k is None or not taken:
        raise ValueError("no board views taken")
    path = write_samples(out, spec, k, taken)
    print(f"{len(taken)} samples: {path}; next: farl perception calibrate --samples {out} --out CALIBRATION.yaml")
    return path


def train_detector(cfg, bags: str, out: Path, settings) -> dict:
    """`farl perception train-detector`: label bag frames by colour, train, then check the weights
    in the pipeline: on the validation frames, how often YOLO confirms what the colour found."""
    from farl_bringup.graph_spec import perception_params
    from farl_perception.detect import YoloDetector, fuse
    from farl_perception.detector_training import train_detector as train
    from farl_perception.perception_node import settings_from_params
    from farl_perception.recorded_sources import read_bag_frames

    if cfg.robot.backend == "sim":
        cfg.perception.source = "mujoco"  # the sim scene's objects and paint
    params = perception_params(cfg)
    colors = {o.name: o.color for o in settings_from_params(params, np.eye(4)).objects}
    result = train(read_bag_frames(bags, settings.every), out, colors, settings)
    per = ", ".join(f"{n} {c}" for n, c in result.boxes.items())
    print(f"trained on {result.train_frames} frames, validated on {result.val_frames}; colour-labelled boxes: {per}")
    if result.metrics:
        print("validation: " + ", ".join(f"{k} {v:.3f}" for k, v in result.metrics.items()))
    import cv2

    from farl_perception.detect import ColorDetector

    yolo = YoloDetector(result.weights, {n: n for n in colors}, imgsz=settings.imgsz_px)
    color = ColorDetector(colors, settings.min_area_px)
    found = confirmed = 0
    for img in sorted((out / "dataset" / "images" / "val").glob("*.png")):
        rgb = cv2.imread(str(img))[..., ::-1]
        c = color.detect(rgb)
        found += len(c)
        confirmed += len(fuse(yolo.detect(rgb), c))
    share = confirmed / found if found else 0.0
    print(f"in the pipeline: YOLO confirms {confirmed} of {found} colour detections on validation frames ({share:.0%})")
    print(
        f"detector: {result.weights}  (perception.yolo_weights: {result.weights}, yolo_imgsz_px: {settings.imgsz_px})"
    )
    return {"weights": str(result.weights), "confirmed": share, **result.metrics}
