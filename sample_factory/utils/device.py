"""Where policies run."""

from __future__ import annotations

import torch


def policy_device(cfg) -> torch.device:
    """`--device=gpu` uses CUDA when present; without a GPU everything runs on the CPU."""
    if cfg.device == "gpu" and torch.cuda.is_available():
        return torch.device("cuda", 0)
    return torch.device("cpu")
