"""`Learner.train` on batches built in memory: no processes, no envs, no shared buffers.

The batch is what a learner worker copies out of the trajectory slots, `[B, T+1, ...]` per field,
with actions, log-probs, values and logits from the learner's own model (a behaviour policy).
"""

from __future__ import annotations

import gymnasium as gym
import pytest
import torch

from sample_factory.algo.learning.learner import Learner
from sample_factory.cfg.arguments import default_cfg
from sample_factory.utils.attr_dict import AttrDict

pytestmark = pytest.mark.timeout(60)

OBS_SPACE = gym.spaces.Dict({"obs": gym.spaces.Box(-1.0, 1.0, (4,))})
ACTION_SPACE = gym.spaces.Discrete(2)
ENV_INFO = AttrDict(obs_space=OBS_SPACE, action_space=ACTION_SPACE, num_agents=1, frameskip=1)
TRAJECTORIES, ROLLOUT = 16, 8


def make_learner(*flags: str) -> Learner:
    torch.manual_seed(0)
    cfg = default_cfg(argv=["--use_rnn=False", "--encoder_mlp_layers", "32", "--learning_rate=1e-2", *flags])
    return Learner(cfg, ENV_INFO, policy_id=0, device=torch.device("cpu"))


@torch.no_grad()
def behaviour_batch(learner: Learner, policy_version: int = 0, seed: int = 1) -> dict:
    """Trajectories sampled by the learner's current policy; action 0 earns 1, action 1 nothing."""
    generator = torch.Generator().manual_seed(seed)
    shape = (TRAJECTORIES, ROLLOUT + 1)
    obs = torch.rand(shape + (4,), generator=generator) * 2 - 1
    model = learner.model
    model.eval()
    out = model(model.normalize_obs({"obs": obs.reshape(-1, 4)}), torch.zeros(obs.shape[0] * obs.shape[1], 1))
    model.train()
    actions = out["actions"].reshape(shape)
    return {
        "obs": {"obs": obs},
        "actions": actions,
        "log_prob_actions": out["log_prob_actions"].reshape(shape),
        "values": model.denormalize_values(out["values"]).reshape(shape),
        "action_logits": out["action_logits"].reshape(shape + (2,)),
        "rnn_states": torch.zeros(shape + (1,)),
        "rewards": (actions == 0).float(),
        "dones": torch.zeros(shape, dtype=torch.bool),
        "time_outs": torch.zeros(shape, dtype=torch.bool),
        "valids": torch.ones(shape, dtype=torch.bool),
        "policy_version": torch.full(shape, policy_version, dtype=torch.int64),
    }


def prob_of_rewarded_action(learner: Learner, batch: dict) -> float:
    with torch.no_grad():
        obs = learner.model.normalize_obs({"obs": batch["obs"]["obs"].reshape(-1, 4)})
        logits = learner.model(obs, torch.zeros(obs["obs"].shape[0], 1))["action_logits"]
    return float(torch.softmax(logits, dim=-1)[:, 0].mean())


def test_training_moves_the_policy_towards_the_rewarded_action_and_advances_the_version():
    learner = make_learner()
    before = prob_of_rewarded_action(learner, behaviour_batch(learner))
    for iteration in range(20):
        stats = learner.train(behaviour_batch(learner, policy_version=learner.state.policy_version, seed=iteration))
        assert stats["samples"] == TRAJECTORIES * ROLLOUT
    after = prob_of_rewarded_action(learner, behaviour_batch(learner))
    assert learner.state.policy_version == learner.state.train_step == 20
    assert after > before + 0.2, f"p(rewarded action) {before:.2f} -> {after:.2f}"


