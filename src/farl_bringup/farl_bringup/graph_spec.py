"""The farl graph of a task config, as data: which node classes run, with which parameters and topics.

Both hosts read this one description: `farl sim` instantiates the classes in process, and the
launch files start the same classes as ROS 2 executables with these parameters and remappings,
so nothing is configured twice.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import Any

from farl_common.config import ConfigError, FarlConfig, ShieldSection
from farl_common.recorder_node import EpisodeRecorderNode, RecorderParams
from farl_common.runtime.node import Node, NodeError
from farl_learning.fosp_learner_node import ONLINE as FOSP_ONLINE
from farl_learning.fosp_learner_node import FOSPLearnerNode, FOSPLearnerParams
from farl_learning.fosp_policy_node import FOSPPolicyNode, FOSPPolicyParams
from farl_learning.learner_node import LearnerNode, LearnerParams, online_checkpoint
from farl_learning.policy_node import PolicyNode, PolicyParams
from farl_perception.perception_node import PerceptionNode, PerceptionParams
from farl_robot.robot_node import RobotNode, RobotParams, check_real_params
from farl_safety_shield.shield_node import ShieldNode, ShieldParams
from farl_sim.safe_reach_tasks import SAFE_REACH
from farl_sim.scripted_policy_node import ScriptedPolicyNode, ScriptedPolicyParams
from farl_sim.tasks import get_task
from farl_teleop.teleop_node import TeleopNode, TeleopParams


@dataclass
class NodeSpec:
    package: str
    executable: str
    node_class: type[Node]
    params: Any
    topics: dict[str, str]
    """The node's short topic names -> graph topics (remappings under ROS)."""

    @property
    def name(self) -> str:
        return self.node_class.name

    def remappings(self, namespace: str = "") -> list[tuple[str, str]]:
        """Short topic name -> graph topic, for the topics this node uses. Under a namespace the graph
        topics move under it, so `/farl/state` is `/<namespace>/farl/state`; the names stay absolute,
        whatever namespace the node itself runs in."""
        used = {i.topic for i in self.node_class.inputs if hasattr(i, "topic")}
        used |= {t for i in self.node_class.inputs for t in getattr(i, "topics", ())}
        used |= {o.topic for o in self.node_class.outputs}
        prefix = f"/{namespace.strip('/')}" if namespace.strip("/") else ""
        return sorted((short, prefix + "/" + full.lstrip("/")) for short, full in self.topics.items() if short in used)


def bag_dir(cfg: FarlConfig) -> str:
    return cfg.recorder.out_dir.replace("{task}", cfg.task)


def graph_spec(
    cfg: FarlConfig, episodes: int | None = None, seed: int | None = None, run_id: str = ""
) -> list[NodeSpec]:
    """The nodes of the graph `cfg` describes, recorder first (it must see each episode's start)."""
    n = cfg.episodes.count if episodes is None else episodes
    s = cfg.episodes.seed if seed is None else seed
    if cfg.policy.kind == "teleop":
        return _record_graph(cfg, n, s, run_id)
    specs = _policy_graph(cfg, n, s, run_id)
    if cfg.teleop.takeover:
        specs = _with_takeover(cfg, specs)
    return specs


ROLES = ("all", "robot", "learner")
"""How the launch argument `role` splits the learned graph between two machines: `learner` runs the
recorder (its own bags, recorded from the topics) and the learner; `robot` runs everything else; `all`
runs both on one."""
LEARNER_SIDE = ("episode_recorder_node", "learner_node", "fosp_learner_node")


