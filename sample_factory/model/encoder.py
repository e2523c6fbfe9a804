"""Encoders: turn a (normalized) observation into a flat feature vector.

`MlpEncoder` and `ConvEncoder` encode one tensor; `MultiInputEncoder` (the default) encodes a
dict observation with one of them per key and concatenates the features.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor, nn

from sample_factory.algo.utils.torch_utils import calc_num_elements
from sample_factory.model.model_utils import (
    conv_memory_format,
    create_mlp,
    is_image_space,
    mlp_out_size,
    nonlinearity,
)

ACTION_MASK_KEY = "action_mask"


class Encoder(nn.Module):
    """Base class of all encoders. Subclasses set `self.encoder_out_size` or override get_out_size.

    Image observations reach an encoder as float tensors [B, C, H, W], contiguous in that layout
    (a user's encoder may `.view()` them). An encoder that sets `accepts_channels_last = True`
    (the library's own) may get them in channels_last memory instead, the layout its convolutions
    run fastest in on a CPU.
    """

    accepts_channels_last: bool = False

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.encoder_out_size = -1

    def forward(self, obs_dict: dict[str, Tensor]) -> Tensor:
        """obs_dict values have a batch dim B; returns features [B, get_out_size()]."""
        raise NotImplementedError

    def get_out_size(self) -> int:
        return self.encoder_out_size


class MlpEncoder(Encoder):
    """Flattens one observation tensor [B, *shape] and runs cfg.encoder_mlp_layers on it.

    Unlike the base-class contract, `forward` takes a single tensor: this is a building block
    of `MultiInputEncoder`.
    """

    def __init__(self, cfg, obs_shape: Sequence[int] | gym.Space):
        super().__init__(cfg)
        input_size = int(np.prod(_shape_of(obs_shape)))
        self.mlp = create_mlp(cfg.encoder_mlp_layers, input_size, nonlinearity(cfg))
        self.encoder_out_size = mlp_out_size(cfg.encoder_mlp_layers, input_size)
        self.mlp_bf16 = bool(cfg.model_bf16)

    def forward(self, obs: Tensor) -> Tensor:
        with _bf16_autocast(obs.device, self.mlp_bf16):
            x = self.mlp(obs.flatten(start_dim=1))
        return x.float()

    def use_reference_ops(self):
        self.mlp_bf16 = False

    def store_bf16_weights(self):
        if self.mlp_bf16:
            self.mlp.to(torch.bfloat16)


def _conv_simple(in_channels: int, make_activation) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(in_channels, 32, kernel_size=8, stride=4),
        make_activation(),
        nn.Conv2d(32, 64, kernel_size=4, stride=2),
        make_activation(),
        nn.Conv2d(64, 128, kernel_size=3, stride=2),
        make_activation(),
    )


def _conv_atari(in_channels: int, make_activation) -> nn.Module:
    """The convolutional trunk of the Nature DQN network (Mnih et al., 2015)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 32, kernel_size=8, stride=4),
        make_activation(),
        nn.Conv2d(32, 64, kernel_size=4, stride=2),
        make_activation(),
        nn.Conv2d(64, 64, kernel_size=3, stride=1),
        make_activation(),
    )


