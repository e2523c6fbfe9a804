"""Returns, advantages and masked statistics: pure tensor functions, no state.

Every rollout tensor here is trajectory-major, ``[B, T]``: ``B`` trajectories of ``T`` steps.
``dones[b, t] = 1`` means the episode ended after the action taken at step ``t``, so step ``t``
must not bootstrap from step ``t + 1``. ``values`` carries one extra column, ``values[:, T]``,
the value of the observation that follows the last step (the bootstrap value).
"""

from __future__ import annotations

import torch
from torch import Tensor


def _check_rollout_shapes(rewards: Tensor, dones: Tensor, values: Tensor) -> None:
    if rewards.dim() != 2:
        raise ValueError(f"rewards must be [B, T], got shape {tuple(rewards.shape)}")
    if dones.shape != rewards.shape:
        raise ValueError(f"dones must match rewards {tuple(rewards.shape)}, got {tuple(dones.shape)}")
    batch_size, rollout_len = rewards.shape
    if values.shape != (batch_size, rollout_len + 1):
        raise ValueError(
            f"values must be [B, T+1] = {(batch_size, rollout_len + 1)} (last column is the bootstrap value), "
            f"got {tuple(values.shape)}"
        )


@torch.no_grad()
def calculate_gae(
    rewards: Tensor, dones: Tensor, values: Tensor, gamma: float, gae_lambda: float
) -> tuple[Tensor, Tensor]:
    """Generalized Advantage Estimation (Schulman et al. 2016).

    Args:
        rewards: ``[B, T]``.
        dones: ``[B, T]``, 1 where the episode ended after step ``t``.
        values: ``[B, T+1]``; ``values[:, T]`` is the bootstrap value.
        gamma: discount factor.
        gae_lambda: GAE lambda; 1 gives Monte-Carlo-with-bootstrap returns, 0 one-step TD.

    Returns:
        ``(advantages [B, T], returns [B, T])`` with ``returns = advantages + values[:, :T]``.
        Both are computed without gradient.
    """
    _check_rollout_shapes(rewards, dones, values)
    rewards, values = rewards.detach(), values.detach()
    not_done = 1.0 - dones.detach().to(rewards.dtype)

    deltas = rewards + gamma * not_done * values[:, 1:] - values[:, :-1]
    advantages = torch.empty_like(rewards)
    next_advantage = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(rewards.shape[1])):
        next_advantage = deltas[:, t] + gamma * gae_lambda * not_done[:, t] * next_advantage
        advantages[:, t] = next_advantage

    returns = advantages + values[:, :-1]
    return advantages, returns


