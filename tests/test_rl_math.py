"""GAE, V-trace and the PPO losses against straightforward NumPy references, gradients included."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sample_factory.algo.learning.losses import entropy_loss, kl_loss, ppo_policy_loss, value_loss
from sample_factory.algo.utils.rl_utils import (
    calculate_gae,
    calculate_vtrace,
    explained_variance,
    masked_mean,
    normalize_advantages,
)

TIGHT = dict(rtol=1e-10, atol=1e-12)


def random_rollout(rng: np.random.Generator, batch_size: int, rollout_len: int, done_prob: float = 0.2):
    rewards = rng.normal(size=(batch_size, rollout_len))
    dones = (rng.random((batch_size, rollout_len)) < done_prob).astype(np.float64)
    values = rng.normal(size=(batch_size, rollout_len + 1))
    return rewards, dones, values


def to_torch(*arrays: np.ndarray) -> list[torch.Tensor]:
    return [torch.from_numpy(a) for a in arrays]


# ---------------------------------------------------------------------------------------------
# NumPy references: scalar loops, backwards over t, one trajectory at a time.


def gae_reference(rewards, dones, values, gamma, gae_lambda):
    batch_size, rollout_len = rewards.shape
    advantages = np.zeros((batch_size, rollout_len))
    for b in range(batch_size):
        next_advantage = 0.0
        for t in reversed(range(rollout_len)):
            if dones[b, t]:
                delta = rewards[b, t] - values[b, t]
                next_advantage = delta
            else:
                delta = rewards[b, t] + gamma * values[b, t + 1] - values[b, t]
                next_advantage = delta + gamma * gae_lambda * next_advantage
            advantages[b, t] = next_advantage
    return advantages, advantages + values[:, :rollout_len]


def vtrace_reference(rewards, dones, values, log_rhos, gamma, rho_bar, c_bar):
    batch_size, rollout_len = rewards.shape
    vs = np.zeros((batch_size, rollout_len))
    pg_advantages = np.zeros((batch_size, rollout_len))
    for b in range(batch_size):
        vs_next = values[b, rollout_len]  # vs_T = V_T
        for t in reversed(range(rollout_len)):
            ratio = np.exp(log_rhos[b, t])
            rho, c = min(rho_bar, ratio), min(c_bar, ratio)
            discount = 0.0 if dones[b, t] else gamma
            delta = rho * (rewards[b, t] + discount * values[b, t + 1] - values[b, t])
            vs[b, t] = values[b, t] + delta + discount * c * (vs_next - values[b, t + 1])
            pg_advantages[b, t] = rho * (rewards[b, t] + discount * vs_next - values[b, t])
            vs_next = vs[b, t]
    return vs, pg_advantages


def bootstrapped_returns_reference(rewards, dones, values, gamma):
    """Discounted reward sum up to the episode end, or up to T plus gamma^k * V_T."""
    batch_size, rollout_len = rewards.shape
    returns = np.zeros((batch_size, rollout_len))
    for b in range(batch_size):
        for t in range(rollout_len):
            total, discount = 0.0, 1.0
            for k in range(t, rollout_len):
                total += discount * rewards[b, k]
                if dones[b, k]:
                    break
                discount *= gamma
            else:
                total += discount * values[b, rollout_len]
            returns[b, t] = total
    return returns


# ---------------------------------------------------------------------------------------------
# GAE


@pytest.mark.parametrize("batch_size,rollout_len", [(1, 1), (3, 7), (5, 32)])
@pytest.mark.parametrize("gamma,gae_lambda", [(0.99, 0.95), (0.9, 1.0), (0.97, 0.0), (1.0, 0.5)])
def test_gae_matches_reference(batch_size, rollout_len, gamma, gae_lambda):
    rng = np.random.default_rng(batch_size * 1000 + rollout_len)
    rewards, dones, values = random_rollout(rng, batch_size, rollout_len)

    advantages, returns = calculate_gae(*to_torch(rewards, dones, values), gamma, gae_lambda)
    ref_advantages, ref_returns = gae_reference(rewards, dones, values, gamma, gae_lambda)

    np.testing.assert_allclose(advantages.numpy(), ref_advantages, **TIGHT)
    np.testing.assert_allclose(returns.numpy(), ref_returns, **TIGHT)


def test_gae_lambda_one_gives_bootstrapped_returns():
    rng = np.random.default_rng(0)
    rewards, dones, values = random_rollout(rng, 4, 16)
    _, returns = calculate_gae(*to_torch(rewards, dones, values), gamma=0.95, gae_lambda=1.0)
    np.testing.assert_allclose(returns.numpy(), bootstrapped_returns_reference(rewards, dones, values, 0.95), **TIGHT)


def test_gae_done_cuts_bootstrap():
    rewards = torch.tensor([[1.0, 2.0, 3.0]])
    dones = torch.tensor([[0.0, 1.0, 0.0]])
    values = torch.tensor([[0.0, 0.0, 100.0, 10.0]])
    _, returns = calculate_gae(rewards, dones, values, gamma=0.5, gae_lambda=1.0)
    # The value 100 after the terminal step and everything beyond it must not reach steps 0 and 1.
    np.testing.assert_allclose(returns.numpy(), [[1.0 + 0.5 * 2.0, 2.0, 3.0 + 0.5 * 10.0]])


def test_gae_float32_bool_dones_and_no_grad():
    rng = np.random.default_rng(1)
    rewards, dones, values = random_rollout(rng, 3, 9)
    values_t = torch.from_numpy(values).float().requires_grad_()
    advantages, returns = calculate_gae(
        torch.from_numpy(rewards).float(), torch.from_numpy(dones).bool(), values_t, 0.99, 0.95
    )
    assert advantages.dtype == torch.float32 and not advantages.requires_grad and not returns.requires_grad
    ref_advantages, _ = gae_reference(rewards, dones, values, 0.99, 0.95)
    np.testing.assert_allclose(advantages.numpy(), ref_advantages, rtol=1e-5, atol=1e-5)


def test_gae_rejects_values_without_bootstrap_column():
    with pytest.raises(ValueError, match=r"T\+1"):
        calculate_gae(torch.zeros(2, 5), torch.zeros(2, 5), torch.zeros(2, 5), 0.99, 0.95)


# ---------------------------------------------------------------------------------------------
# V-trace


@pytest.mark.parametrize("batch_size,rollout_len", [(1, 1), (3, 7), (5, 32)])
@pytest.mark.parametrize("gamma", [0.99, 0.9])
@pytest.mark.parametrize("rho_bar,c_bar", [(1.0, 1.0), (0.7, 0.5), (2.0, 1.0), (1.5, 3.0)])
def test_vtrace_matches_reference(batch_size, rollout_len, gamma, rho_bar, c_bar):
    rng = np.random.default_rng(batch_size * 1000 + rollout_len)
    rewards, dones, values = random_rollout(rng, batch_size, rollout_len)
    log_rhos = rng.normal(scale=1.0, size=(batch_size, rollout_len))
    if batch_size * rollout_len > 1:
        # Clipping must actually be exercised on both sides of the thresholds.
        ratios = np.exp(log_rhos)
        assert (ratios > min(rho_bar, c_bar)).any() and (ratios < max(rho_bar, c_bar)).any()

    vs, pg_advantages = calculate_vtrace(*to_torch(rewards, dones, values, log_rhos), gamma, rho_bar, c_bar)
    ref_vs, ref_pg_advantages = vtrace_reference(rewards, dones, values, log_rhos, gamma, rho_bar, c_bar)

    np.testing.assert_allclose(vs.numpy(), ref_vs, **TIGHT)
    np.testing.assert_allclose(pg_advantages.numpy(), ref_pg_advantages, **TIGHT)


@pytest.mark.parametrize("gamma", [0.99, 0.8])
def test_vtrace_on_policy_reduces_to_lambda_one_returns(gamma):
    rng = np.random.default_rng(2)
    rewards, dones, values = random_rollout(rng, 4, 20)
    log_rhos = np.zeros_like(rewards)

    vs, pg_advantages = calculate_vtrace(*to_torch(rewards, dones, values, log_rhos), gamma)
    advantages, returns = calculate_gae(*to_torch(rewards, dones, values), gamma, gae_lambda=1.0)

    np.testing.assert_allclose(vs.numpy(), bootstrapped_returns_reference(rewards, dones, values, gamma), **TIGHT)
    np.testing.assert_allclose(vs.numpy(), returns.numpy(), **TIGHT)
    np.testing.assert_allclose(pg_advantages.numpy(), advantages.numpy(), **TIGHT)


def test_vtrace_carries_no_gradient():
    rng = np.random.default_rng(3)
    rewards, dones, values = random_rollout(rng, 2, 5)
    values_t = torch.from_numpy(values).requires_grad_()
    log_rhos = torch.zeros(2, 5, dtype=torch.float64, requires_grad=True)
    vs, pg_advantages = calculate_vtrace(torch.from_numpy(rewards), torch.from_numpy(dones), values_t, log_rhos, 0.99)
    assert not vs.requires_grad and not pg_advantages.requires_grad


# ---------------------------------------------------------------------------------------------
# Masked statistics


def test_masked_mean_and_normalize_ignore_invalid_entries():
    x = torch.tensor([1.0, 2.0, 3.0, 1e6, float("nan")])
    valids = torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0])
    np.testing.assert_allclose(masked_mean(x, valids).item(), 2.0)
    np.testing.assert_allclose(masked_mean(x, valids.bool()).item(), 2.0)
    assert masked_mean(x, torch.zeros(5)).item() == 0.0

    normalized = normalize_advantages(x, valids)
    valid_part = np.array([1.0, 2.0, 3.0])
    expected = (valid_part - valid_part.mean()) / (valid_part.std() + 1e-8)
    np.testing.assert_allclose(normalized[:3].numpy(), expected, rtol=1e-6)
    np.testing.assert_array_equal(normalized[3:].numpy(), [0.0, 0.0])


def test_explained_variance():
    rng = np.random.default_rng(4)
    target = rng.normal(size=50)
    predicted = target + 0.3 * rng.normal(size=50)
    valids = rng.random(50) < 0.7
    expected = 1.0 - np.var(target[valids] - predicted[valids]) / np.var(target[valids])
    result = explained_variance(*to_torch(predicted, target), torch.from_numpy(valids))
    np.testing.assert_allclose(result.item(), expected, **TIGHT)
    np.testing.assert_allclose(explained_variance(*to_torch(target, target)).item(), 1.0)
    assert np.isnan(explained_variance(torch.zeros(4), torch.ones(4)).item())


# ---------------------------------------------------------------------------------------------
# PPO losses: forward and gradient against NumPy


N_SAMPLES = 64


@pytest.fixture
def batch():
    """Fixed random batch; the first quarter is invalid and holds garbage that must not matter."""
    rng = np.random.default_rng(5)
    valids = np.ones(N_SAMPLES)
    valids[: N_SAMPLES // 4] = 0.0
    rng.shuffle(valids)
    old_log_prob = rng.normal(-1.0, 0.5, N_SAMPLES)
    log_prob = old_log_prob + rng.normal(0.0, 0.3, N_SAMPLES)  # ratios roughly in [0.4, 2.5]
    advantages = rng.normal(size=N_SAMPLES)
    old_values = rng.normal(size=N_SAMPLES)
    values = old_values + rng.normal(0.0, 0.4, N_SAMPLES)
    targets = rng.normal(size=N_SAMPLES)
    invalid = valids == 0
    advantages[invalid] = 1e3
    targets[invalid] = -1e3
    return dict(
        valids=valids,
        old_log_prob=old_log_prob,
        log_prob=log_prob,
        advantages=advantages,
        old_values=old_values,
        values=values,
        targets=targets,
    )


def ppo_policy_loss_reference(log_prob, old_log_prob, advantages, clip_ratio, valids):
    """Loss and its analytic gradient with respect to log_prob."""
    ratio = np.exp(log_prob - old_log_prob)
    clipped_ratio = np.clip(ratio, 1 / (1 + clip_ratio), 1 + clip_ratio)  # sample-factory 2.x's range
    pg_loss1 = -advantages * ratio
    pg_loss2 = -advantages * clipped_ratio
    n_valid = max(valids.sum(), 1.0)
    loss = np.sum(valids * np.maximum(pg_loss1, pg_loss2)) / n_valid
    # d(ratio)/d(log_prob) = ratio; the clipped branch has zero slope once it is the larger one.
    unclipped_active = pg_loss1 >= pg_loss2
    grad = valids * np.where(unclipped_active, -advantages * ratio, 0.0) / n_valid
    return loss, grad


def value_loss_reference(values, old_values, targets, clip_value, valids):
    """Loss and its analytic gradient with respect to values."""
    n_valid = max(valids.sum(), 1.0)
    if clip_value <= 0:
        return np.sum(valids * (values - targets) ** 2) / n_valid, 2 * valids * (values - targets) / n_valid
    inside = np.abs(values - old_values) < clip_value
    values_clipped = old_values + np.clip(values - old_values, -clip_value, clip_value)
    loss_unclipped, loss_clipped = (values - targets) ** 2, (values_clipped - targets) ** 2
    loss = np.sum(valids * np.maximum(loss_unclipped, loss_clipped)) / n_valid  # no 0.5, as in sample-factory 2.x
    # Inside the trust region both branches coincide; outside, the clipped branch is flat in `values`.
    grad_per_sample = np.where(inside | (loss_unclipped >= loss_clipped), values - targets, 0.0)
    return loss, 2 * valids * grad_per_sample / n_valid


def finite_difference_grad(fn, x, eps=1e-6):
    grad = np.zeros_like(x)
    for i in range(x.size):
        step = np.zeros_like(x)
        step[i] = eps
        grad[i] = (fn(x + step) - fn(x - step)) / (2 * eps)
    return grad


@pytest.mark.parametrize("clip_ratio", [0.1, 0.2, 0.5])
def test_ppo_policy_loss_and_gradient(batch, clip_ratio):
    b = batch
    log_prob = torch.from_numpy(b["log_prob"]).requires_grad_()
    loss, metrics = ppo_policy_loss(
        log_prob, *to_torch(b["old_log_prob"], b["advantages"]), clip_ratio, torch.from_numpy(b["valids"])
    )
    loss.backward()

    ref_loss, ref_grad = ppo_policy_loss_reference(
        b["log_prob"], b["old_log_prob"], b["advantages"], clip_ratio, b["valids"]
    )
    np.testing.assert_allclose(loss.item(), ref_loss, **TIGHT)
    np.testing.assert_allclose(log_prob.grad.numpy(), ref_grad, **TIGHT)
    assert np.all(log_prob.grad.numpy()[b["valids"] == 0] == 0.0)

    # The analytic reference itself agrees with finite differences of the reference loss.
    fd_grad = finite_difference_grad(
        lambda lp: ppo_policy_loss_reference(lp, b["old_log_prob"], b["advantages"], clip_ratio, b["valids"])[0],
        b["log_prob"],
    )
    np.testing.assert_allclose(ref_grad, fd_grad, rtol=1e-6, atol=1e-8)

    valid = b["valids"] == 1
    ratio = np.exp(b["log_prob"] - b["old_log_prob"])[valid]
    assert 0.0 < metrics["clip_fraction"].item() < 1.0, "the batch should exercise clipping"
    np.testing.assert_allclose(
        metrics["clip_fraction"].item(), np.mean((ratio > 1 + clip_ratio) | (ratio < 1 / (1 + clip_ratio))), **TIGHT
    )
    np.testing.assert_allclose(metrics["approx_kl"].item(), np.mean((ratio - 1) - np.log(ratio)), **TIGHT)
    np.testing.assert_allclose(metrics["ratio_mean"].item(), np.mean(ratio), **TIGHT)
    assert all(not m.requires_grad and m.dim() == 0 for m in metrics.values())


@pytest.mark.parametrize("clip_value", [0.0, 0.2, 1.0])
def test_value_loss_and_gradient(batch, clip_value):
    b = batch
    values = torch.from_numpy(b["values"]).requires_grad_()
    loss, metrics = value_loss(
        values, *to_torch(b["old_values"], b["targets"]), clip_value, torch.from_numpy(b["valids"])
    )
    loss.backward()

    ref_loss, ref_grad = value_loss_reference(b["values"], b["old_values"], b["targets"], clip_value, b["valids"])
    np.testing.assert_allclose(loss.item(), ref_loss, **TIGHT)
    np.testing.assert_allclose(values.grad.numpy(), ref_grad, **TIGHT)
    assert np.all(values.grad.numpy()[b["valids"] == 0] == 0.0)

    fd_grad = finite_difference_grad(
        lambda v: value_loss_reference(v, b["old_values"], b["targets"], clip_value, b["valids"])[0], b["values"]
    )
    np.testing.assert_allclose(ref_grad, fd_grad, rtol=1e-6, atol=1e-8)

    valid = b["valids"] == 1
    expected_clip_fraction = (
        np.mean(np.abs(b["values"] - b["old_values"])[valid] > clip_value) if clip_value > 0 else 0.0
    )
    np.testing.assert_allclose(metrics["value_clip_fraction"].item(), expected_clip_fraction, **TIGHT)
    if clip_value == 0.2:
        assert 0.0 < expected_clip_fraction < 1.0, "the batch should exercise clipping"


def test_entropy_and_kl_losses(batch):
    rng = np.random.default_rng(6)
    valids = batch["valids"]
    entropy = torch.from_numpy(rng.random(N_SAMPLES)).requires_grad_()
    kl = torch.from_numpy(rng.random(N_SAMPLES)).requires_grad_()
    valid = valids == 1

    loss, metrics = entropy_loss(entropy, torch.from_numpy(valids))
    loss.backward()
    np.testing.assert_allclose(loss.item(), -entropy.detach().numpy()[valid].mean(), **TIGHT)
    np.testing.assert_allclose(metrics["entropy"].item(), -loss.item(), **TIGHT)
    np.testing.assert_allclose(entropy.grad.numpy(), -valids / valids.sum(), **TIGHT)

    loss, metrics = kl_loss(kl, torch.from_numpy(valids))
    loss.backward()
    np.testing.assert_allclose(loss.item(), kl.detach().numpy()[valid].mean(), **TIGHT)
    np.testing.assert_allclose(kl.grad.numpy(), valids / valids.sum(), **TIGHT)
    assert not metrics["kl"].requires_grad
