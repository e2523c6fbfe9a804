"""The learner: pure training logic (no processes, no queues), testable on a batch in memory.

`train(batch)` takes trajectories shaped `[B, T+1, ...]` (as copied out of the shared buffers),
computes GAE targets (once) or V-trace targets (each epoch, with the current model), and runs
`num_epochs` passes of minibatch SGD on the PPO clipped objective. Minibatches are made of whole sequences of
`recurrence` steps so that an RNN core is trained from its stored initial state.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch
from torch import Tensor

from sample_factory.algo.learning.losses import entropy_loss, kl_loss, ppo_policy_loss, symmetric_kl_loss, value_loss
from sample_factory.algo.utils.rl_utils import (
    calculate_gae,
    calculate_vtrace,
    explained_variance,
    masked_mean,
    normalize_advantages,
)
from sample_factory.cfg.derived import effective_recurrence
from sample_factory.cfg.policy_params import with_hyperparams
from sample_factory.model.actor_critic import create_actor_critic, rnn_state_size_for

log = logging.getLogger(__name__)


# Skipped steps one after another mean the loss itself diverged, not one bad batch.
MAX_NON_FINITE_STEPS_IN_A_ROW = 20


class NonFiniteTrainingError(RuntimeError):
    """Training cannot go on: every recent SGD step had a NaN or infinite gradient."""


@dataclass
class TrainingState:
    """Everything a checkpoint restores besides model and optimizer."""

    policy_version: int = 0
    train_step: int = 0
    env_steps: int = 0
    learning_rate: float = 0.0
    train_seconds: float = 0.0  # carried across resumes, for --train_for_seconds


class Learner:
    def __init__(self, cfg, env_info, policy_id: int, device: torch.device):
        self.cfg = cfg
        self.env_info = env_info
        self.policy_id = policy_id
        self.device = device
        self.recurrence = effective_recurrence(cfg)
        self.num_non_finite_trajectories = 0  # dropped since start (NaN/inf rewards or observations)
        self.skipped_non_finite_steps = 0  # SGD steps skipped for a non-finite gradient
        self._skipped_in_a_row = 0
        self.rnn_size = rnn_state_size_for(cfg)
        self.model = create_actor_critic(cfg, env_info.obs_space, env_info.action_space).to(device)
        self.model.train()
        self.state = TrainingState(learning_rate=cfg.learning_rate)
        self.optimizer = self._make_optimizer()

    def _make_optimizer(self) -> torch.optim.Optimizer:
        cfg = self.cfg
        betas = (cfg.adam_beta1, cfg.adam_beta2)
        return torch.optim.Adam(
            self.model.parameters(), lr=cfg.learning_rate, betas=betas, eps=cfg.adam_eps, fused=self._fused_adam
        )

    @property
    def _fused_adam(self) -> bool:
        """One kernel per step instead of a dozen passes over every parameter, with the same
        numbers (README, "Measurements behind the code")."""
        return self.device.type in ("cpu", "cuda")

    # --- learning rate ------------------------------------------------------------------------

    def _set_lr(self, lr: float):
        self.state.learning_rate = lr
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def _scheduled_lr(self) -> float:
        cfg = self.cfg
        if cfg.lr_schedule == "linear_decay":
            progress = min(1.0, self.state.env_steps / max(cfg.train_for_env_steps, 1))
            return cfg.learning_rate * max(1.0 - progress, 0.0)
        return self.state.learning_rate

    def _adapt_lr_to_kl(self, kl: float):
        """KL-adaptive schedule (as in rl_games/SF2): shrink the step when the policy moves too much."""
        cfg = self.cfg
        lr = self.state.learning_rate
        if kl > 2.0 * cfg.lr_schedule_kl_threshold:
            lr = max(lr / 1.5, cfg.lr_adaptive_min)
        elif kl < 0.5 * cfg.lr_schedule_kl_threshold:
            lr = min(lr * 1.5, cfg.lr_adaptive_max)
        self._set_lr(lr)

    @staticmethod
    def _resets_from_dones(dones: Tensor) -> Tensor:
        """State before step t is zeroed when step t-1 ended an episode (step 0 uses the stored state)."""
        resets = torch.zeros_like(dones, dtype=torch.float32)
        resets[:, 1:] = dones[:, :-1].float()
        return resets

    # --- one training iteration ----------------------------------------------------------------

    def train(self, batch: dict) -> dict:
        """One iteration on trajectories `[B, T+1, ...]`; returns scalar stats."""
        cfg = self.cfg
        device = self.device
        batch = _to_device(batch, device)
        rollout = batch["rewards"].shape[1] - 1
        num_traj = batch["rewards"].shape[0]
        batch, non_finite = _drop_non_finite_trajectories(batch)
        num_non_finite = int(non_finite.sum()) if non_finite is not None else 0
        if num_non_finite:
            self.num_non_finite_trajectories += num_non_finite
            log.warning(
                "Policy %d: %d trajectories with NaN or infinite rewards or observations dropped (%d so far)",
                self.policy_id,
                num_non_finite,
                self.num_non_finite_trajectories,
            )

        # Observations stay raw (uint8 images) until a minibatch needs them: normalizing the whole
        # batch up front would copy four times the bytes through every minibatch's indexing.
        if num_non_finite:
            self.model.obs_normalizer.update_stats({k: v[~non_finite] for k, v in batch["obs"].items()})
        else:
            self.model.obs_normalizer.update_stats(batch["obs"])
        obs = dict(batch["obs"])
        action_mask = obs.pop("action_mask", None)

        rewards = batch["rewards"][:, :rollout] * cfg.reward_scale
        rewards = rewards.clamp(-cfg.reward_clip, cfg.reward_clip)
        dones = batch["dones"][:, :rollout]
        time_outs = batch["time_outs"][:, :rollout]
        behaviour_values = batch["values"][:, :rollout]
        if cfg.value_bootstrap:
            # The obs after a truncation is not stored (the env was reset); V(s_t) stands in for V(s_{t+1}).
            rewards = rewards + cfg.gamma * behaviour_values * time_outs.float()
        dones_f = dones.float()

        lag = self.state.policy_version - batch["policy_version"][:, :rollout]
        valids = batch["valids"][:, :rollout] & (lag <= cfg.max_policy_lag)
        num_dropped_for_lag = int((batch["valids"][:, :rollout] & (lag > cfg.max_policy_lag)).sum())

        actions = batch["actions"][:, :rollout]
        old_log_prob = batch["log_prob_actions"][:, :rollout]
        rnn_states = batch["rnn_states"]
        resets_full = self._resets_from_dones(batch["dones"])

        stats = {}
        lr = self._scheduled_lr()
        if lr != self.state.learning_rate:
            self._set_lr(lr)

        if not cfg.with_vtrace:
            gae = self._gae_targets(obs, rnn_states, rewards, dones_f, behaviour_values, rollout)
        for epoch in range(cfg.num_epochs):
            if cfg.with_vtrace:
                advantages, targets, values_now = self._vtrace_targets(
                    obs, rnn_states, resets_full, action_mask, rewards, dones_f, actions, old_log_prob, rollout
                )
            else:
                advantages, targets, values_now = gae
            if epoch == 0:
                stats["explained_variance"] = float(explained_variance(values_now, targets, valids))
            if self.model.returns_normalizer is not None:
                if epoch == 0:
                    self.model.returns_normalizer.update(targets[valids])
                targets_n = self.model.normalize_values(targets)
            else:
                targets_n = targets
            old_values_n = self.model.normalize_values(behaviour_values)
            # Reported before normalization, which makes the mean 0 by construction.
            adv_mean = float(masked_mean(advantages, valids))
            advantages = normalize_advantages(advantages, valids)

            epoch_stats = self._sgd_epoch(
                dict(
                    obs=obs,
                    action_mask=action_mask,
                    rnn_states=rnn_states,
                    dones=dones,
                    actions=actions,
                    old_log_prob=old_log_prob,
                    old_logits=batch["action_logits"][:, :rollout],
                    advantages=advantages,
                    targets=targets_n,
                    old_values=old_values_n,
                    valids=valids,
                ),
                rollout,
            )
            if cfg.lr_schedule == "kl_adaptive_epoch":
                self._adapt_lr_to_kl(epoch_stats["approx_kl"])
            stats.update(epoch_stats)

        self.state.train_step += 1
        self.state.policy_version += 1
        stats.update(
            lr=self.state.learning_rate,
            num_trajectories=num_traj,
            samples=int(valids.sum()),
            dropped_for_lag=num_dropped_for_lag,
            dropped_non_finite=num_non_finite,
            skipped_non_finite_steps=self.skipped_non_finite_steps,
            lag_min=float(lag.min()),
            lag_avg=float(lag.float().mean()),
            lag_max=float(lag.max()),
            adv_mean=adv_mean,
            returns_mean=float(targets.mean()),
        )
        return stats

    @torch.no_grad()
    def _gae_targets(self, obs, rnn_states, rewards, dones_f, behaviour_values, rollout):
        """GAE from the values the behaviour policy recorded (as PPO does), bootstrapped from the
        current model's value of the last observation, the one no inference step has seen.

        Re-evaluating all T+1 observations instead would cost a third of the learner's compute.
        """
        last_obs = {k: v[:, rollout] for k, v in obs.items()}
        last_rnn = rnn_states[:, rollout, : self.rnn_size]
        values = torch.cat([behaviour_values, self.model.values_of(last_obs, last_rnn)[:, None]], dim=1)
        advantages, returns = calculate_gae(rewards, dones_f, values, self.cfg.gamma, self.cfg.gae_lambda)
        return advantages, returns, behaviour_values

    @torch.no_grad()
    def _vtrace_targets(
        self, obs, rnn_states, resets_full, action_mask, rewards, dones_f, actions, old_log_prob, rollout
    ):
        """V-trace needs the current policy on every step: all T+1 observations are re-evaluated."""
        num_traj = rewards.shape[0]
        values_n, logits = self.model.forward_sequences(
            obs, rnn_states[:, 0, : self.rnn_size], resets_full, action_mask
        )
        values = self.model.denormalize_values(values_n)
        mask = None if action_mask is None else action_mask[:, :rollout].reshape(num_traj * rollout, -1)
        dist = self.model.action_distribution(logits[:, :rollout].reshape(num_traj * rollout, -1), mask)
        log_prob = dist.log_prob(actions.reshape((num_traj * rollout,) + actions.shape[2:])).reshape(num_traj, rollout)
        vs, advantages = calculate_vtrace(
            rewards, dones_f, values, log_prob - old_log_prob, self.cfg.gamma, self.cfg.vtrace_rho, self.cfg.vtrace_c
        )
        return advantages, vs, values[:, :rollout]

    def _sgd_epoch(self, data: dict, rollout: int) -> dict:
        """One pass of minibatch SGD over `data` (tensors [B, T, ...]); returns averaged stats."""
        cfg = self.cfg
        r = self.recurrence
        num_chunks = data["actions"].shape[0] * (rollout // r)
        device = data["valids"].device

        def chunked(x: Tensor) -> Tensor:
            """[B, T, ...] -> [B * T/r, r, ...]: sequences of `recurrence` steps."""
            return x[:, :rollout].reshape((num_chunks, r) + x.shape[2:])

        obs_c = {k: chunked(v) for k, v in data["obs"].items()}
        mask_c = None if data["action_mask"] is None else chunked(data["action_mask"])
        rnn_init_c = data["rnn_states"][:, :rollout:r, : self.rnn_size].reshape(num_chunks, self.rnn_size)
        # Each sequence starts from its stored state; a done inside it resets the state after it.
        resets_c = self._resets_from_dones(chunked(data["dones"]))
        per_step = {
            k: chunked(data[k])
            for k in ("actions", "old_log_prob", "old_logits", "advantages", "targets", "old_values", "valids")
        }

        totals: dict[str, float] = {}
        num_minibatches = 0
        for idx in self._minibatch_indices(num_chunks, device):
            mb_resets = resets_c[idx]
            n = mb_resets.numel()  # steps in this minibatch
            mb_mask_c = None if mask_c is None else mask_c[idx]
            values_n, logits = self.model.forward_sequences(
                {k: v[idx] for k, v in obs_c.items()}, rnn_init_c[idx], mb_resets, mb_mask_c
            )
            mb = {k: v[idx].reshape((n,) + v.shape[2:]) for k, v in per_step.items()}
            mb_mask = None if mb_mask_c is None else mb_mask_c.reshape(n, -1)
            dist = self.model.action_distribution(logits.reshape(n, -1), mb_mask)
            valid = mb["valids"]

            policy_loss, policy_metrics = ppo_policy_loss(
                dist.log_prob(mb["actions"]), mb["old_log_prob"], mb["advantages"], cfg.ppo_clip_ratio, valid
            )
            critic_loss, critic_metrics = value_loss(
                values_n.reshape(n), mb["old_values"], mb["targets"], cfg.ppo_clip_value, valid
            )
            if cfg.exploration_loss == "symmetric_kl":
                exploration, exploration_metrics = symmetric_kl_loss(dist.symmetric_kl_with_uniform_prior(), valid)
            else:
                exploration, exploration_metrics = entropy_loss(dist.entropy(), valid)
            loss = policy_loss + cfg.value_loss_coeff * critic_loss + cfg.exploration_loss_coeff * exploration
            kl_metrics = {}
            if cfg.kl_loss_coeff > 0:
                behaviour = self.model.action_distribution(mb["old_logits"], mb_mask)
                kl, _ = kl_loss(behaviour.kl_divergence(dist), valid)
                loss = loss + cfg.kl_loss_coeff * kl
                kl_metrics["kl_loss"] = kl.detach()

            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.max_grad_norm > 0:
                grad_norm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.max_grad_norm))
            else:
                grad_norm = _grad_norm(self.model.parameters())
            if math.isfinite(grad_norm):
                self.optimizer.step()
                self._skipped_in_a_row = 0
            else:  # a NaN or infinite gradient would poison every weight it touches
                self.skipped_non_finite_steps += 1
                self._skipped_in_a_row += 1
                log.warning("Policy %d: non-finite gradient, SGD step skipped", self.policy_id)
                if self._skipped_in_a_row >= MAX_NON_FINITE_STEPS_IN_A_ROW:
                    raise NonFiniteTrainingError(
                        f"{self._skipped_in_a_row} SGD steps in a row had a non-finite gradient: training diverged"
                        f" (the weights are those before; try a lower --learning_rate or --max_grad_norm)"
                    )

            mb_stats = {
                "loss": float(loss.detach()),
                "policy_loss": float(policy_loss.detach()),
                "value_loss": float(critic_loss.detach()),
                "grad_norm": grad_norm,
                **{k: float(v) for k, v in policy_metrics.items()},
                **{k: float(v) for k, v in critic_metrics.items()},
                **{k: float(v) for k, v in exploration_metrics.items()},
                **{k: float(v) for k, v in kl_metrics.items()},
            }
            if cfg.lr_schedule == "kl_adaptive_minibatch":
                self._adapt_lr_to_kl(mb_stats["approx_kl"])
            for k, v in mb_stats.items():
                totals[k] = totals.get(k, 0.0) + v
            num_minibatches += 1
        return {k: v / num_minibatches for k, v in totals.items()}

    def _minibatch_indices(self, num_chunks: int, device: torch.device) -> list[Tensor | slice]:
        """Chunk indices of each minibatch; a minibatch of every chunk is a slice, so that indexing
        it is a view, not a copy of the batch (its order does not change the gradient)."""
        chunks_per_minibatch = max(1, self.cfg.batch_size // self.recurrence)
        if chunks_per_minibatch >= num_chunks:
            return [slice(None)]
        if self.cfg.shuffle_minibatches:
            order = torch.randperm(num_chunks, device=device)
        else:
            order = torch.arange(num_chunks, device=device)
        return list(order.split(chunks_per_minibatch))

    # --- state for checkpoints ----------------------------------------------------------------

    def state_dict(self) -> dict:
        """One object with everything needed to continue training (normalizers live in the model)."""
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "training_state": dict(self.state.__dict__),
            "torch_rng_state": torch.get_rng_state(),
        }

    def load_weights(self, state: dict):
        """Model (normalizer statistics included) and optimizer state, from a checkpoint or another policy."""
        self.model.load_state_dict(state["model"])
        if "optimizer" in state:
            self.optimizer.load_state_dict(state["optimizer"])
        for group in self.optimizer.param_groups:  # the saved groups carry how the old run stepped
            group["fused"], group["foreach"] = self._fused_adam, None

    def set_hyperparams(self, params: dict[str, float]):
        """This policy's own values of the tunable hyper-parameters (cfg/policy_params.py), from now on."""
        self.cfg = with_hyperparams(self.cfg, params)
        if "learning_rate" in params:
            self._set_lr(float(params["learning_rate"]))
            self._set_lr(self._scheduled_lr())

    def load_state_dict(self, state: dict):
        self.load_weights(state)
        known = set(TrainingState.__dataclass_fields__)
        self.state = TrainingState(**{k: v for k, v in state["training_state"].items() if k in known})
        # Only the KL-adaptive schedules carry their learning rate over, unless one is typed now.
        adaptive = self.cfg.lr_schedule.startswith("kl_adaptive")
        if not adaptive or "learning_rate" in self.cfg.cli_args:
            self.state.learning_rate = self.cfg.learning_rate
        self._set_lr(self._scheduled_lr())
        if "torch_rng_state" in state:
            torch.set_rng_state(state["torch_rng_state"].cpu())


