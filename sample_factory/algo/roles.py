"""What a process or component is: a kind, a policy and an index, from which its name is made.

The runner keeps its processes by role and asks a role what it is; nothing parses a name back.
A role's name is the name of its process (in logs, TensorBoard's memory curves and the benchmark's
CPU table) and the object id of the component that lives in it.
"""

from __future__ import annotations

from enum import Enum
from typing import NamedTuple


class Kind(Enum):
    ROLLOUT = "rollout_worker"
    INFERENCE = "inference"
    LEARNER = "learner"


class Role(NamedTuple):
    kind: Kind
    policy_id: int | None = None  # inference workers and learners serve one policy
    index: int | None = None  # rollout workers count from 0; inference workers count within their policy

    @property
    def name(self) -> str:
        if self.kind is Kind.ROLLOUT:
            return f"rollout_worker_{self.index}"
        if self.kind is Kind.INFERENCE:
            return f"inference_p{self.policy_id}_{self.index}"
        return f"learner_p{self.policy_id}"

    def __str__(self) -> str:
        return self.name


def rollout_worker(worker_idx: int) -> Role:
    return Role(Kind.ROLLOUT, index=worker_idx)


def inference_worker(policy_id: int, worker_idx: int) -> Role:
    return Role(Kind.INFERENCE, policy_id, worker_idx)


def learner(policy_id: int) -> Role:
    return Role(Kind.LEARNER, policy_id)
