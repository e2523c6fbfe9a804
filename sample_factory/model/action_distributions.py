"""Action distributions built from the raw output ("logits") of the policy head.

Buffer format (how one agent's action is stored; see `action_buffer_spec`):
  Discrete(n)          -> shape (),  int64  (the action index)
  MultiDiscrete(nvec)  -> shape (k,), int64
  Box(d,)              -> shape (d,), float32 (unclipped; the env layer clips to the bounds)
  Tuple(...)           -> shape (W,), float32: the components' buffer formats side by side,
                          discrete indices stored as floats.

Parameter layout (what `raw_logits` [B, P] holds; P = `calc_num_action_parameters`):
  Discrete: n logits; MultiDiscrete: sum(nvec) logits, component by component;
  Box: [mean (d), log_std (d)]; Tuple: the components' layouts side by side.
Leading dims other than B also work: every method reduces only the last dim.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

# exp(-10) ~ 4.5e-5 and exp(4) ~ 55: a wide range that still keeps log_prob finite
LOG_STD_MIN = -10.0
LOG_STD_MAX = 4.0

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


def _check_box(space: gym.spaces.Box) -> int:
    if len(space.shape) != 1:
        raise ValueError(f"only 1-D Box action spaces are supported, got shape {space.shape}")
    return space.shape[0]


def action_buffer_spec(action_space: gym.Space) -> tuple[tuple[int, ...], torch.dtype]:
    """(shape, dtype) of one agent's action in the sampling buffers (see module docstring)."""
    if isinstance(action_space, gym.spaces.Discrete):
        return (), torch.int64
    if isinstance(action_space, gym.spaces.MultiDiscrete):
        return (len(action_space.nvec),), torch.int64
    if isinstance(action_space, gym.spaces.Box):
        return (_check_box(action_space),), torch.float32
    if isinstance(action_space, gym.spaces.Tuple):
        return (sum(_buffer_width(space) for space in action_space.spaces),), torch.float32
    raise NotImplementedError(f"action space {action_space} is not supported")


def _buffer_width(action_space: gym.Space) -> int:
    shape, _ = action_buffer_spec(action_space)
    return int(np.prod(shape))  # () -> 1


def calc_num_action_parameters(action_space: gym.Space) -> int:
    """Width P of the raw logits needed to parameterize a distribution over `action_space`."""
    if isinstance(action_space, gym.spaces.Discrete):
        return int(action_space.n)
    if isinstance(action_space, gym.spaces.MultiDiscrete):
        return int(np.sum(action_space.nvec))
    if isinstance(action_space, gym.spaces.Box):
        return 2 * _check_box(action_space)
    if isinstance(action_space, gym.spaces.Tuple):
        return sum(calc_num_action_parameters(space) for space in action_space.spaces)
    raise NotImplementedError(f"action space {action_space} is not supported")


def is_continuous_action_space(action_space: gym.Space) -> bool:
    return isinstance(action_space, gym.spaces.Box)


class ActionDistribution:
    # symmetric_kl_with_uniform_prior() -> [B]: discrete distributions only (--exploration_loss=symmetric_kl)
    """Interface shared by all action distributions. Results are [B] unless stated otherwise."""

    def sample(self) -> Tensor:
        """Actions in buffer format, detached from the graph."""
        raise NotImplementedError

    def deterministic_actions(self) -> Tensor:
        """The most likely action (argmax / mean), in buffer format."""
        raise NotImplementedError

    def log_prob(self, actions: Tensor) -> Tensor:
        raise NotImplementedError

    def entropy(self) -> Tensor:
        raise NotImplementedError

    def kl_divergence(self, other: ActionDistribution) -> Tensor:
        """KL(self || other); `other` must be the same kind of distribution."""
        raise NotImplementedError


