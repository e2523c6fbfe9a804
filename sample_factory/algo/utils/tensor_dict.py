"""`TensorDict`: a (nested) dict of tensors or arrays indexed as one, at sample-factory 2.x's path.

batch = TensorDict(obs=TensorDict(obs=torch.zeros(8, 4)), rewards=torch.zeros(8))
first_half = batch[:4]            # every leaf sliced
batch[4:] = first_half            # every leaf assigned
batch["rewards"]                  # a string key is an ordinary dict lookup
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


class TensorDict(dict):
    def __getitem__(self, key):
        if isinstance(key, str):
            return super().__getitem__(key)
        return TensorDict({k: v[key] for k, v in self.items()})

    def __setitem__(self, key, value):
        if isinstance(key, str):
            super().__setitem__(key, value)
            return
        for k, leaf in self.items():
            leaf[key] = value[k] if isinstance(value, dict) else value


def _map(d: dict, fn) -> TensorDict:
    return TensorDict({k: _map(v, fn) if isinstance(v, dict) else fn(v) for k, v in d.items()})


def clone_tensordict(d: TensorDict) -> TensorDict:
    return _map(d, lambda t: t.clone() if isinstance(t, Tensor) else np.copy(t))


def shallow_recursive_copy(d: TensorDict) -> TensorDict:
    """New dicts, the same tensors."""
    return _map(d, lambda t: t)


def to_numpy(t: Tensor | TensorDict):
    if isinstance(t, dict):
        return _map(t, to_numpy)
    return t.detach().cpu().numpy() if isinstance(t, Tensor) else np.asarray(t)


def tensor_dict_to_numpy(d: TensorDict) -> TensorDict:
    return to_numpy(d)


def cat_tensordicts(lst: list[TensorDict]) -> TensorDict:
    """Concatenates along the first dim, leaf by leaf."""
    first = lst[0]
    result = TensorDict()
    for key, value in first.items():
        parts = [d[key] for d in lst]
        if isinstance(value, dict):
            result[key] = cat_tensordicts(parts)
        elif isinstance(value, Tensor):
            result[key] = torch.cat(parts)
        else:
            result[key] = np.concatenate(parts)
    return result
