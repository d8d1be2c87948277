"""The FOSP learner node (`policy.kind: fosp`): Algorithm 1's online loop (lines 13-24) on the episodes
the recorder writes. It is `farl finetune --method fosp`'s learner: the same agent and replay.

At start it loads the FOSP run (`farl pretrain --method fosp`), freezes the offline actor and starts the
new one (line 12), and fills its replay with the run's demonstrations. Each time the recorder announces
a finished bag (`episode_recorded`) it adds every online episode it has not seen to the replay (FOSP
learns off-policy: whichever actor played a step, it is experience), takes `train_per_episode`
gradient steps per new episode (world model, critics, u, new actor), writes its agent atomically, and
publishes it on `policy_weights`; then it answers the bag with its version on `policy_version`, which the
robot waits for before the next episode. An unreadable bag is reported and skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from farl_common.bags import BagError, load_dataset
from farl_common.runtime.node import Node, NodeError, entry_point
from farl_common.shared_inputs import EPISODE_RECORDED_INPUT
from farl_learning.fosp import CHECKPOINT, FOSPAgent, check_fosp_run, refuse_image_agent
from farl_learning.fosp_data import SequenceBuffer
from farl_learning.fosp_weights import fosp_weights_message
from farl_learning.learner_node import LEARNER_OUTPUTS, read_new_episodes

ONLINE = "online_fosp.pt"


@dataclass
class FOSPLearnerParams:
    run_dir: str = field(default="runs/safe_reach/fosp", metadata={"doc": "farl pretrain --method fosp output"})
    bag_dir: str = field(default="runs/safe_reach/bags", metadata={"doc": "where the recorder writes"})
    checkpoint: str = field(default="", metadata={"doc": "online agent file; default RUN_DIR/online_fosp.pt"})
    train_per_episode: int = field(
        default=0, metadata={"doc": "gradient steps per new episode; 0: the run's (FOSPConfig)", "lo": 0}
    )
    seed: int = field(default=0, metadata={"doc": "seed of the replay's batches"})


class FOSPLearnerNode(Node):
    name = "learner"
    Params = FOSPLearnerParams
    inputs = (EPISODE_RECORDED_INPUT,)
    outputs = LEARNER_OUTPUTS

    def on_start(self) -> None:
        p = self.params
        run = Path(p.run_dir)
        self.path = Path(p.checkpoint) if p.checkpoint else run / ONLINE
        meta = check_fosp_run(run)  # an IncompleteRun is a NodeError: one line, and the node does not start
        try:
            if self.path.exists():
                self.agent, extra = FOSPAgent.load(self.path)
                self.version = int(extra.get("version", 0))
                self.log("info", f"resuming FOSP online learning at version {self.version}")
            else:
                self.agent, _ = FOSPAgent.load(run / CHECKPOINT)
                self.version = 0
        except (FileNotFoundError, ValueError) as err:
            raise NodeError(str(err)) from None
        refuse_image_agent(self.agent, self.path if self.path.exists() else run / CHECKPOINT)
        self.agent.start_online()
        if p.train_per_episode:
            self.agent.cfg.train_per_episode = p.train_per_episode
        try:
            self.buffer = SequenceBuffer.from_dataset(load_dataset(meta["demos"]))
        except BagError as err:
            raise NodeError(f"the FOSP run's demonstrations are its replay's start: {err}") from None
        self.seen: set[str] = set()
        self.bad_bags: list[str] = []
        if not self.path.exists():
            self._save()
        self.publish("policy_weights", fosp_weights_message(self.msgs, self.agent, self.version))
        self.log(
            "info",
            f"FOSP learning from the episodes recorded into {p.bag_dir}: version {self.version}, "
            f"{self.agent.cfg.train_per_episode} gradient steps per episode, replay of {self.buffer.episodes} episodes",
        )
        self._announce()

    def _announce(self) -> None:
        self.publish("policy_version", self.msgs.new("std_msgs/msg/UInt32", data=self.version))

    def _save(self) -> None:
        self.agent.save(self.path, version=self.version)

    def on_episode_recorded(self, msg: Any) -> None:
        bag_dir = Path(self.params.bag_dir)
        if not bag_dir.exists():
            self.log("error", f"a bag was recorded ({msg.data}), but the bag folder {bag_dir} does not exist")
            self._announce()
            return
        new = 0
        for ep in read_new_episodes(bag_dir, self.seen, self.bad_bags, self.log):
            if ep.kind != "online" or len(ep) == 0:
                continue
            obs = np.concatenate([ep.obs, ep.next_obs[-1:]])
            self.buffer.add_episode(obs, ep.action, ep.reward, ep.cost, bool(ep.done[-1]))
            self.agent.steps["online"] += len(ep)  # online from now on, with or without expansion
            new += 1
        if new:
            for _ in range(new * self.agent.cfg.train_per_episode):
                log = self.agent.train_step(self.buffer)
            self.version += 1
            self._save()
            self.publish("policy_weights", fosp_weights_message(self.msgs, self.agent, self.version))
            self.log(
                "info",
                f"FOSP trained on {new} new episode(s) -> version {self.version} "
                f"(world model {log['wm']:.3f}, critic {log['critic']:.3f}, u {log['u']:.3f})",
            )
        self._announce()


main = entry_point(FOSPLearnerNode)