@torch.no_grad()
def calculate_vtrace(
    rewards: Tensor,
    dones: Tensor,
    values: Tensor,
    log_rhos: Tensor,
    gamma: float,
    rho_bar: float = 1.0,
    c_bar: float = 1.0,
) -> tuple[Tensor, Tensor]:
    """V-trace off-policy value targets and policy-gradient advantages (IMPALA, Espeholt et al. 2018).

    With ``rho_t = min(rho_bar, pi/mu)`` and ``c_t = min(c_bar, pi/mu)``::

        delta_t = rho_t * (r_t + gamma * (1 - d_t) * V_{t+1} - V_t)
        vs_t    = V_t + delta_t + gamma * (1 - d_t) * c_t * (vs_{t+1} - V_{t+1}),   vs_T = V_T
        pg_adv_t = rho_t * (r_t + gamma * (1 - d_t) * vs_{t+1} - V_t)

    On-policy (``log_rhos = 0``, ``rho_bar = c_bar = 1``) ``vs`` are the lambda=1 returns.

    Args:
        rewards: ``[B, T]``.
        dones: ``[B, T]``, 1 where the episode ended after step ``t``.
        values: ``[B, T+1]``, values under the learner's current policy; ``values[:, T]`` bootstraps.
        log_rhos: ``[B, T]``, ``log pi(a|s) - log mu(a|s)`` (target minus behaviour policy).
        gamma: discount factor.
        rho_bar: truncation of the importance weight in the TD error (fixes the value target's policy).
        c_bar: truncation of the trace-cutting coefficients (trades variance for contraction speed).

    Returns:
        ``(vs [B, T], pg_advantages [B, T])``, computed without gradient.
    """
    _check_rollout_shapes(rewards, dones, values)
    if log_rhos.shape != rewards.shape:
        raise ValueError(f"log_rhos must match rewards {tuple(rewards.shape)}, got {tuple(log_rhos.shape)}")
    rewards, values = rewards.detach(), values.detach()
    not_done = 1.0 - dones.detach().to(rewards.dtype)
    ratios = torch.exp(log_rhos.detach())
    rhos = torch.clamp(ratios, max=rho_bar)
    cs = torch.clamp(ratios, max=c_bar)

    discounts = gamma * not_done
    deltas = rhos * (rewards + discounts * values[:, 1:] - values[:, :-1])

    # Accumulate vs - V backwards; vs_T - V_T = 0.
    vs_minus_values = torch.empty_like(rewards)
    next_correction = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(rewards.shape[1])):
        next_correction = deltas[:, t] + discounts[:, t] * cs[:, t] * next_correction
        vs_minus_values[:, t] = next_correction
    vs = vs_minus_values + values[:, :-1]

    vs_next = torch.cat([vs[:, 1:], values[:, -1:]], dim=1)
    pg_advantages = rhos * (rewards + discounts * vs_next - values[:, :-1])
    return vs, pg_advantages


def masked_mean(x: Tensor, valids: Tensor) -> Tensor:
    """Mean of ``x`` over the entries where ``valids`` is set: ``sum(x * valids) / max(sum(valids), 1)``.

    ``valids`` is a 0/1 float or bool tensor of ``x``'s shape. Invalid entries are selected away
    rather than multiplied by zero, so a NaN or sentinel stored there cannot leak into the result.
    Returns a scalar tensor; 0 when nothing is valid.
    """
    if valids.shape != x.shape:
        raise ValueError(f"valids must have x's shape {tuple(x.shape)}, got {tuple(valids.shape)}")
    mask = valids.bool()
    total = torch.where(mask, x, torch.zeros_like(x)).sum()
    count = mask.sum().clamp(min=1).to(total.dtype)
    return total / count


def normalize_advantages(adv: Tensor, valids: Tensor, eps: float = 1e-8) -> Tensor:
    """Shift and scale ``adv`` to zero mean and unit (population) std over the valid entries.

    Args:
        adv: advantages, any shape.
        valids: 0/1 float or bool tensor of ``adv``'s shape.
        eps: added to the std so a constant batch does not divide by zero.

    Returns:
        Tensor of ``adv``'s shape; invalid entries are set to 0.
    """
    mean = masked_mean(adv, valids)
    var = masked_mean((adv - mean) ** 2, valids)
    normalized = (adv - mean) / (torch.sqrt(var) + eps)
    return torch.where(valids.bool(), normalized, torch.zeros_like(normalized))


@torch.no_grad()
def explained_variance(predicted: Tensor, target: Tensor, valids: Tensor | None = None) -> Tensor:
    """``1 - Var[target - predicted] / Var[target]`` over the valid entries, a scalar tensor.

    1 is a perfect value function, 0 is no better than predicting the mean, negative is worse.
    NaN when the target has zero variance (the ratio is undefined there).
    """
    if predicted.shape != target.shape:
        raise ValueError(f"predicted {tuple(predicted.shape)} and target {tuple(target.shape)} must match")
    if valids is None:
        valids = torch.ones_like(target, dtype=torch.bool)

    def masked_var(x: Tensor) -> Tensor:
        return masked_mean((x - masked_mean(x, valids)) ** 2, valids)

    var_target = masked_var(target)
    if var_target == 0:
        return torch.full_like(var_target, float("nan"))
    return 1.0 - masked_var(target - predicted) / var_target
