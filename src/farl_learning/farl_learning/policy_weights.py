"""`farl_interfaces/PolicyWeights`, to and from a policy: how the learner's policies reach the policy node
and the shield with no shared disk. The message holds what acting needs of a task-policy checkpoint (no
critics, no optimiser state), its version and its label; reading it checks it as a checkpoint file is
checked, and that the weights are the ones the label names."""

from __future__ import annotations

from typing import Any

import numpy as np

from farl_common import typestore as T
from farl_common.messages import MessageFactory
from farl_learning.checkpoint import CheckpointError, loads, policy_label, to_bytes
from farl_learning.nets import GaussianPolicy
from farl_learning.uni_o4 import policy_from_checkpoint

ACTING = ("obs_dim", "act_dim", "hidden", "policy")
"""What acting needs of a task-policy checkpoint."""


def weights_message(f: MessageFactory, checkpoint: dict[str, Any], version: int, label: str) -> Any:
    """The PolicyWeights message of a task-policy checkpoint (`PPOLearner.state()`'s keys)."""
    acting = {k: checkpoint[k] for k in ACTING}
    data = np.frombuffer(to_bytes({**acting, "kind": "task_policy", "version": version}), dtype=np.uint8)
    return f.new(T.WEIGHTS, version=int(version), label=label, checkpoint=data)


def policy_from_weights(msg: Any, obs_dim: int | None = None) -> tuple[GaussianPolicy, int, str]:
    """(policy, version, label) of a PolicyWeights message; CheckpointError, naming the version, where the
    bytes do not load, the weights are not the ones the label names, or the policy is for other states."""
    version, label = int(msg.version), str(msg.label)
    where = f"policy_weights version {version}"
    try:
        data = loads(msg.checkpoint, where, "task_policy")
        policy = policy_from_checkpoint(data)
    except (KeyError, RuntimeError, ValueError) as err:
        raise CheckpointError(f"{where}: {type(err).__name__}: {err}") from None
    if obs_dim is not None and int(data["obs_dim"]) != obs_dim:
        raise CheckpointError(f"{where}: a policy for {data['obs_dim']}-value states, this graph's have {obs_dim}")
    if policy_label(policy) != label:
        raise CheckpointError(f"{where}: its weights are {policy_label(policy)}, its label says {label}: damaged")
    return policy, version, label
