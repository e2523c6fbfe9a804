"""The policy head: core output -> the raw distribution parameters and the distribution.

sample-factory 2.x's import path for these classes; `ActorCritic.get_action_parameterization`
chooses one.
"""

from __future__ import annotations

import math

import gymnasium as gym
import torch
from torch import Tensor, nn

from sample_factory.model.action_distributions import (
    ActionDistribution,
    _check_box,
    calc_num_action_parameters,
    get_action_distribution,
    is_continuous_action_space,
)


class ActionsParameterization(nn.Module):
    """Base of the policy heads: forward(core_out, action_mask=None) -> (raw_logits [B, P], distribution)."""

    def __init__(self, cfg, action_space: gym.Space):
        super().__init__()
        self.cfg = cfg
        self.action_space = action_space


def squash_gaussian_means(action_space: gym.Space, raw_logits: Tensor, scale: float) -> Tensor:
    """Replace every Gaussian mean m in raw_logits by tanh(m / scale) * scale (identity if scale <= 0).

    Keeps means inside (-scale, scale) so they cannot run away from the action bounds.
    """
    if scale <= 0:
        return raw_logits
    if isinstance(action_space, gym.spaces.Box):
        mean, log_std = raw_logits.chunk(2, dim=-1)
        return torch.cat([torch.tanh(mean / scale) * scale, log_std], dim=-1)
    if isinstance(action_space, gym.spaces.Tuple):
        widths = [calc_num_action_parameters(space) for space in action_space.spaces]
        parts = raw_logits.split(widths, dim=-1)
        return torch.cat([squash_gaussian_means(s, p, scale) for s, p in zip(action_space.spaces, parts)], dim=-1)
    return raw_logits


class ActionParameterizationDefault(ActionsParameterization):
    """One linear layer from the core/decoder output to all distribution parameters [B, P]."""

    def __init__(self, cfg, core_out_size: int, action_space: gym.Space):
        super().__init__(cfg, action_space)
        self.distribution_linear = nn.Linear(core_out_size, calc_num_action_parameters(action_space))

    def forward(self, core_out: Tensor, action_mask: Tensor | None = None) -> tuple[Tensor, ActionDistribution]:
        raw_logits = self.distribution_linear(core_out)
        raw_logits = squash_gaussian_means(self.action_space, raw_logits, self.cfg.continuous_tanh_scale)
        return raw_logits, get_action_distribution(self.action_space, raw_logits, action_mask)


class ActionParameterizationContinuousNonAdaptiveStddev(ActionsParameterization):
    """Box actions: state-dependent mean, learned state-independent log_std (init log(initial_stddev)).

    raw_logits still hold [mean, log_std] so the distribution can be rebuilt from stored logits.
    """

    def __init__(self, cfg, core_out_size: int, action_space: gym.spaces.Box):
        super().__init__(cfg, action_space)
        if not is_continuous_action_space(action_space):
            raise TypeError(f"{type(self).__name__} needs a Box action space, got {action_space}")
        num_dims = _check_box(action_space)
        self.distribution_linear = nn.Linear(core_out_size, num_dims)
        self.log_std = nn.Parameter(torch.full((num_dims,), math.log(cfg.initial_stddev)))

    def forward(self, core_out: Tensor, action_mask: Tensor | None = None) -> tuple[Tensor, ActionDistribution]:
        mean = self.distribution_linear(core_out)
        log_std = self.log_std.expand_as(mean)
        raw_logits = torch.cat([mean, log_std], dim=-1)
        raw_logits = squash_gaussian_means(self.action_space, raw_logits, self.cfg.continuous_tanh_scale)
        return raw_logits, get_action_distribution(self.action_space, raw_logits, action_mask)
