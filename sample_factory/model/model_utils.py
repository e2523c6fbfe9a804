"""Small building blocks shared by encoders, cores, decoders and the actor-critic."""

from __future__ import annotations

import copy
from collections.abc import Sequence

import gymnasium as gym
import torch
from torch import nn

NONLINEARITIES = {"elu": nn.ELU, "relu": nn.ReLU, "tanh": nn.Tanh}


def nonlinearity(cfg) -> nn.Module:
    """A fresh activation module for `cfg.nonlinearity` (elu, relu or tanh)."""
    try:
        return NONLINEARITIES[cfg.nonlinearity]()
    except KeyError:
        raise ValueError(
            f"--nonlinearity={cfg.nonlinearity!r} is not supported; choose one of {sorted(NONLINEARITIES)}"
        ) from None


def mlp_out_size(layer_sizes: Sequence[int], input_size: int) -> int:
    """Output width of `create_mlp(layer_sizes, input_size, ...)`."""
    return layer_sizes[-1] if len(layer_sizes) > 0 else input_size


def create_mlp(layer_sizes: Sequence[int], input_size: int, activation: nn.Module) -> nn.Module:
    """Linear -> activation for every size in `layer_sizes`; an empty list gives nn.Identity.

    `activation` is used as a template: each layer gets its own copy.
    """
    if len(layer_sizes) == 0:
        return nn.Identity()
    layers = []
    in_size = input_size
    for size in layer_sizes:
        layers += [nn.Linear(in_size, size), copy.deepcopy(activation)]
        in_size = size
    return nn.Sequential(*layers)


def is_image_space(space: gym.Space) -> bool:
    """A 3-D Box is treated as a channels-first image (C, H, W)."""
    return isinstance(space, gym.spaces.Box) and len(space.shape) == 3


def conv_memory_format(training: bool, device: torch.device) -> torch.memory_format:
    """NHWC while training on CPU, where oneDNN's convolution backward is faster on it; NCHW
    otherwise, small inference batches being slower in NHWC (README, "Measurements behind the code")."""
    return torch.channels_last if training and device.type == "cpu" else torch.contiguous_format


INIT_METHODS = ("orthogonal", "xavier_uniform", "torch_default")


def init_layer_weights(layer: nn.Module, policy_initialization: str, gain: float) -> None:
    """Initialise the weights of one Linear/Conv/RNN layer in place; biases are set to zero.

    Meant for `module.apply(...)`: other module types are left alone, and "torch_default"
    keeps torch's own initialisation.
    """
    if policy_initialization not in INIT_METHODS:
        raise ValueError(
            f"--policy_initialization={policy_initialization!r} is not supported; choose one of {INIT_METHODS}"
        )
    if policy_initialization == "torch_default":
        return

    init_fn = nn.init.orthogonal_ if policy_initialization == "orthogonal" else nn.init.xavier_uniform_
    if isinstance(layer, (nn.Linear, nn.Conv2d)):
        init_fn(layer.weight, gain=gain)
        if layer.bias is not None:
            nn.init.zeros_(layer.bias)
    elif isinstance(layer, (nn.GRU, nn.LSTM)):
        for name, param in layer.named_parameters():
            if name.startswith("weight"):
                init_fn(param)
            elif name.startswith("bias"):
                nn.init.zeros_(param)


def zero_layer_biases(layer: nn.Module) -> None:
    """Zeroes the bias of a Linear/Conv layer, keeping torch's fan-in-scaled weights (for `apply`)."""
    if isinstance(layer, (nn.Linear, nn.Conv2d)) and layer.bias is not None:
        nn.init.zeros_(layer.bias)