class CategoricalActionDistribution(ActionDistribution):
    """Categorical over n actions. action_mask [B, n]: 0 = forbidden, nonzero = allowed.

    Forbidden actions get the most negative finite logit, so their probability is exactly zero
    (they are never sampled) while everything stays finite. A row with every action forbidden
    becomes uniform.
    """

    def __init__(self, raw_logits: Tensor, action_mask: Tensor | None = None):
        if action_mask is not None:
            if action_mask.shape[-1] != raw_logits.shape[-1]:
                raise ValueError(
                    f"action_mask has width {action_mask.shape[-1]}, expected {raw_logits.shape[-1]} (one per action)"
                )
            raw_logits = raw_logits.masked_fill(action_mask == 0, torch.finfo(raw_logits.dtype).min)
        self.allowed = None if action_mask is None else action_mask != 0
        self.log_probs = F.log_softmax(raw_logits, dim=-1)
        self.probs = self.log_probs.exp()

    def sample(self) -> Tensor:
        probs = self.probs.detach()
        flat = probs.reshape(-1, probs.shape[-1])
        return torch.multinomial(flat, 1).reshape(probs.shape[:-1])

    def deterministic_actions(self) -> Tensor:
        return self.log_probs.argmax(dim=-1)

    def log_prob(self, actions: Tensor) -> Tensor:
        return self.log_probs.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)

    def entropy(self) -> Tensor:
        # where(): 0 * log(0) is 0 here, while masked log_probs are huge negative numbers
        p_log_p = torch.where(self.probs > 0, self.probs * self.log_probs, torch.zeros_like(self.probs))
        return -p_log_p.sum(dim=-1)

    def symmetric_kl_with_uniform_prior(self) -> Tensor:
        """KL(u || p) + KL(p || u) for u uniform over the allowed actions: -mean(log p) - H(p)."""
        if self.allowed is None:
            mean_log_p = self.log_probs.mean(dim=-1)
        else:
            allowed = self.allowed.to(self.log_probs.dtype)
            count = allowed.sum(dim=-1).clamp(min=1.0)
            mean_log_p = torch.where(self.allowed, self.log_probs, torch.zeros_like(self.log_probs)).sum(-1) / count
        return -mean_log_p - self.entropy()

    def kl_divergence(self, other: CategoricalActionDistribution) -> Tensor:
        terms = self.probs * (self.log_probs - other.log_probs)
        return torch.where(self.probs > 0, terms, torch.zeros_like(terms)).sum(dim=-1)


class _ProductDistribution(ActionDistribution):
    """Independent components; actions are split into column groups, log-probs etc. are summed."""

    def __init__(self, components: Sequence[ActionDistribution], action_widths: Sequence[int]):
        self.components = list(components)
        self.action_widths = list(action_widths)

    def _split_actions(self, actions: Tensor) -> list[Tensor]:
        return list(actions.split(self.action_widths, dim=-1))

    def log_prob(self, actions: Tensor) -> Tensor:
        parts = self._split_actions(actions)
        return sum(self._component_log_prob(d, a) for d, a in zip(self.components, parts))

    def _component_log_prob(self, dist: ActionDistribution, actions: Tensor) -> Tensor:
        raise NotImplementedError

    def entropy(self) -> Tensor:
        return sum(d.entropy() for d in self.components)

    def symmetric_kl_with_uniform_prior(self) -> Tensor:
        return sum(d.symmetric_kl_with_uniform_prior() for d in self.components)

    def kl_divergence(self, other: _ProductDistribution) -> Tensor:
        return sum(d.kl_divergence(o) for d, o in zip(self.components, other.components))


class MultiCategoricalActionDistribution(_ProductDistribution):
    """One independent Categorical per MultiDiscrete component. Actions [B, k] int64.

    action_mask, if given, is [B, sum(nvec)]: the components' masks side by side.
    """

    def __init__(self, raw_logits: Tensor, nvec: Sequence[int], action_mask: Tensor | None = None):
        nvec = [int(n) for n in nvec]
        logits = raw_logits.split(nvec, dim=-1)
        if action_mask is None:
            masks = [None] * len(nvec)
        elif action_mask.shape[-1] == sum(nvec):
            masks = action_mask.split(nvec, dim=-1)
        else:
            raise ValueError(f"action_mask has width {action_mask.shape[-1]}, expected sum(nvec) = {sum(nvec)}")
        super().__init__([CategoricalActionDistribution(lg, m) for lg, m in zip(logits, masks)], [1] * len(nvec))

    def _component_log_prob(self, dist, actions):
        return dist.log_prob(actions.squeeze(-1))

    def sample(self) -> Tensor:
        return torch.stack([d.sample() for d in self.components], dim=-1)

    def deterministic_actions(self) -> Tensor:
        return torch.stack([d.deterministic_actions() for d in self.components], dim=-1)


