"""`config/<task>.yaml`: one file per task for the nodes, topics, rates and parameters.

The launch file and the in-process runtime both read it through `load_config`, which checks every
key against the dataclasses below and says what is wrong in words: an unknown key (with the
nearest valid one), a wrong type, a value out of range. Numeric parameters carry their unit in
their name (`rate_hz`, `max_step_m`, `stale_timeout_s`); unit-free ones say so in their metadata.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from farl_common.shield_settings import ShieldSettings
from farl_common.topics import DEFAULT_TOPICS

UNIT_SUFFIXES = ("_m", "_s", "_hz", "_rad", "_mps", "_n", "_nm", "_px", "_cm")


_SHIELD = ShieldSettings()


class ConfigError(ValueError):
    """A config file that does not match the schema; the message names the file and the key."""


def param(
    default: Any, *, lo: float | None = None, hi: float | None = None, unitless: bool = False, doc: str = ""
) -> Any:
    """A config field with its allowed range; `unitless` marks a number that has no physical unit."""
    meta = {"lo": lo, "hi": hi, "unitless": unitless, "doc": doc}
    if isinstance(default, list | dict):
        return field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class RobotConfig:
    backend: Literal["sim", "franky"] = param("sim", doc="sim: FailureBench in MuJoCo; franky: a real Panda")
    horizon_steps: int = param(200, lo=1, hi=500, unitless=True, doc="steps per episode before a timeout")
    stale_timeout_s: float = param(1.0, lo=0.01, hi=10.0, doc="hold still when no action came for this long")
    learner_timeout_s: float = param(
        120.0,
        lo=0.1,
        doc="how long to wait for the learner's answer to an episode (learned graph), or for the recorder to "
        "take the robot's topics, before going on without it, and without waiting again until it is back",
    )
    max_step_m: float = param(0.01, lo=0.0, hi=0.05, doc="largest hand displacement per control step")
    workspace_min_m: list[float] = param([-0.5, 0.40, 0.05], doc="hard envelope lower corner (x, y, z)")
    workspace_max_m: list[float] = param([0.5, 1.0, 0.5], doc="hard envelope upper corner (x, y, z)")
    robot_ip: str = param("", doc="franky: the robot's FCI address (launch argument robot_ip)")
    home_joints_rad: list[float] = param(
        [0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785], doc="franky: joint pose the arm returns to between episodes"
    )
    relative_dynamics_factor: float = param(
        0.1, lo=0.01, hi=1.0, unitless=True, doc="franky: fraction of the robot's velocity/acceleration/jerk limits"
    )
    collision_torque_nm: float = param(20.0, lo=1.0, hi=100.0, doc="franky: joint torque that counts as a collision")
    collision_force_n: float = param(
        20.0, lo=1.0, hi=100.0, doc="franky: end-effector force that counts as a collision"
    )
    use_gripper: bool = param(True, doc="franky: drive the Franka Hand (false for a fixed tool such as a UMI gripper)")
    gripper_speed_mps: float = param(0.05, lo=0.01, hi=0.2, doc="franky: Franka Hand opening/closing speed")
    max_recoveries: int = param(
        3, lo=0, hi=20, unitless=True, doc="franky: error recoveries before the arm stays stopped"
    )
    realtime_kernel: bool = param(
        True, doc="franky: require realtime scheduling (PREEMPT_RT kernel; libfranka wants it)"
    )


@dataclass
class SceneConfig:
    """A real task's rules on perceived object positions, in the robot base frame (robot.backend: franky)."""

    objects: list[str] = param(
        ["object"],
        doc="perceived objects: the pushed object, then the obstacle if any (obstacles: the two obstacles, "
        "then the target)",
    )
    goal_m: list[float] = param([0.5, 0.2, 0.02], doc="goal position of the pushed object")
    success_radius_m: float = param(
        0.05, lo=0.005, hi=0.5, doc="the object (obstacles: the hand) this close to the goal (xy) is a success"
    )
    object_timeout_s: float = param(0.6, lo=0.05, hi=10.0, doc="the arm holds when an object was seen longer ago")
    hazard: Literal["none", "wall", "boundary", "obstacle", "obstacles"] = param(
        "none",
        doc="what an IR failure is made of; obstacles: SafeReach, the hand near either of two obstacles costs 1 "
        "a step, and the hand reaching the third object (the target) ends the episode with reward 1",
    )
    hazard_min_m: list[float] = param([0.0, 0.0, 0.0], doc="wall box / boundary rectangle lower corner")
    hazard_max_m: list[float] = param([0.0, 0.0, 0.0], doc="wall box / boundary rectangle upper corner")
    obstacle_radius_m: float = param(0.04, lo=0.0, hi=0.5, doc="radius of the moving obstacle")


