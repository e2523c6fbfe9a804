"""Small torch helpers, at sample-factory 2.x's import path (`calc_num_elements` is the one its
users' custom encoders call)."""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch
from torch import nn


def calc_num_elements(module: nn.Module, module_input_shape: tuple[int, ...]) -> int:
    """Number of output features of `module` for one input of `module_input_shape` (a dummy forward)."""
    with torch.no_grad():
        out = module(torch.zeros(1, *module_input_shape))
    return out.numel()


def to_torch_dtype(numpy_dtype) -> torch.dtype:
    """The torch dtype of a numpy dtype (`np.float32` -> `torch.float32`)."""
    return torch.from_numpy(np.zeros(0, dtype=numpy_dtype)).dtype


def to_scalar(value):
    """A Python number from a one-element tensor; anything else unchanged."""
    return value.item() if isinstance(value, torch.Tensor) else value


def masked_select(x: torch.Tensor, mask: torch.Tensor, num_non_mask: int) -> torch.Tensor:
    """The rows of `x` where `mask` is set; `x` itself when no row is masked out (no copy)."""
    return x if num_non_mask == 0 else x[mask]


def synchronize(cfg, device: torch.device | str) -> None:
    """Waits for the GPU's queued work (timing on a GPU means nothing without it)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


@contextmanager
def inference_context(is_serial: bool = False):
    """No autograd for inference (sample-factory 2.x used inference_mode only out of serial mode)."""
    with torch.no_grad():
        yield


def init_torch_runtime(cfg, max_num_threads: int | None = 1) -> None:
    """A worker's torch threads: at most `max_num_threads` (None: torch's default)."""
    if max_num_threads is not None:
        torch.set_num_threads(max_num_threads)