def test_policy_lag_is_counted_and_samples_past_max_policy_lag_are_dropped():
    learner = make_learner("--max_policy_lag=2")
    for _ in range(5):
        learner.train(behaviour_batch(learner, policy_version=learner.state.policy_version))
    batch = behaviour_batch(learner, policy_version=learner.state.policy_version - 1)
    batch["policy_version"][: TRAJECTORIES // 2] = learner.state.policy_version - 4  # too old: lag 4 > 2
    stats = learner.train(batch)
    assert (stats["lag_min"], stats["lag_max"]) == (1, 4)
    assert stats["dropped_for_lag"] == TRAJECTORIES // 2 * ROLLOUT
    assert stats["samples"] == TRAJECTORIES // 2 * ROLLOUT


def test_adv_mean_is_the_mean_advantage_of_the_trained_samples_before_normalization():
    learner = make_learner("--gamma=0", "--max_policy_lag=2")  # gamma 0: the advantage is r_t - V(s_t)
    batch = behaviour_batch(learner, policy_version=learner.state.policy_version)
    batch["policy_version"][: TRAJECTORIES // 2] = learner.state.policy_version - 4  # dropped for lag
    batch["rewards"][: TRAJECTORIES // 2] = 100.0  # would show in an unmasked mean
    kept = slice(TRAJECTORIES // 2, None)
    expected = float((batch["rewards"][kept, :ROLLOUT] - batch["values"][kept, :ROLLOUT]).mean())
    stats = learner.train(batch)
    assert stats["samples"] == TRAJECTORIES // 2 * ROLLOUT
    assert abs(expected) > 0.1, "the test needs a mean advantage far from the 0 that normalization gives"
    assert stats["adv_mean"] == pytest.approx(expected, abs=1e-5)


def test_linear_decay_takes_the_learning_rate_to_zero_over_the_budget():
    learner = make_learner("--lr_schedule=linear_decay", "--train_for_env_steps=1000")
    learner.state.env_steps = 250
    assert learner.train(behaviour_batch(learner))["lr"] == pytest.approx(1e-2 * 0.75)
    learner.state.env_steps = 1000
    assert learner.train(behaviour_batch(learner))["lr"] == 0.0


def test_kl_adaptive_schedule_shrinks_the_step_when_the_policy_moves_too_much():
    learner = make_learner("--lr_schedule=kl_adaptive_epoch", "--lr_schedule_kl_threshold=1e-6", "--num_epochs=2")
    lr = learner.train(behaviour_batch(learner))["lr"]
    assert lr < 1e-2, "a learning rate of 1e-2 moves the policy far past a KL of 2e-6"


def test_kl_loss_coeff_holds_the_policy_near_the_behaviour_policy():
    moved = {}
    for coeff in (0.0, 10.0):
        learner = make_learner(f"--kl_loss_coeff={coeff}", "--num_epochs=4")
        batch = behaviour_batch(learner)
        before = prob_of_rewarded_action(learner, batch)
        stats = learner.train(batch)
        moved[coeff] = prob_of_rewarded_action(learner, batch) - before
        assert ("kl_loss" in stats) == (coeff > 0)
    assert 0 < moved[10.0] < moved[0.0], f"change of p(rewarded action): {moved}"


@pytest.mark.parametrize("where", ["rewards", "obs"])
def test_non_finite_trajectories_are_dropped_and_the_weights_stay_finite(where):
    learner = make_learner("--normalize_input=True")
    batch = behaviour_batch(learner)
    if where == "rewards":
        batch["rewards"][3, 2] = float("nan")
        batch["rewards"][5, 0] = float("inf")
    else:
        batch["obs"]["obs"][3, 4, 1] = float("nan")
        batch["obs"]["obs"][5, 0, 0] = float("-inf")
    stats = learner.train(batch)
    assert stats["dropped_non_finite"] == 2
    assert stats["samples"] == (TRAJECTORIES - 2) * ROLLOUT
    for key, tensor in learner.model.state_dict().items():
        assert torch.isfinite(tensor).all(), f"{key} was poisoned"
    assert all(
        torch.isfinite(v).all() for s in learner.optimizer.state.values() for v in s.values() if torch.is_tensor(v)
    )


def test_a_non_finite_gradient_skips_the_step_instead_of_poisoning_the_weights():
    learner = make_learner()
    batch = behaviour_batch(learner)
    batch["log_prob_actions"][:] = float("-inf")  # ratios exp(log_prob - (-inf)) = inf: a non-finite loss
    before = {k: v.clone() for k, v in learner.model.state_dict().items()}
    stats = learner.train(batch)
    assert stats["skipped_non_finite_steps"] >= 1
    for key, tensor in learner.model.state_dict().items():
        assert torch.isfinite(tensor).all(), key
    assert all(torch.equal(before[k], v) for k, v in learner.model.state_dict().items() if "normalizer" not in k)


def test_twenty_non_finite_steps_in_a_row_stop_training_with_a_clear_error():
    from sample_factory.algo.learning.learner import MAX_NON_FINITE_STEPS_IN_A_ROW, NonFiniteTrainingError

    learner = make_learner()
    batch = behaviour_batch(learner)
    batch["log_prob_actions"][:] = float("-inf")
    before = {k: v.clone() for k, v in learner.model.state_dict().items()}
    with pytest.raises(NonFiniteTrainingError, match="SGD steps in a row had a non-finite gradient"):
        for _ in range(MAX_NON_FINITE_STEPS_IN_A_ROW):
            learner.train(batch)
    assert learner.skipped_non_finite_steps == MAX_NON_FINITE_STEPS_IN_A_ROW
    assert all(torch.equal(before[k], v) for k, v in learner.model.state_dict().items() if "normalizer" not in k)


def test_nan_sentinels_of_steps_never_written_drop_nothing():
    """The shared buffers start as NaN: the reward after the last step and inactive agents' steps stay so."""
    learner = make_learner()
    batch = behaviour_batch(learner)
    batch["rewards"][:, ROLLOUT] = float("nan")
    batch["valids"][2, 3] = False
    batch["rewards"][2, 3] = float("nan")
    stats = learner.train(batch)
    assert stats["dropped_non_finite"] == 0
    assert stats["samples"] == TRAJECTORIES * ROLLOUT - 1