@dataclass
class PerceptionConfig:
    """The camera (farl_perception): object positions in the base frame for the scene's objects.

    On the real arm they are the task's state; in simulation (`source: mujoco`) a rendered camera
    replaces the simulator's ground truth, so the policy acts on perceived state."""

    enabled: bool = param(False, doc="run the perception node (sim: positions from the rendered camera)")
    source: Literal["realsense", "topics", "bag", "mujoco"] = param(
        "realsense",
        doc="realsense (D435, opened by the node) | topics (realsense2_camera's image topics) | "
        "bag (recorded frames) | mujoco (the sim scene)",
    )
    bag: str = param("", doc="bag or folder of bags with camera topics, for source bag")
    hsv_lo: list[int] = param(
        [], unitless=True, doc="OpenCV HSV lower bounds, 3 per scene object (empty in sim: its paint)"
    )
    hsv_hi: list[int] = param([], unitless=True, doc="OpenCV HSV upper bounds, 3 per scene object")
    depth_offset_m: list[float] = param([], doc="visible surface to the object's centre, one per object")
    yolo_weights: str = param("", doc="YOLOv8 weights file; empty: colour filtering alone")
    yolo_imgsz_px: int = param(416, lo=96, hi=1280, doc="YOLO input size (416: p95 57 ms on 2 cores)")
    calibration: str = param("", doc="camera-to-base calibration file (farl perception calibrate)")
    width_px: int = param(640, lo=64, hi=1920, doc="colour and depth width")
    height_px: int = param(480, lo=48, hi=1080, doc="colour and depth height")
    fps_hz: int = param(30, lo=6, hi=90, doc="camera frame rate")
    frame_timeout_s: float = param(1.0, lo=0.05, hi=10.0, doc="no frame for this long: the camera is stale")
    min_area_px: int = param(30, lo=1, hi=100_000, doc="smallest colour blob that counts as the object")
    max_jump_m: float = param(0.08, lo=0.005, hi=1.0, doc="a larger jump is an outlier until seen 3 times")
    debug_image: bool = param(True, doc="publish the annotated image (boxes, positions) on debug_image")
    record_images: bool = param(
        False, doc="episode bags keep the camera frames perception used (farl perception train-detector)"
    )


@dataclass
class PolicyConfig:
    kind: Literal["scripted", "learned", "teleop", "fosp"] = param(
        "scripted",
        doc="scripted expert, FARL's task policy (learned), FOSP's agent (fosp), or a person recording "
        "demonstrations (farl record)",
    )
    checkpoint: str = param("", doc="policy checkpoint file, for kind=learned")
    action_noise_std: float = param(0.0, lo=0.0, hi=2.0, unitless=True, doc="Gaussian noise on actions")


@dataclass
class RecorderConfig:
    out_dir: str = param("runs/{task}/bags", doc="episode bags go here; {task} is replaced")
    storage: Literal["mcap", "sqlite3"] = param("mcap", doc="rosbag2 storage: mcap or sqlite3")


@dataclass
class EpisodesConfig:
    count: int = param(3, lo=1, hi=1_000_000, unitless=True)
    seed: int = param(0, lo=0, unitless=True)
    kind: Literal["task", "recovery", "failure", "online"] = param("online")


@dataclass
class ShieldSection:
    """The shield's settings as a config section and as the shield node's parameters (defaults from
    `ShieldSettings`, the one place they are written)."""

    critic: Literal["world_model", "q_risk", "reachability"] = param(_SHIELD.critic, doc="risk critic")
    recovery: Literal["policy", "mppi"] = param(_SHIELD.recovery, doc="where replacement actions come from")
    eps_safe: float = param(_SHIELD.eps_safe, lo=0.0, hi=10.0, unitless=True, doc="swap when C_H exceeds this (eq. 11)")
    horizon_steps: int = param(_SHIELD.horizon_steps, lo=1, hi=50, unitless=True, doc="H of eq. 10")
    gamma_risk: float = param(_SHIELD.gamma_risk, lo=0.0, hi=1.0, unitless=True, doc="discount of future failure risk")

    def settings(self, run: str | Path | None = None, source: str = "config") -> ShieldSettings:
        """The shield settings this section gives; with `run`, its calibration (RUN/shield.json) for the
        critic wins over eps_safe, H and gamma_risk here."""
        s = ShieldSettings(
            self.critic, self.recovery, self.eps_safe, self.horizon_steps, self.gamma_risk, eps_source=source
        )
        return s.calibrated(run) if run is not None else s