def for_role(cfg: FarlConfig, specs: list[NodeSpec], role: str) -> list[NodeSpec]:
    """The nodes of `specs` that run on a machine of `role` (`ROLES`). Only the learned graph splits: its
    two halves meet on DDS topics alone (states, actions, decisions, events; the policy's weights on
    `policy_weights`), with no folder they share."""
    if role not in ROLES:
        raise ConfigError(f"role:={role}: choose {', '.join(ROLES)}")
    if role == "all":
        return specs
    if cfg.policy.kind not in ("learned", "fosp"):
        raise ConfigError(
            f"role:={role} splits a learning graph between a robot PC and a learner PC; policy {cfg.policy.kind} "
            "has no learner: run it with role:=all"
        )
    learner = role == "learner"
    return [s for s in specs if (s.executable in LEARNER_SIDE) == learner]


def teleop_params(cfg: FarlConfig, takeover: bool, episodes: int = 0) -> TeleopParams:
    """The teleop node's parameters: the `teleop:` section by name, plus what the graph decides (a
    recording graph records even where the section says `takeover: true`)."""
    # TeleopParams extends the section: every key of it reaches the node under the same name.
    section = {**_section(cfg.teleop), "takeover": takeover}
    return TeleopParams(**section, task=cfg.task, kind=cfg.episodes.kind, episodes=episodes)


def _record_graph(cfg: FarlConfig, n: int, s: int, run_id: str) -> list[NodeSpec]:
    """A person records demonstrations: recorder, robot (episodes begin on the person's start), teleop."""
    if cfg.episodes.kind not in ("task", "recovery", "failure"):
        raise ConfigError(
            f"{cfg.task}: policy.kind teleop records demonstrations: episodes.kind must be "
            f"task, recovery or failure, not {cfg.episodes.kind!r}"
        )
    if cfg.teleop.device == "scripted":
        raise ConfigError(f"{cfg.task}: teleop.device scripted only takes over; record with spacemouse or keyboard")
    robot = dataclasses.replace(robot_params(cfg, 0, s), wait_for_start=True)
    return [
        _recorder(cfg, run_id),
        NodeSpec("farl_robot", "robot_node", RobotNode, robot, dict(cfg.topics)),
        *_perception(cfg),
        NodeSpec("farl_teleop", "teleop_node", TeleopNode, teleop_params(cfg, False, n), dict(cfg.topics)),
    ]


def _recorder(cfg: FarlConfig, run_id: str) -> NodeSpec:
    recorder = RecorderParams(
        out_dir=bag_dir(cfg),
        storage=cfg.recorder.storage,
        run_id=run_id,
        record_images=cfg.perception.enabled and cfg.perception.record_images,
    )
    return NodeSpec("farl_common", "episode_recorder_node", EpisodeRecorderNode, recorder, dict(cfg.topics))


def _perception(cfg: FarlConfig) -> list[NodeSpec]:
    if not cfg.perception.enabled:
        return []
    return [NodeSpec("farl_perception", "perception_node", PerceptionNode, perception_params(cfg), dict(cfg.topics))]


def _with_takeover(cfg: FarlConfig, specs: list[NodeSpec]) -> list[NodeSpec]:
    """The node that fed the robot now feeds the teleop node, which passes its actions on or the person's.

    Behind a shield that is the shield's output (`action_shielded`); without one it is the policy's
    proposal, on `action_proposed` as in a shielded graph, so bags keep what the policy wanted."""
    executed = cfg.topics["action_executed"]
    fed_by = cfg.topics["action_shielded"]
    for spec in specs:
        outputs = {o.topic for o in spec.node_class.outputs}
        for short, full in list(spec.topics.items()):
            if full == executed and short in outputs:
                spec.topics[short] = cfg.topics[short] if short == "action_proposed" else fed_by
                fed_by = spec.topics[short]
    topics = {**cfg.topics, "action_shielded": fed_by}
    teleop = NodeSpec("farl_teleop", "teleop_node", TeleopNode, teleop_params(cfg, takeover=True), topics)
    return [*specs, teleop]


_RECORDED = {"wait_for_recorder": EpisodeRecorderNode.name}
"""Every graph records: no episode starts, and no action goes out, before the recorder takes it."""