class ResidualBlock(nn.Module):
    """x + conv(act(conv(act(x)))), channel count preserved (IMPALA, Espeholt et al., 2018)."""

    def __init__(self, channels: int, make_activation):
        super().__init__()
        self.block = nn.Sequential(
            make_activation(),
            nn.Conv2d(channels, channels, kernel_size=3, padding=1),
            make_activation(),
            nn.Conv2d(channels, channels, kernel_size=3, padding=1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.block(x)


def _resnet_impala(in_channels: int, make_activation) -> nn.Module:
    layers: list[nn.Module] = []
    channels = in_channels
    for out_channels in (16, 32, 32):
        layers += [
            nn.Conv2d(channels, out_channels, kernel_size=3, padding=1),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
            ResidualBlock(out_channels, make_activation),
            ResidualBlock(out_channels, make_activation),
        ]
        channels = out_channels
    layers.append(make_activation())
    return nn.Sequential(*layers)


def _conv_impala(in_channels: int, make_activation) -> nn.Module:
    """The shallow IMPALA network's trunk (Espeholt et al. 2018): two conv layers, 8x8/4 and 4x4/2."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 16, 8, stride=4),
        make_activation(),
        nn.Conv2d(16, 32, 4, stride=2),
        make_activation(),
    )


CONV_ARCHITECTURES = {
    "convnet_simple": _conv_simple,
    "convnet_impala": _conv_impala,
    "convnet_atari": _conv_atari,
    "resnet_impala": _resnet_impala,
}


class ConvEncoder(Encoder):
    """Image encoder: conv trunk (cfg.encoder_conv_architecture) + MLP (cfg.encoder_conv_mlp_layers).

    `forward` takes one float tensor [B, C, H, W] (channels first) and returns [B, get_out_size()].
    """

    def __init__(self, cfg, obs_shape: Sequence[int] | gym.Space):
        super().__init__(cfg)
        obs_shape = _shape_of(obs_shape)
        arch = cfg.encoder_conv_architecture
        if arch not in CONV_ARCHITECTURES:
            raise ValueError(
                f"--encoder_conv_architecture={arch!r} is not supported; choose one of {sorted(CONV_ARCHITECTURES)}"
            )
        if len(obs_shape) != 3:
            raise ValueError(f"ConvEncoder needs a channels-first image shape (C, H, W), got {tuple(obs_shape)}")

        make_activation = functools.partial(nonlinearity, cfg)
        self.conv_head = CONV_ARCHITECTURES[arch](obs_shape[0], make_activation)
        self.mlp_bf16 = bool(cfg.model_bf16)
        self.conv_bf16 = self.mlp_bf16 or bool(cfg.encoder_conv_bf16)
        try:
            conv_out_size = calc_num_elements(self.conv_head, tuple(obs_shape))
        except RuntimeError as exc:
            raise ValueError(
                f"image observations of shape {tuple(obs_shape)} are too small for "
                f"--encoder_conv_architecture={arch}; use larger images or another architecture ({exc})"
            ) from exc
        self.mlp = create_mlp(cfg.encoder_conv_mlp_layers, conv_out_size, nonlinearity(cfg))
        self.encoder_out_size = mlp_out_size(cfg.encoder_conv_mlp_layers, conv_out_size)

    def forward(self, obs: Tensor) -> Tensor:
        obs = obs.contiguous(memory_format=conv_memory_format(self.training, obs.device))
        with _bf16_autocast(obs.device, self.conv_bf16):
            x = self.conv_head(obs).flatten(start_dim=1)
        if not self.mlp_bf16:
            x = x.float()
        with _bf16_autocast(obs.device, self.mlp_bf16):
            x = self.mlp(x)
        return x.float()

    def use_reference_ops(self):
        """Plain float32 ops from here on (for ONNX export; the weights are float32 anyway)."""
        self.conv_bf16 = self.mlp_bf16 = False

    def store_bf16_weights(self):
        """For inference on CPU: the weights of the bf16 layers are kept in bf16, which spares
        autocast casting them again on every call."""
        if self.conv_bf16:
            self.conv_head.to(torch.bfloat16)
        if self.mlp_bf16:
            self.mlp.to(torch.bfloat16)


def _bf16_autocast(device: torch.device, enabled: bool):
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled)


class MultiInputEncoder(Encoder):
    """Encodes a gymnasium Dict observation: one sub-encoder per key, features concatenated.

    3-D Box keys get a ConvEncoder, every other key is flattened into an MlpEncoder.
    The "action_mask" key is never encoded (the action distribution consumes it).
    """

    accepts_channels_last = True

    def __init__(self, cfg, obs_space: gym.spaces.Dict):
        super().__init__(cfg)
        if not isinstance(obs_space, gym.spaces.Dict):
            raise TypeError(f"MultiInputEncoder needs a gymnasium.spaces.Dict observation space, got {obs_space}")

        self.obs_keys = [key for key in obs_space.spaces if key != ACTION_MASK_KEY]
        if not self.obs_keys:
            raise ValueError(f"observation space has nothing to encode besides {ACTION_MASK_KEY!r}: {obs_space}")

        self.encoders = nn.ModuleDict()
        for key in self.obs_keys:
            space = obs_space[key]
            encoder_cls = ConvEncoder if is_image_space(space) else MlpEncoder
            self.encoders[key] = encoder_cls(cfg, space.shape)
        self.encoder_out_size = sum(enc.get_out_size() for enc in self.encoders.values())

    def forward(self, obs_dict: dict[str, Tensor]) -> Tensor:
        features = [self.encoders[key](obs_dict[key]) for key in self.obs_keys]
        return features[0] if len(features) == 1 else torch.cat(features, dim=1)


def _shape_of(shape_or_space) -> tuple[int, ...]:
    """sample-factory 2.x passes a space where this project passes a shape: both work."""
    return tuple(getattr(shape_or_space, "shape", shape_or_space))


class ResnetEncoder(ConvEncoder):
    """sample-factory 2.x's name for the ConvEncoder with a residual trunk (`resnet_*` architectures)."""

    def __init__(self, cfg, obs_space: Sequence[int] | gym.Space):
        if not cfg.encoder_conv_architecture.startswith("resnet"):
            raise ValueError(f"ResnetEncoder needs a resnet_* architecture, got {cfg.encoder_conv_architecture!r}")
        super().__init__(cfg, obs_space)


def make_img_encoder(cfg, obs_space: Sequence[int] | gym.Space) -> Encoder:
    """The encoder of one image observation (a Box [C, H, W], or its shape): a tensor in, features out."""
    return ConvEncoder(cfg, obs_space)


def make_default_encoder(cfg, obs_space: gym.spaces.Dict) -> Encoder:
    return MultiInputEncoder(cfg, obs_space)


default_make_encoder_func = make_default_encoder  # sample-factory 2.x's name
