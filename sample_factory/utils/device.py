"""Where policies run."""

from __future__ import annotations

import os

import torch


def policy_device(cfg) -> torch.device:
    """`--device=gpu` uses CUDA when present; without a GPU everything runs on the CPU."""
    if cfg.device == "gpu" and torch.cuda.is_available():
        return torch.device("cuda", 0)
    return torch.device("cpu")


def learner_cpu_threads(cfg) -> int:
    """Torch threads for a learner on the CPU: the cores that rollout and inference workers leave.

    Oversubscribed cores make OpenMP threads spin against env processes, which costs more than
    it gains, so a 2-core machine with 2 rollout workers trains on 1 thread.
    """
    samplers = cfg.num_workers + cfg.num_policies * cfg.policy_workers_per_policy
    return max(1, (os.cpu_count() or 1) - samplers)