@dataclass
class ShieldConfig(ShieldSection):
    enabled: bool = param(True, doc="run the safety shield between policy and robot")


@dataclass
class LearnerConfig:
    run_dir: str = param("runs/{task}/run", doc="pre-training run folder (farl pretrain --out)")
    fosp_run_dir: str = param(
        "runs/{task}/fosp", doc="FOSP's run folder, for policy.kind fosp (farl pretrain --method fosp)"
    )
    min_new_steps: int = param(
        0,
        lo=0,
        unitless=True,
        doc="PPO update once this many new transitions arrived; 0: the batch farl finetune updates on (800)",
    )
    anchor_coef: float = param(
        0.0, lo=0.0, hi=1e3, unitless=True, doc="pull towards the pre-trained policy (PPOConfig.anchor_coef)"
    )


@dataclass
class TeleopConfig:
    """The person at the controls: demonstrations (`farl record`, policy.kind teleop) and takeover
    while a policy acts (`takeover: true`). Maps by name onto the teleop node's parameters."""

    device: Literal["spacemouse", "keyboard", "scripted"] = param(
        "spacemouse", doc="spacemouse | keyboard | scripted (a scripted person; takeover only)"
    )
    takeover: bool = param(False, doc="a person may take over from the shield's (or the policy's) output")
    deadband: float = param(0.1, lo=0.0, hi=0.9, unitless=True, doc="deflection below this fraction counts as none")
    gain: float = param(1.0, lo=0.05, hi=1.0, unitless=True, doc="action at full deflection (1 = the largest step)")
    axis_map: list[str] = param(["x", "y", "z"], doc="device axis driving base x, y, z; a leading '-' flips it")
    poll_hz: float = param(20.0, lo=1.0, hi=1000.0, doc="device polling rate")
    long_press_s: float = param(0.8, lo=0.1, hi=5.0, doc="a button held this long is a long press")
    key_hold_s: float = param(0.3, lo=0.05, hi=2.0, doc="keyboard: an axis key deflects its axis this long")
    release_s: float = param(1.0, lo=0.0, hi=30.0, doc="takeover: the policy acts again this long after a rest")
    takeover_end: Literal["resume", "end_episode"] = param("resume", doc="after a takeover: resume | end_episode")
    on_unplug: Literal["keep", "discard"] = param("keep", doc="an episode cut short by an unplugged device")
    review: bool = param(True, doc="ask keep / discard / rerecord after each demonstration")
    spacemouse_name: str = param("", doc="pyspacemouse device name (e.g. SpaceMouseCompact); empty: the first found")
    person_takeover_m: float = param(0.03, lo=0.0, hi=1.0, doc="scripted person: grabs this close to the hazard")
    person_carry_s: float = param(2.0, lo=0.1, hi=60.0, doc="scripted person: lets go after this long")


