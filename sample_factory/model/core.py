"""Model cores: the (optionally recurrent) part between encoder and decoder.

RNN state convention: ONE flat float tensor per sample, [B, S].
  GRU:  S = rnn_num_layers * rnn_size, laid out [h_layer0, h_layer1, ...].
  LSTM: S = 2 * rnn_num_layers * rnn_size, laid out [h_layer0, ..., c_layer0, ...].
A core without memory has S = 0.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from sample_factory.model.gru_sequence import gru_sequence

RnnHidden = Tensor | tuple[Tensor, Tensor]  # what nn.GRU / nn.LSTM take and return


def rnn_state_size(cfg) -> int:
    """Width S of the flat RNN state of the default core; 0 when cfg.use_rnn is off."""
    if not cfg.use_rnn:
        return 0
    size = cfg.rnn_num_layers * cfg.rnn_size
    return 2 * size if cfg.rnn_type == "lstm" else size


def _reset_states(rnn_states: Tensor, resets_t: Tensor | None) -> Tensor:
    """Zero the states [B, S] of samples whose reset flag [B] is 1 (multiplication keeps autograd simple)."""
    if resets_t is None:
        return rnn_states
    return rnn_states * (1.0 - resets_t.to(rnn_states.dtype)).unsqueeze(1)


class ModelCore(nn.Module):
    """Base class of all cores. Subclasses set `self.core_output_size` or override get_out_size."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.core_output_size = -1

    def forward(self, head_output: Tensor, rnn_states: Tensor) -> tuple[Tensor, Tensor]:
        """One step: head_output [B, F], rnn_states [B, S] -> (out [B, H], new_rnn_states [B, S])."""
        raise NotImplementedError

    def forward_sequence(
        self, head_output: Tensor, rnn_states: Tensor, resets: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Many steps: head_output [T, B, F], initial rnn_states [B, S], resets [T, B] or None.

        resets[t, b] == 1 zeroes sample b's state before step t is processed (episode start).
        Returns (out [T, B, H], final rnn_states [B, S]).
        This generic version loops over steps with `forward`; subclasses may fuse the loop.
        """
        outputs = []
        for t in range(head_output.shape[0]):
            rnn_states = _reset_states(rnn_states, None if resets is None else resets[t])
            out, rnn_states = self(head_output[t], rnn_states)
            outputs.append(out)
        return torch.stack(outputs), rnn_states

    def get_out_size(self) -> int:
        return self.core_output_size


class ModelCoreRNN(ModelCore):
    """GRU or LSTM core (cfg.rnn_type) with cfg.rnn_num_layers layers of cfg.rnn_size units."""

    def __init__(self, cfg, input_size: int):
        super().__init__(cfg)
        self.is_lstm = cfg.rnn_type == "lstm"
        if cfg.rnn_type not in ("gru", "lstm"):
            raise ValueError(f"--rnn_type={cfg.rnn_type!r} is not supported; choose gru or lstm")
        rnn_cls = nn.LSTM if self.is_lstm else nn.GRU
        self.rnn = rnn_cls(input_size, cfg.rnn_size, num_layers=cfg.rnn_num_layers)
        self.num_layers = cfg.rnn_num_layers
        self.hidden_size = cfg.rnn_size
        self.core_output_size = cfg.rnn_size
        # On CPU a single-layer GRU runs through gru_sequence (faster backward, optional bf16 matmuls).
        self.fused_gru = not self.is_lstm and self.num_layers == 1
        self.matmul_dtype = torch.bfloat16 if cfg.model_bf16 else None

    def use_reference_ops(self):
        """Plain torch.nn.GRU/LSTM in float32 from here on (for ONNX export)."""
        self.fused_gru = False
        self.matmul_dtype = None

    def store_bf16_weights(self):
        """For inference on CPU with bf16 matmuls: the GRU weights are kept in bf16 (not cast on every call)."""
        if self.fused_gru and self.matmul_dtype is not None:
            self.rnn.to(self.matmul_dtype)

    def _runs_fused(self, x: Tensor) -> bool:
        return self.fused_gru and x.device.type == "cpu"

    def _unpack(self, rnn_states: Tensor) -> RnnHidden:
        """[B, S] -> [L, B, H] (GRU) or a (h, c) pair of them (LSTM)."""
        batch, width = rnn_states.shape
        expected = (2 if self.is_lstm else 1) * self.num_layers * self.hidden_size
        if width != expected:
            raise ValueError(
                f"rnn_states have width {width}, this {self.rnn.__class__.__name__} core expects {expected}"
            )

        def to_layers(flat: Tensor) -> Tensor:
            return flat.reshape(batch, self.num_layers, self.hidden_size).transpose(0, 1).contiguous()

        if self.is_lstm:
            h, c = rnn_states.chunk(2, dim=1)
            return to_layers(h), to_layers(c)
        return to_layers(rnn_states)

    @staticmethod
    def _pack_layers(layers: Tensor) -> Tensor:
        return layers.transpose(0, 1).reshape(layers.shape[1], -1)

    def _pack(self, hidden: RnnHidden) -> Tensor:
        """Inverse of `_unpack`."""
        if self.is_lstm:
            return torch.cat([self._pack_layers(hidden[0]), self._pack_layers(hidden[1])], dim=1)
        return self._pack_layers(hidden)

    def forward(self, head_output: Tensor, rnn_states: Tensor) -> tuple[Tensor, Tensor]:
        if self._runs_fused(head_output):
            out, new_states = gru_sequence(self.rnn, head_output.unsqueeze(0), rnn_states, None, self.matmul_dtype)
            return out.squeeze(0), new_states
        out, hidden = self.rnn(head_output.unsqueeze(0), self._unpack(rnn_states))
        return out.squeeze(0), self._pack(hidden)

    def forward_sequence(
        self, head_output: Tensor, rnn_states: Tensor, resets: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """See ModelCore.forward_sequence.

        A single-layer GRU on CPU is one gru_sequence call, resets included. Otherwise the
        sequence is cut at every step where any sample resets (no cut without resets); each
        segment is one nn.GRU/LSTM call, and the states of the resetting samples are zeroed
        between segments.
        """
        if self._runs_fused(head_output):
            return gru_sequence(self.rnn, head_output, rnn_states, resets, self.matmul_dtype)
        seq_len = head_output.shape[0]
        if resets is None:
            segment_starts = [0]
        else:
            reset_steps = (resets > 0).any(dim=1).nonzero().flatten().tolist()
            segment_starts = sorted({0, *reset_steps})
        segment_ends = segment_starts[1:] + [seq_len]

        outputs: list[Tensor] = []
        for start, end in zip(segment_starts, segment_ends):
            if resets is not None:
                rnn_states = _reset_states(rnn_states, resets[start])
            out, hidden = self.rnn(head_output[start:end], self._unpack(rnn_states))
            rnn_states = self._pack(hidden)
            outputs.append(out)

        out = outputs[0] if len(outputs) == 1 else torch.cat(outputs, dim=0)
        return out, rnn_states


class ModelCoreIdentity(ModelCore):
    """No memory: output = input, RNN state (size 0) passed through untouched."""

    def __init__(self, cfg, input_size: int):
        super().__init__(cfg)
        self.core_output_size = input_size

    def forward(self, head_output: Tensor, rnn_states: Tensor) -> tuple[Tensor, Tensor]:
        return head_output, rnn_states

    def forward_sequence(
        self, head_output: Tensor, rnn_states: Tensor, resets: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        return head_output, rnn_states


def make_default_core(cfg, input_size: int) -> ModelCore:
    return ModelCoreRNN(cfg, input_size) if cfg.use_rnn else ModelCoreIdentity(cfg, input_size)


default_make_core_func = make_default_core  # sample-factory 2.x's name
