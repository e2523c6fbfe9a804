"""PPO / IMPALA losses: pure functions returning ``(loss, metrics)``.

Inputs are flat ``[N]`` tensors (any shape works as long as all inputs share it); ``valids`` is a
0/1 float or bool tensor marking the samples that count. ``loss`` is a scalar tensor carrying
gradient; ``metrics`` holds detached scalar tensors for logging.
"""

from __future__ import annotations

import torch
from torch import Tensor

from sample_factory.algo.utils.rl_utils import masked_mean


def ppo_policy_loss(
    log_prob: Tensor, old_log_prob: Tensor, advantages: Tensor, clip_ratio: float, valids: Tensor
) -> tuple[Tensor, dict[str, Tensor]]:
    """Clipped surrogate objective (Schulman et al. 2017), negated for minimisation.

    Args:
        log_prob: ``[N]``, log pi(a|s) under the policy being trained.
        old_log_prob: ``[N]``, log pi_old(a|s) under the policy that collected the data.
        advantages: ``[N]``.
        clip_ratio: epsilon; the ratio is clipped to ``[1 / (1 + eps), 1 + eps]`` (as sample-factory 2.x:
            symmetric in log space, and still a valid range for eps >= 1).
        valids: ``[N]``.

    Returns:
        ``(loss, {"clip_fraction", "approx_kl", "ratio_mean"})``. ``approx_kl`` is the
        low-variance estimator ``(ratio - 1) - log(ratio)`` of KL(pi_old || pi).
    """
    log_ratio = log_prob - old_log_prob
    ratio = torch.exp(log_ratio)

    low, high = 1.0 / (1.0 + clip_ratio), 1.0 + clip_ratio
    pg_loss1 = -advantages * ratio
    pg_loss2 = -advantages * torch.clamp(ratio, low, high)
    loss = masked_mean(torch.max(pg_loss1, pg_loss2), valids)

    with torch.no_grad():
        metrics = {
            "clip_fraction": masked_mean(((ratio > high) | (ratio < low)).to(ratio.dtype), valids),
            "approx_kl": masked_mean((ratio - 1.0) - log_ratio, valids),
            "ratio_mean": masked_mean(ratio, valids),
        }
    return loss, metrics


def value_loss(
    values: Tensor, old_values: Tensor, targets: Tensor, clip_value: float, valids: Tensor
) -> tuple[Tensor, dict[str, Tensor]]:
    """Clipped value loss ``max((v - target)^2, (v_clipped - target)^2)``, without PPO's customary 0.5:
    ``--value_loss_coeff`` scales the plain squared error, as in sample-factory 2.x.

    ``v_clipped = old_values + clamp(v - old_values, -clip_value, clip_value)`` keeps the new value
    estimate near the one the advantages were computed with; ``clip_value <= 0`` disables clipping.

    Args:
        values: ``[N]``, predictions of the value head being trained.
        old_values: ``[N]``, predictions recorded when the data was collected.
        targets: ``[N]``, value targets (GAE returns or V-trace ``vs``).
        clip_value: half-width of the trust region around ``old_values``.
        valids: ``[N]``.

    Returns:
        ``(loss, {"value_clip_fraction"})``.
    """
    value_loss_unclipped = (values - targets) ** 2
    if clip_value > 0:
        values_clipped = old_values + torch.clamp(values - old_values, -clip_value, clip_value)
        value_loss_clipped = (values_clipped - targets) ** 2
        loss = masked_mean(torch.max(value_loss_unclipped, value_loss_clipped), valids)
        with torch.no_grad():
            clipped = ((values - old_values).abs() > clip_value).to(values.dtype)
            clip_fraction = masked_mean(clipped, valids)
    else:
        loss = masked_mean(value_loss_unclipped, valids)
        clip_fraction = torch.zeros((), dtype=values.dtype, device=values.device)
    return loss, {"value_clip_fraction": clip_fraction.detach()}


def entropy_loss(entropy: Tensor, valids: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
    """Negative mean entropy ``[N] -> scalar``; minimising it encourages exploration.

    The caller multiplies by the entropy coefficient. Returns ``(loss, {"entropy"})``.
    """
    mean_entropy = masked_mean(entropy, valids)
    return -mean_entropy, {"entropy": mean_entropy.detach()}


def symmetric_kl_loss(symmetric_kl: Tensor, valids: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
    """Mean symmetric KL to the uniform policy ``[N] -> scalar`` (--exploration_loss=symmetric_kl):
    unlike the entropy bonus it grows without bound as any action's probability goes to zero.

    The caller multiplies by the exploration coefficient. Returns ``(loss, {"symmetric_kl"})``.
    """
    loss = masked_mean(symmetric_kl, valids)
    return loss, {"symmetric_kl": loss.detach()}


def kl_loss(kl: Tensor, valids: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
    """Mean of per-sample KL divergences ``[N] -> scalar``; the caller scales it.

    Returns ``(loss, {"kl"})``.
    """
    loss = masked_mean(kl, valids)
    return loss, {"kl": loss.detach()}
