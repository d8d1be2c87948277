"""The learner node: online PPO from episode bags (paper Sec. III-B).

It is `farl finetune`'s learner: the same `PPOLearner`, on the same schedule (`online_ppo_config`:
batch, epochs, learning rates, value warm-up, normalisation), with the policy's own steps taken as
the clipped draws it proposed, as FailureBench's rollouts keep them.

Each time the recorder announces a finished bag (`episode_recorded`) it reads the bags it has not
seen; on-policy data are the online episodes whose EpisodeEvent names this learner's current policy
(`learned:<weights fingerprint>`, which the policy node stamps on every action). Episodes of a
scripted policy, a person, an older version or an unlabelled bag in the same folder are left out:
PPO's ratio is only valid for its own draws. Steps where the shield swapped or a person took over
stay out of the policy term (not the policy's draws either) but count in the value targets. Once
`min_new_steps` such transitions have arrived (by default the schedule's batch) it runs one PPO
update, writes the checkpoint atomically to its own disk, and publishes the new policy, weights
and all, on `policy_weights` (transient local, newest only): the policy node and the shield take it
from there, on this machine or another. After each announced bag it publishes its current version,
new or not: the robot node starts the next episode on that answer, so each episode is played by the
version meant for it. An unreadable bag is reported and skipped, not retried.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from farl_common.bags import BagError, iter_bag_paths, read_episode
from farl_common.config import LearnerConfig, same_as
from farl_common.runtime.node import Node, Output, entry_point
from farl_common.shared_inputs import EPISODE_RECORDED_INPUT, POLICY_WEIGHTS_INPUT
from farl_learning.checkpoint import load, policy_label, save_atomic
from farl_learning.policy_weights import weights_message
from farl_learning.ppo import PPOConfig, PPOLearner, online_ppo_config
from farl_learning.uni_o4 import policy_from_checkpoint, value_from_checkpoint


@dataclass
class LearnerParams:
    run_dir: str = field(default="runs/fragile_push_wall/run", metadata={"doc": "farl pretrain output"})
    bag_dir: str = field(default="runs/fragile_push_wall/bags", metadata={"doc": "where the recorder writes"})
    checkpoint: str = field(default="", metadata={"doc": "online policy file; default RUN_DIR/online_policy.pt"})
    min_new_steps: int = same_as(LearnerConfig, "min_new_steps")
    policy_lr: float = field(
        default=PPOConfig.policy_lr,
        metadata={"doc": "PPO policy learning rate (PPOConfig.policy_lr)", "lo": 1e-12, "hi": 1.0},
    )
    epochs: int = field(default=PPOConfig.epochs, metadata={"doc": "PPO epochs per update (PPOConfig.epochs)", "lo": 1})
    anchor_coef: float = same_as(LearnerConfig, "anchor_coef")
    seed: int = field(default=0, metadata={"doc": "minibatch shuffling seed"})


def read_new_episodes(bag_dir: Path, seen: set[str], bad: list[str], log: Callable[[str, str], None]) -> Iterator[Any]:
    """Each bag under `bag_dir` not in `seen` (which it adds to), read; one that cannot be read is
    reported in `bad` and the log and skipped, not retried. Both learner nodes read their episodes so."""
    for bag in iter_bag_paths(bag_dir):
        if bag.name in seen:
            continue
        seen.add(bag.name)
        try:
            yield read_episode(bag)
        except BagError as err:
            bad.append(str(err))
            log("error", f"skipping bag: {err}")


def online_checkpoint(run_dir: str, checkpoint: str = "") -> Path:
    return Path(checkpoint) if checkpoint else Path(run_dir) / "online_policy.pt"


LEARNER_OUTPUTS = (
    Output("policy_version", "std_msgs/msg/UInt32", qos="events"),
    Output("policy_weights", POLICY_WEIGHTS_INPUT.typename, qos="latest"),
)
"""What a learner node answers with: its version after each recorded bag, and its newest policy."""


class LearnerNode(Node):
    name = "learner"
    Params = LearnerParams
    inputs = (EPISODE_RECORDED_INPUT,)
    outputs = LEARNER_OUTPUTS

    def on_start(self) -> None:
        p = self.params
        self.path = online_checkpoint(p.run_dir, p.checkpoint)
        base = load(Path(p.run_dir) / "task_policy.pt", "task_policy")
        cfg = online_ppo_config(
            base["config"], policy_lr=p.policy_lr, epochs=p.epochs, seed=p.seed, anchor_coef=p.anchor_coef
        )
        self.batch_steps = p.min_new_steps or cfg.batch_steps
        self.base = base
        self.learner = PPOLearner(policy_from_checkpoint(base).train(), value_from_checkpoint(base), cfg)
        if self.path.exists():
            self.learner.restore(load(self.path, "task_policy"))
            self.log("info", f"resuming online learning at policy version {self.learner.updates}")
        else:
            self._save()
        self.seen: set[str] = set()
        self.pending: list[Any] = []
        self.pending_steps = 0
        self.skipped_off_policy = 0
        self.foreign: dict[str, int] = {}
        self.bad_bags: list[str] = []
        self._publish_weights()
        self.log(
            "info",
            f"learning from the episodes recorded into {p.bag_dir}: policy version {self.version}, "
            f"a PPO update every {self.batch_steps} on-policy steps",
        )
        self._announce()  # transient local: a policy node, shield or `ros2 topic echo` that comes later gets it

    def _announce(self) -> None:
        self.publish("policy_version", self.msgs.new("std_msgs/msg/UInt32", data=self.version))

    @property
    def version(self) -> int:
        return self.learner.updates

    @property
    def label(self) -> str:
        """The policy label of this learner's current weights, as the policy node stamps it."""
        return policy_label(self.learner.policy)

    def _on_policy(self, ep: Any, label: str) -> bool:
        if ep.kind == "online" and ep.policy == label and ep.policy_version == self.version and len(ep) > 0:
            return True
        self.skipped_off_policy += 1
        played_by = ep.policy or "an unlabelled policy"
        if ep.kind == "online" and not ep.policy.startswith("learned:") and played_by not in self.foreign:
            self.log(
                "warning",
                f"leaving out {ep.path.name} and every other episode played by {played_by}: "
                f"PPO learns only from its own policy's episodes ({label})",
            )
        if not ep.policy.startswith("learned:"):
            self.foreign[played_by] = self.foreign.get(played_by, 0) + 1
        return False

    def _save(self) -> None:
        save_atomic(self.path, {**self.base, **self.learner.state(), "kind": "task_policy"})

    def _publish_weights(self) -> None:
        self.publish("policy_weights", weights_message(self.msgs, self.learner.state(), self.version, self.label))

    def on_episode_recorded(self, msg: Any) -> None:
        bag_dir = Path(self.params.bag_dir)
        if not bag_dir.exists():
            self.log("error", f"a bag was recorded ({msg.data}), but the bag folder {bag_dir} does not exist")
            self._announce()
            return
        label = self.label
        for ep in read_new_episodes(bag_dir, self.seen, self.bad_bags, self.log):
            if not self._on_policy(ep, label):
                continue
            not_own = ep.swapped | ep.intervened  # neither the shield's nor a person's actions are the policy's
            self.pending.append(
                self.learner.on_policy_trajectory(
                    ep.obs,
                    np.where(not_own[:, None], ep.action, ep.proposed_action),
                    ep.reward,
                    ep.cost,
                    bool(ep.done[-1]),
                    ep.next_obs[-1],
                    not_own,
                )
            )
            self.pending_steps += len(ep)
        if self.pending_steps >= self.batch_steps:
            failures = sum(t.cost[-1] > 0 for t in self.pending) / len(self.pending)
            info = self.learner.update(self.pending, failures)
            self._save()
            self._publish_weights()  # before the version that answers this bag
            self.log(
                "info",
                f"PPO update on {self.pending_steps} steps -> policy version {self.version} "
                f"(pi_loss {info['pi_loss']:.3f}, v_loss {info['v_loss']:.3f})",
            )
            self.pending, self.pending_steps = [], 0
        self._announce()  # the answer to this bag, with or without an update: the robot waits for it


main = entry_point(LearnerNode)