class DiagGaussianActionDistribution(ActionDistribution):
    """Gaussian with diagonal covariance; raw_logits = [mean (d), log_std (d)], actions [B, d]."""

    def __init__(self, raw_logits: Tensor):
        self.mean, log_std = raw_logits.chunk(2, dim=-1)
        self.log_std = log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)
        self.std = self.log_std.exp()

    def sample(self) -> Tensor:
        with torch.no_grad():
            return self.mean + self.std * torch.randn_like(self.mean)

    def deterministic_actions(self) -> Tensor:
        return self.mean

    def log_prob(self, actions: Tensor) -> Tensor:
        z = (actions - self.mean) / self.std
        return (-0.5 * z.square() - self.log_std - _LOG_SQRT_2PI).sum(dim=-1)

    def entropy(self) -> Tensor:
        return (0.5 + _LOG_SQRT_2PI + self.log_std).sum(dim=-1)

    def kl_divergence(self, other: DiagGaussianActionDistribution) -> Tensor:
        var_ratio = (self.std / other.std).square()
        mean_term = ((self.mean - other.mean) / other.std).square()
        return (0.5 * (var_ratio + mean_term - 1.0) - torch.log(self.std / other.std)).sum(dim=-1)


class TupleActionDistribution(_ProductDistribution):
    """Independent components of a Tuple space; actions [B, W] float32 (see module docstring)."""

    def __init__(self, action_space: gym.spaces.Tuple, raw_logits: Tensor):
        spaces = action_space.spaces
        param_widths = [calc_num_action_parameters(space) for space in spaces]
        components = [
            get_action_distribution(space, logits) for space, logits in zip(spaces, raw_logits.split(param_widths, -1))
        ]
        super().__init__(components, [_buffer_width(space) for space in spaces])
        self.component_shapes = [action_buffer_spec(space)[0] for space in spaces]

    def _component_log_prob(self, dist, actions):
        return dist.log_prob(actions.squeeze(-1) if isinstance(dist, CategoricalActionDistribution) else actions)

    def _to_buffer(self, actions: Sequence[Tensor]) -> Tensor:
        columns = [a.float().reshape(*a.shape[: a.dim() - len(s)], -1) for a, s in zip(actions, self.component_shapes)]
        return torch.cat(columns, dim=-1)

    def sample(self) -> Tensor:
        return self._to_buffer([d.sample() for d in self.components])

    def deterministic_actions(self) -> Tensor:
        return self._to_buffer([d.deterministic_actions() for d in self.components])


def get_action_distribution(
    action_space: gym.Space, raw_logits: Tensor, action_mask: Tensor | None = None
) -> ActionDistribution:
    """Distribution over `action_space` from raw_logits [B, P]; action_mask only for discrete spaces."""
    if isinstance(action_space, gym.spaces.Discrete):
        return CategoricalActionDistribution(raw_logits, action_mask)
    if isinstance(action_space, gym.spaces.MultiDiscrete):
        return MultiCategoricalActionDistribution(raw_logits, action_space.nvec, action_mask)

    if action_mask is not None:
        raise ValueError(
            f"action_mask is only supported for Discrete and MultiDiscrete action spaces, not {action_space}"
        )
    if isinstance(action_space, gym.spaces.Box):
        return DiagGaussianActionDistribution(raw_logits)
    if isinstance(action_space, gym.spaces.Tuple):
        return TupleActionDistribution(action_space, raw_logits)
    raise NotImplementedError(f"action space {action_space} is not supported")