@dataclass
class FarlConfig:
    task: str = param("fragile_push_wall", doc="FailureBench task name")
    rate_hz: float = param(5.0, lo=0.1, hi=1000.0, doc="control rate of the whole graph")
    topics: dict[str, str] = param(dict(DEFAULT_TOPICS), doc="short name -> ROS topic")
    robot: RobotConfig = field(default_factory=RobotConfig)
    scene: SceneConfig = field(default_factory=SceneConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    recorder: RecorderConfig = field(default_factory=RecorderConfig)
    episodes: EpisodesConfig = field(default_factory=EpisodesConfig)
    shield: ShieldConfig = field(default_factory=ShieldConfig)
    learner: LearnerConfig = field(default_factory=LearnerConfig)
    teleop: TeleopConfig = field(default_factory=TeleopConfig)
    perception: PerceptionConfig = field(default_factory=PerceptionConfig)


def prefixed(cls: type, prefix: str, name: str) -> type:
    """`cls`'s fields as a dataclass of their own, each name with `prefix` (same types, defaults and
    metadata): a config section carried inside another node's parameters (the robot's `scene_*`)."""
    hints = typing.get_type_hints(cls)
    return dataclasses.make_dataclass(
        name,
        [
            (
                prefix + f.name,
                hints[f.name],
                same_as(cls, f.name),
            )
            for f in dataclasses.fields(cls)
        ],
    )


def same_as(cls: type, name: str) -> Any:
    """A Params field that is `cls`'s config field `name` (its default and metadata), where the rest of
    the section does not carry over (a path template in the config, a resolved path in the node)."""
    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    return field(default=f.default, default_factory=f.default_factory, metadata=f.metadata)


def check_fields(obj: Any, where: str = "") -> None:
    """Check a Params (or section) instance against its own schema: the types, choices and ranges a
    config file is held to, for values that came another way (ROS parameters, `-p` on the command line)."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        _check(getattr(obj, f.name), hints[f.name], f"{where}{f.name}", dict(f.metadata))


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    return getattr(tp, "__name__", str(tp))


def _check(value: Any, tp: Any, where: str, meta: dict[str, Any]) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping of {tp.__name__} keys, got {type(value).__name__}")
        return _build(tp, value, where)
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise ConfigError(f"{where}: must be one of {_type_name(tp)}, got {value!r}")
        return value
    if origin in (list, types.GenericAlias) or tp is list or origin is list:
        (inner,) = typing.get_args(tp) or (Any,)
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__}")
        return [_check(v, inner, f"{where}[{i}]", meta) for i, v in enumerate(value)]
    if origin is dict:
        kt, vt = typing.get_args(tp)
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        return {_check(k, kt, f"{where} key", {}): _check(v, vt, f"{where}.{k}", meta) for k, v in value.items()}
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        value = float(value)
    elif tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
    elif tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
    elif tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
    lo, hi = meta.get("lo"), meta.get("hi")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value != value:  # NaN
            raise ConfigError(f"{where}: NaN is not a valid value")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise ConfigError(f"{where}: {value} is out of range [{lo}, {hi}]")
    return value


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key in data:
        if key not in names:
            near = difflib.get_close_matches(str(key), names, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else f" (valid: {', '.join(names)})"
            raise ConfigError(f"{where}.{key}: unknown key{hint}".lstrip("."))
    for f in dataclasses.fields(cls):
        if f.name in data:
            kwargs[f.name] = _check(data[f.name], hints[f.name], f"{where}.{f.name}".lstrip("."), dict(f.metadata))
    return cls(**kwargs)


def config_from_dict(data: dict[str, Any], source: str = "<dict>") -> FarlConfig:
    try:
        cfg = _build(FarlConfig, data or {}, "")
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from None
    if not cfg.task or not cfg.task.replace("_", "").isalnum():
        raise ConfigError(f"{source}: task: expected a snake_case task name, got {cfg.task!r}")
    unknown = set(cfg.topics) - set(DEFAULT_TOPICS)
    if unknown:
        raise ConfigError(f"{source}: topics: unknown topic name(s) {sorted(unknown)}; valid: {sorted(DEFAULT_TOPICS)}")
    cfg.topics = {**DEFAULT_TOPICS, **cfg.topics}
    lo, hi = cfg.robot.workspace_min_m, cfg.robot.workspace_max_m
    if len(lo) != 3 or len(hi) != 3 or any(a >= b for a, b in zip(lo, hi, strict=True)):
        raise ConfigError(f"{source}: robot.workspace_min_m/max_m: need three values each with min < max")
    return cfg


def read_yaml_mapping(path: str | Path, error: type[Exception], missing: str) -> dict[str, Any]:
    """A YAML file's top level as a dict ({} for an empty file), or `error` with one line that starts
    with the path: `missing` (e.g. "config file not found"), not YAML, or not a mapping."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: {missing}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise error(f"{path}: not valid YAML ({' '.join(str(err).split())[:200]})") from None
    if data is not None and not isinstance(data, dict):
        raise error(f"{path}: the top level must be a mapping of keys")
    return data or {}


def load_config(path: str | Path) -> FarlConfig:
    """Read and validate a task config file."""
    return config_from_dict(read_yaml_mapping(path, ConfigError, "config file not found"), str(path))


def config_dir() -> Path:
    """The repository's (or the installed farl_bringup share's) `config/` folder."""
    here = Path(__file__).resolve().parents[3] / "config"
    if here.is_dir():
        return here
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory("farl_bringup")) / "config"
    except Exception:  # noqa: BLE001
        return here


def task_config(task: str) -> FarlConfig:
    """`config/<task>.yaml`, validated."""
    return load_config(config_dir() / f"{task}.yaml")


def unit_violations(cls: type = FarlConfig, prefix: str = "") -> list[str]:
    """Numeric fields whose names carry no unit and are not marked unit-free (the schema's own check)."""
    out = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            out += unit_violations(tp, f"{prefix}{f.name}.")
            continue
        numeric = tp in (int, float) or typing.get_args(tp) in ((float,), (int,))
        if numeric and not f.metadata.get("unitless") and not f.name.endswith(UNIT_SUFFIXES):
            out.append(prefix + f.name)
    return out