def _policy_graph(cfg: FarlConfig, n: int, s: int, run_id: str) -> list[NodeSpec]:
    robot = robot_params(cfg, n, s)
    shielded = cfg.policy.kind == "learned" and cfg.shield.enabled
    # Without a shield in the graph, what the policy proposes is what the robot executes.
    policy_topics = dict(cfg.topics) if shielded else {**cfg.topics, "action_proposed": cfg.topics["action_executed"]}
    specs = [
        _recorder(cfg, run_id),
        NodeSpec("farl_robot", "robot_node", RobotNode, robot, dict(cfg.topics)),
    ]
    specs += _perception(cfg)
    if cfg.policy.kind == "scripted":
        policy = ScriptedPolicyParams(
            task=cfg.task, script="expert", action_noise_std=cfg.policy.action_noise_std, seed=s, **_RECORDED
        )
        return [*specs, NodeSpec("farl_sim", "scripted_policy_node", ScriptedPolicyNode, policy, policy_topics)]
    if cfg.policy.kind == "fosp":
        return _fosp_graph(cfg, specs, s, policy_topics)
    run = run_dir(cfg)
    online = cfg.policy.checkpoint or str(online_checkpoint(run))
    learner = LearnerParams(
        run_dir=run,
        bag_dir=bag_dir(cfg),
        checkpoint=online,
        min_new_steps=cfg.learner.min_new_steps,
        anchor_coef=cfg.learner.anchor_coef,
        seed=s,
    )
    specs.append(NodeSpec("farl_learning", "learner_node", LearnerNode, learner, dict(cfg.topics)))
    specs[1].params.wait_for_learner = True  # each episode is played by the version the learner meant for it
    policy = PolicyParams(checkpoint=online, initial_checkpoint=f"{run}/task_policy.pt", seed=s, **_RECORDED)
    specs.append(NodeSpec("farl_learning", "policy_node", PolicyNode, policy, policy_topics))
    if shielded:
        # The run's calibration (RUN/shield.json) wins over the section's eps_safe, H and gamma_risk.
        sh = cfg.shield.settings(run)
        shield = ShieldParams(
            **{f.name: getattr(sh, f.name) for f in dataclasses.fields(ShieldSection)},
            run_dir=run,
            policy_checkpoint=online,
            **_RECORDED,
        )
        specs.append(NodeSpec("farl_safety_shield", "shield_node", ShieldNode, shield, dict(cfg.topics)))
    return specs


def _fosp_graph(cfg: FarlConfig, specs: list[NodeSpec], s: int, policy_topics: dict[str, str]) -> list[NodeSpec]:
    """FOSP's graph: its learner trains on the recorded episodes and publishes its agent, its policy node
    acts (expansion included); FOSP's safety is in its policy, so no shield stands between."""
    run = fosp_run_dir(cfg)
    online = cfg.policy.checkpoint or f"{run}/{FOSP_ONLINE}"
    learner = FOSPLearnerParams(run_dir=run, bag_dir=bag_dir(cfg), checkpoint=online, seed=s)
    specs.append(NodeSpec("farl_learning", "fosp_learner_node", FOSPLearnerNode, learner, dict(cfg.topics)))
    specs[1].params.wait_for_learner = True
    policy = FOSPPolicyParams(
        checkpoint=online,
        initial_checkpoint=f"{run}/fosp.pt",
        horizon_steps=cfg.robot.horizon_steps,
        seed=s,
        **_RECORDED,
    )
    specs.append(NodeSpec("farl_learning", "fosp_policy_node", FOSPPolicyNode, policy, policy_topics))
    return specs


def fosp_run_dir(cfg: FarlConfig) -> str:
    return cfg.learner.fosp_run_dir.replace("{task}", cfg.task)


