"""Decoders: post-process the core output before the critic and policy heads."""

from __future__ import annotations

from torch import Tensor, nn

from sample_factory.model.model_utils import create_mlp, mlp_out_size, nonlinearity


class Decoder(nn.Module):
    """Base class of all decoders. Subclasses set `self.decoder_out_size` or override get_out_size."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.decoder_out_size = -1

    def forward(self, core_output: Tensor) -> Tensor:
        """core_output [B, H] -> [B, get_out_size()]."""
        raise NotImplementedError

    def get_out_size(self) -> int:
        return self.decoder_out_size


class MlpDecoder(Decoder):
    """MLP with cfg.decoder_mlp_layers; an empty list makes it the identity."""

    def __init__(self, cfg, input_size: int):
        super().__init__(cfg)
        self.mlp = create_mlp(cfg.decoder_mlp_layers, input_size, nonlinearity(cfg))
        self.decoder_out_size = mlp_out_size(cfg.decoder_mlp_layers, input_size)

    def forward(self, core_output: Tensor) -> Tensor:
        return self.mlp(core_output)


def make_default_decoder(cfg, input_size: int) -> Decoder:
    return MlpDecoder(cfg, input_size)


default_make_decoder_func = make_default_decoder  # sample-factory 2.x's name
