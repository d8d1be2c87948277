"""FOSP's agent as a `farl_interfaces/PolicyWeights` message and back: how the FOSP learner node's newest
agent (world model, critics, actors, multipliers) reaches the FOSP policy node with no shared disk.
Reading it checks it as a checkpoint file is checked, and that the weights are the ones the label names."""

from __future__ import annotations

from typing import Any

import numpy as np

from farl_common import typestore as T
from farl_common.messages import MessageFactory
from farl_learning.checkpoint import CheckpointError, loads, to_bytes
from farl_learning.fosp import FOSPAgent


def fosp_weights_message(f: MessageFactory, agent: FOSPAgent, version: int) -> Any:
    data = np.frombuffer(to_bytes({**agent.state_dict(), "kind": "fosp", "version": version}), dtype=np.uint8)
    return f.new(T.WEIGHTS, version=int(version), label=agent.label, checkpoint=data)


def fosp_from_weights(msg: Any, obs_dim: int | None = None) -> tuple[FOSPAgent, int, str]:
    """(agent, version, label) of a PolicyWeights message; CheckpointError, naming the version, where the
    bytes do not load, the weights are not the ones the label names, or the agent is for other states."""
    version, label = int(msg.version), str(msg.label)
    where = f"policy_weights version {version}"
    try:
        agent = FOSPAgent.from_state(loads(msg.checkpoint, where, "fosp"))
    except (KeyError, RuntimeError, ValueError, TypeError) as err:
        raise CheckpointError(f"{where}: {type(err).__name__}: {err}") from None
    if obs_dim is not None and agent.obs_dim != obs_dim:
        raise CheckpointError(f"{where}: a FOSP agent for {agent.obs_dim}-value states, this graph's have {obs_dim}")
    if agent.label != label:
        raise CheckpointError(f"{where}: its weights are {agent.label}, its label says {label}: damaged")
    return agent, version, label
