"""Which GPUs a process may use: `CUDA_VISIBLE_DEVICES`, as sample-factory 2.x and the launcher set it."""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)

CUDA_ENVVAR = "CUDA_VISIBLE_DEVICES"


def get_available_gpus() -> list[int]:
    """Indices of the GPUs this process sees: those listed in CUDA_VISIBLE_DEVICES, else all of torch's."""
    listed = os.environ.get(CUDA_ENVVAR)
    if listed is not None:
        return [int(g) for g in listed.split(",") if g.strip().lstrip("-").isdigit() and int(g) >= 0]
    try:
        import torch

        return list(range(torch.cuda.device_count()))
    except Exception:  # no torch or a broken driver: no GPUs
        return []


def gpus_for_process(process_idx: int, num_gpus_per_process: int, gpu_mask: list[int] | None = None) -> list[int]:
    """Process i gets the next `num_gpus_per_process` GPUs, round robin over the available (or masked) ones."""
    available = get_available_gpus()
    if gpu_mask is not None:
        available = [available[i] for i in gpu_mask if i < len(available)]
    if not available or num_gpus_per_process <= 0:
        return []
    first = process_idx * num_gpus_per_process
    return [available[(first + i) % len(available)] for i in range(num_gpus_per_process)]


def set_gpus_for_process(
    process_idx: int, num_gpus_per_process: int, process_type: str = "process", gpu_mask: list[int] | None = None
) -> list[int]:
    """Restricts this process (and its children) to its GPUs; an empty list hides every GPU."""
    gpus = gpus_for_process(process_idx, num_gpus_per_process, gpu_mask)
    os.environ[CUDA_ENVVAR] = ",".join(str(g) for g in gpus)
    log.debug("%s %d: %s=%s", process_type, process_idx, CUDA_ENVVAR, os.environ[CUDA_ENVVAR])
    return gpus
