"""Host-side buffers for the copies between the shared CPU buffers and a policy's device.

With CUDA they are page-locked (pinned): only a copy from pinned memory to the GPU runs
asynchronously, and copies back into pinned memory can be queued for every output before a
single wait, instead of one synchronizing `.cpu()` per output. On a CPU device the same buffers
spare the hot path a fresh allocation per batch.
"""

from __future__ import annotations

import torch
from torch import Tensor


class HostStaging:
    """Named host buffers, reused from batch to batch; one that is too small doubles (at least).

    A buffer is rewritten by the next batch, so whatever reads it must be done by then: callers
    `wait()` before they read what `to_host` returned, which also completes earlier uploads.
    """

    def __init__(self, device: torch.device):
        self.device = device
        self.pinned = device.type == "cuda"
        self._buffers: dict[str, Tensor] = {}

    def buffer(self, name: str, rows: int, row_shape: tuple, dtype: torch.dtype) -> Tensor:
        buf = self._buffers.get(name)
        same_rows = buf is not None and tuple(buf.shape[1:]) == tuple(row_shape) and buf.dtype == dtype
        if not same_rows or buf.shape[0] < rows:
            capacity = max(rows, 2 * buf.shape[0]) if same_rows else rows
            buf = torch.empty((capacity, *row_shape), dtype=dtype, pin_memory=self.pinned)
            self._buffers[name] = buf
        return buf[:rows]

    def gather(self, name: str, rows: Tensor, index: Tensor) -> Tensor:
        """`rows[index]`, copied into the staging buffer `name` (on the host)."""
        staged = self.buffer(name, len(index), tuple(rows.shape[1:]), rows.dtype)
        return torch.index_select(rows, 0, index, out=staged)

    def gather_to_device(self, name: str, rows: Tensor, index: Tensor) -> Tensor:
        """`rows[index]` on the device: one gather into the staging buffer, then one (async) upload."""
        return self.gather(name, rows, index).to(self.device, non_blocking=True)

    def to_host(self, name: str, tensor: Tensor) -> Tensor:
        """`tensor` on the CPU; from a GPU the copy is queued, and valid only after `wait()`."""
        if tensor.device.type == "cpu":
            return tensor
        host = self.buffer(name, tensor.shape[0], tuple(tensor.shape[1:]), tensor.dtype)
        host.copy_(tensor, non_blocking=True)
        return host

    def wait(self):
        if self.device.type == "cuda":
            torch.cuda.current_stream(self.device).synchronize()
