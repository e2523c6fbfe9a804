"""A single-layer GRU over a sequence with episode resets, fast on CPU.

`torch.nn.GRU` on CPU records every time step in the autograd graph. Its backward then
computes the recurrent weight gradient once per step, as a thin [3H, B] x [B, H] product
added into a 3H x H buffer, and at the batch sizes of RL training (16-64 sequences) that
is a memory-bound third of the learner's time. Here the backward loop carries only the
hidden-state gradient from step to step. The weight and input gradients are computed after
the loop, each as one matmul over all T*B rows.

Resets (zeroing a sequence's state before a step, at episode starts) are masks inside the
loop, so a batch with dones is still one call and not cut into segments.

The gates follow `torch.nn.GRU` exactly and the parameters are the module's own, so
checkpoints and the one-step inference path are unchanged.
"""

from __future__ import annotations

import torch
from torch import Tensor


class _GruSequence(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, h0, keep, w_ih, w_hh, b_ih, b_hh, matmul_dtype):
        seq_len, batch, _ = x.shape
        hidden = h0.shape[-1]
        mm = _matmul_in(matmul_dtype)
        gates_x = mm(x.reshape(seq_len * batch, -1), w_ih.t()).add_(b_ih).view(seq_len, batch, 3 * hidden)
        outputs = x.new_empty(seq_len, batch, hidden)
        h_prev = x.new_empty(seq_len, batch, hidden)  # each step's input state, after its reset
        r_all, z_all, n_all, hn_all = (x.new_empty(seq_len, batch, hidden) for _ in range(4))

        h = h0
        w_hh_t = w_hh.t() if matmul_dtype is None else w_hh.t().to(matmul_dtype)
        for t in range(seq_len):
            h = torch.mul(h, keep[t], out=h_prev[t]) if keep is not None else h_prev[t].copy_(h)
            gates_h = mm(h, w_hh_t).add_(b_hh)
            xr, xz, xn = gates_x[t].chunk(3, dim=1)
            hr, hz, hn = gates_h.chunk(3, dim=1)
            r = torch.sigmoid(xr + hr, out=r_all[t])
            z = torch.sigmoid(xz + hz, out=z_all[t])
            n = torch.tanh(torch.addcmul(xn, r, hn), out=n_all[t])
            hn_all[t].copy_(hn)
            # h' = n + z * (h - n), i.e. (1 - z) * n + z * h
            h = torch.addcmul(n, z, h - n, out=outputs[t])

        ctx.save_for_backward(x, keep, w_ih, w_hh, h_prev, r_all, z_all, n_all, hn_all)
        ctx.has_keep = keep is not None
        ctx.matmul_dtype = matmul_dtype
        return outputs, h.clone()

    @staticmethod
    def backward(ctx, grad_outputs, grad_h_last):
        x, keep, w_ih, w_hh, h_prev, r_all, z_all, n_all, hn_all = ctx.saved_tensors
        seq_len, batch, hidden = h_prev.shape
        grad_gates_x = x.new_empty(seq_len, batch, 3 * hidden)
        grad_gates_h = x.new_empty(seq_len, batch, 3 * hidden)
        mm = _matmul_in(ctx.matmul_dtype)
        w_hh_low = w_hh if ctx.matmul_dtype is None else w_hh.to(ctx.matmul_dtype)

        grad_h = grad_h_last.clone() if grad_h_last is not None else x.new_zeros(batch, hidden)
        for t in reversed(range(seq_len)):
            if grad_outputs is not None:
                grad_h += grad_outputs[t]
            r, z, n, hn, h = r_all[t], z_all[t], n_all[t], hn_all[t], h_prev[t]
            gx_r, gx_z, gx_n = grad_gates_x[t].chunk(3, dim=1)
            gh_r, gh_z, gh_n = grad_gates_h[t].chunk(3, dim=1)

            # through n = tanh(xn + r * hn)
            torch.mul(grad_h * (1 - z), 1 - n * n, out=gx_n)
            torch.mul(gx_n, r, out=gh_n)
            torch.mul(gx_n * hn, r * (1 - r), out=gx_r)
            gh_r.copy_(gx_r)
            # through z
            torch.mul(grad_h * (h - n), z * (1 - z), out=gx_z)
            gh_z.copy_(gx_z)

            grad_h = mm(grad_gates_h[t], w_hh_low).addcmul_(grad_h, z)
            if ctx.has_keep:
                grad_h.mul_(keep[t])

        flat_gx = grad_gates_x.view(seq_len * batch, 3 * hidden)
        flat_gh = grad_gates_h.view(seq_len * batch, 3 * hidden)
        grad_x = grad_w_ih = grad_w_hh = grad_b_ih = grad_b_hh = None
        if ctx.needs_input_grad[0]:
            grad_x = mm(flat_gx, w_ih).view_as(x)
        if ctx.needs_input_grad[3]:
            grad_w_ih = mm(flat_gx.t(), x.reshape(seq_len * batch, -1)).to(w_ih.dtype)
        if ctx.needs_input_grad[4]:
            grad_w_hh = mm(flat_gh.t(), h_prev.view(seq_len * batch, hidden)).to(w_hh.dtype)
        if ctx.needs_input_grad[5]:
            grad_b_ih = flat_gx.sum(dim=0).to(w_ih.dtype)
        if ctx.needs_input_grad[6]:
            grad_b_hh = flat_gh.sum(dim=0).to(w_hh.dtype)
        return grad_x, grad_h, None, grad_w_ih, grad_w_hh, grad_b_ih, grad_b_hh, None


def _matmul_in(dtype: torch.dtype | None):
    """a @ b with both operands cast to `dtype`, the result in a's dtype (None: no casts)."""
    if dtype is None:
        return torch.mm
    return lambda a, b: torch.mm(a.to(dtype), b.to(dtype)).to(a.dtype)


def gru_sequence(
    gru: torch.nn.GRU,
    x: Tensor,
    h0: Tensor,
    resets: Tensor | None = None,
    matmul_dtype: torch.dtype | None = None,
) -> tuple[Tensor, Tensor]:
    """x [T, B, I], h0 [B, H], resets [T, B] (1 = zero the state before step t) ->
    (outputs [T, B, H], final state [B, H]) of the single-layer `gru`.

    matmul_dtype=torch.bfloat16 runs the matmuls on bfloat16 operands (twice as fast on CPUs
    with AVX512-BF16 or AMX); the state, the gates and every result stay float32."""
    if gru.num_layers != 1 or gru.bidirectional or not gru.bias or gru.batch_first:
        raise ValueError("gru_sequence supports single-layer, unidirectional, sequence-first GRUs with biases")
    weight_dtype = gru.weight_ih_l0.dtype
    state_dtype = torch.promote_types(weight_dtype, torch.float32)  # bf16 weights: float32 states
    if matmul_dtype is None and weight_dtype != state_dtype:
        matmul_dtype = weight_dtype
    keep = None if resets is None else (1.0 - resets.to(state_dtype)).unsqueeze(-1).contiguous()
    return _GruSequence.apply(
        x.to(state_dtype).contiguous(),
        h0.to(state_dtype).contiguous(),
        keep,
        gru.weight_ih_l0,
        gru.weight_hh_l0,
        gru.bias_ih_l0,
        gru.bias_hh_l0,
        matmul_dtype,
    )
