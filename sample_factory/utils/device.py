"""Where policies run, and how their processes use the CPU and memory."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys

import torch

log = logging.getLogger(__name__)


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


def pin_rollout_worker(cfg, worker_idx: int) -> int | None:
    """With --set_workers_cpu_affinity, pins this process to one core (worker i -> core i mod N).

    Env processes started afterwards (a ViZDoom engine) inherit the core: an env's Python side and
    its engine then skip a cross-core wake-up per step. Pinning only pays when cores outnumber
    rollout workers, leaving the learner and inference workers cores of their own; otherwise
    nothing is pinned (README, "Measurements behind the code").
    Returns the core, or None when not pinned.
    """
    if not cfg.set_workers_cpu_affinity or cfg.serial_mode or not hasattr(os, "sched_setaffinity"):
        return None
    cores = sorted(os.sched_getaffinity(0))
    if cfg.num_workers >= len(cores):
        return None
    core = cores[worker_idx % len(cores)]
    os.sched_setaffinity(0, {core})
    return core


# What env libraries read to size their thread pools (OpenMP, MKL, OpenBLAS, numexpr, OpenCV).
_THREAD_LIMIT_VARS = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "OPENCV_FOR_THREADS_NUM",
)


def limit_env_threads():
    """--force_envs_single_thread: env libraries loaded from here on start one thread each."""
    for name in _THREAD_LIMIT_VARS:
        os.environ[name] = "1"
    cv2 = sys.modules.get("cv2")
    if cv2 is not None:
        cv2.setNumThreads(1)


def set_niceness(niceness: int, who: str):
    """--default_niceness: lower (or, with the right, raise) this worker's scheduling priority."""
    try:
        os.nice(niceness)
    except OSError as e:
        log.warning("%s: could not change niceness by %d (%s); keeping it", who, niceness, e)


_M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's malloc.h
_M_MMAP_THRESHOLD = -3


def keep_large_allocations_mapped(limit_bytes: int = 1 << 30) -> bool:
    """Serves allocations up to `limit_bytes` from the heap and keeps freed heap memory mapped.

    glibc gives every allocation above its mmap threshold (at most 32 MiB) fresh pages and
    unmaps them on free, so a CPU learner page-faults its large activations and gradients back
    in on every iteration: about a fifth of its time. The cost is that the process keeps its
    peak heap resident. Returns False where there is no glibc `mallopt` (nothing changes).
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, limit_bytes)) and bool(mallopt(_M_TRIM_THRESHOLD, limit_bytes))