def robot_params(cfg: FarlConfig, episodes: int, seed: int) -> RobotParams:
    """The robot node's parameters; a real-arm config is checked here, before anything starts."""
    r, sc = cfg.robot, cfg.scene
    if r.backend == "sim" and cfg.task not in SAFE_REACH:
        get_task(cfg.task)  # an unknown task fails here, before anything starts
    # RobotParams extends the robot section and the scene section (its keys prefixed scene_).
    params = RobotParams(
        **_section(r),
        **{f"scene_{k}": v for k, v in _section(sc).items()},
        task=cfg.task,
        rate_hz=cfg.rate_hz,
        episodes=episodes,
        seed=seed,
        kind=cfg.episodes.kind,
        **_RECORDED,
    )
    if r.backend == "sim" and cfg.perception.enabled:
        params.scene_perceived = True
        params.scene_objects = sim_object_names(cfg.task)
    if r.backend == "franky":
        try:
            check_real_params(params)
        except NodeError as err:
            raise ConfigError(f"{cfg.task}: {err}") from None
    return params


def sim_object_names(task: str) -> list[str]:
    """What a camera finds in a FailureBench scene: the pushed object, and the vase where there is one."""
    if task in SAFE_REACH:
        raise ConfigError(
            f"{task}: perception in simulation finds FailureBench's objects; set perception.enabled false"
        )
    return ["object", "obstacle"] if get_task(task).hazard == "vase" else ["object"]


SIM_HSV = {"object": ((22, 120, 120), (35, 255, 255), 0.02), "obstacle": ((100, 150, 80), (125, 255, 255), 0.025)}
"""HSV ranges and surface-to-centre offsets of the sim scene's painted objects (farl_perception.mujoco_source)."""


def perception_params(cfg: FarlConfig) -> PerceptionParams:
    """The perception node's parameters: the `perception:` section, the scene's objects, the graph's rate."""
    pc = cfg.perception
    sim = cfg.robot.backend == "sim"
    if sim and pc.source != "mujoco":
        raise ConfigError(f"{cfg.task}: perception.source must be mujoco in simulation (the rendered camera)")
    if pc.source == "bag" and not pc.bag:
        raise ConfigError(f"{cfg.task}: perception.source bag needs perception.bag (a bag or folder with images)")
    names = sim_object_names(cfg.task) if sim else list(cfg.scene.objects)
    hsv_lo, hsv_hi, offsets = list(pc.hsv_lo), list(pc.hsv_hi), list(pc.depth_offset_m)
    if sim and not hsv_lo:
        hsv_lo = [v for n in names for v in SIM_HSV[n][0]]
        hsv_hi = [v for n in names for v in SIM_HSV[n][1]]
        offsets = offsets or [SIM_HSV[n][2] for n in names]
    if len(hsv_lo) != 3 * len(names) or len(hsv_hi) != 3 * len(names):
        raise ConfigError(
            f"{cfg.task}: perception.hsv_lo/hsv_hi need 3 values per object ({', '.join(names)}): "
            f"{3 * len(names)} each, got {len(hsv_lo)} and {len(hsv_hi)}"
        )
    offsets = offsets or [0.0] * len(names)
    if len(offsets) != len(names):
        raise ConfigError(f"{cfg.task}: perception.depth_offset_m needs one value per object ({', '.join(names)})")
    # PerceptionParams extends the section; the colours and offsets are the ones worked out above.
    section = _section(pc)
    for key in ("hsv_lo", "hsv_hi", "depth_offset_m"):
        del section[key]
    return PerceptionParams(
        **section,
        publish_frames=pc.record_images and pc.source != "topics",  # from topics, the camera's own are recorded
        rate_hz=cfg.rate_hz,
        object_names=names,
        hsv_lo=hsv_lo,
        hsv_hi=hsv_hi,
        depth_offset_m=offsets,
    )


def _section(section: Any) -> dict[str, Any]:
    """A config section's values by field name (copies: a node never shares a list with the config)."""
    return {f.name: copy.deepcopy(getattr(section, f.name)) for f in dataclasses.fields(section)}


def run_dir(cfg: FarlConfig) -> str:
    return cfg.learner.run_dir.replace("{task}", cfg.task)
