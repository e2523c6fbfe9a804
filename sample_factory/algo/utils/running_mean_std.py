"""Running mean/variance estimators used to normalize observations and returns.

Statistics live in registered buffers so they travel with `state_dict()` and with
`share_memory_()`; updates are done in place for the same reason (a process holding a shared
copy sees new statistics without re-sharing).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

DEFAULT_EPS = 1e-5
DEFAULT_CLIP = 5.0


class RunningMeanStd(nn.Module):
    """Mean and (population) variance of a stream of tensors of shape `shape`.

    Batches are merged with the parallel (Chan et al.) formula, so the result equals the
    mean/variance of all samples seen so far, whatever the batch sizes.
    Statistics are kept in float64; `normalize`/`denormalize` return the input's dtype.
    Before the first update mean=0, var=1, so `normalize` is only a clip.
    """

    def __init__(self, shape: Sequence[int] = (), eps: float = DEFAULT_EPS, clip: float | None = DEFAULT_CLIP):
        super().__init__()
        self.shape = tuple(shape)
        self.eps = eps
        self.clip = clip
        self.register_buffer("mean", torch.zeros(self.shape, dtype=torch.float64))
        self.register_buffer("var", torch.ones(self.shape, dtype=torch.float64))
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))

    @torch.no_grad()
    def update(self, x: Tensor) -> None:
        """Merge a batch `x` of shape [N, *shape] (any number of leading dims) into the stats."""
        x = x.detach().to(device=self.mean.device, dtype=torch.float64).reshape(-1, *self.shape)
        batch_count = x.shape[0]
        if batch_count == 0:
            return
        batch_mean = x.mean(dim=0)
        batch_var = x.var(dim=0, unbiased=False)

        total = self.count + batch_count
        delta = batch_mean - self.mean
        new_mean = self.mean + delta * (batch_count / total)
        sum_sq = self.var * self.count + batch_var * batch_count + delta.square() * (self.count * batch_count / total)

        self.mean.copy_(new_mean)
        self.var.copy_(sum_sq / total)
        self.count.copy_(total)

    def normalize(self, x: Tensor) -> Tensor:
        """(x - mean) / sqrt(var + eps), clipped to [-clip, clip] when clip is set."""
        mean = self.mean.to(x.dtype)
        std = torch.sqrt(self.var + self.eps).to(x.dtype)
        y = (x - mean) / std
        if self.clip is not None:
            y = y.clamp(-self.clip, self.clip)
        return y

    def denormalize(self, x: Tensor) -> Tensor:
        """Inverse of `normalize` (without the clip)."""
        mean = self.mean.to(x.dtype)
        std = torch.sqrt(self.var + self.eps).to(x.dtype)
        return x * std + mean

    def extra_repr(self) -> str:
        return f"shape={self.shape}, eps={self.eps}, clip={self.clip}"


class RunningMeanStdDict(nn.Module):
    """One `RunningMeanStd` per key of a dict of tensors; keys without stats pass through."""

    def __init__(
        self, shapes: Mapping[str, Sequence[int]], eps: float = DEFAULT_EPS, clip: float | None = DEFAULT_CLIP
    ):
        super().__init__()
        self.stats = nn.ModuleDict({key: RunningMeanStd(shape, eps, clip) for key, shape in shapes.items()})

    def keys(self):
        return self.stats.keys()

    @torch.no_grad()
    def update(self, x: Mapping[str, Tensor]) -> None:
        for key, rms in self.stats.items():
            if key in x:
                rms.update(x[key])

    def normalize(self, x: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Returns a new dict; the input dict is not modified."""
        return {key: self.stats[key].normalize(value) if key in self.stats else value for key, value in x.items()}

    def denormalize(self, x: Mapping[str, Tensor]) -> dict[str, Tensor]:
        return {key: self.stats[key].denormalize(value) if key in self.stats else value for key, value in x.items()}