def _drop_non_finite_trajectories(batch: dict) -> tuple[dict, Tensor | None]:
    """Trajectories holding a NaN or infinite reward or float observation at a valid step are marked
    invalid and their float fields zeroed (a NaN, even masked, spreads through GAE and the
    normalizers). Steps never written (the reward after the last step, inactive agents) hold NaN
    sentinels and are not looked at. Returns the batch and the [B] mask of dropped ones (None when
    all are finite: no copies)."""
    rollout = batch["rewards"].shape[1] - 1
    valids = batch["valids"][:, :rollout]
    # the observation after the last step is the bootstrap one: always written
    obs_valids = torch.cat([valids, torch.ones_like(valids[:, :1])], dim=1)
    checked = [(batch["rewards"][:, :rollout], valids)]
    checked += [(v, obs_valids) for v in batch["obs"].values() if v.is_floating_point()]

    def bad_steps(t: Tensor, mask: Tensor) -> Tensor:
        return (~torch.isfinite(t)).reshape(t.shape[0], t.shape[1], -1).any(dim=2) & mask

    bad = torch.zeros(valids.shape[0], dtype=torch.bool, device=valids.device)
    for t, mask in checked:
        bad |= bad_steps(t, mask).any(dim=1)
    if not bool(bad.any()):
        return batch, None

    def zeroed(t: Tensor) -> Tensor:
        if not t.is_floating_point():
            return t
        mask = bad.reshape((-1,) + (1,) * (t.dim() - 1))
        return torch.where(mask, torch.zeros((), dtype=t.dtype, device=t.device), t)

    cleaned = {k: zeroed(v) for k, v in batch.items() if k not in ("obs", "valids")}
    cleaned["obs"] = {k: zeroed(v) for k, v in batch["obs"].items()}
    cleaned["valids"] = batch["valids"] & ~bad[:, None]
    return cleaned, bad


def _to_device(batch: dict, device: torch.device) -> dict:
    out = {}
    for k, v in batch.items():
        out[k] = _to_device(v, device) if isinstance(v, dict) else v.to(device, non_blocking=True)
    return out


def _grad_norm(parameters) -> float:
    norms = [p.grad.detach().norm() for p in parameters if p.grad is not None]
    if not norms:
        return 0.0
    return float(torch.linalg.vector_norm(torch.stack(norms)))
