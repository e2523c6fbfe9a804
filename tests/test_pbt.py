"""Population-based training: the decisions as numbers, the files across a resume, and a population
of CartPole policies in which the two that cannot learn take the weights of the two that can."""

from __future__ import annotations

import json
import random

import gymnasium as gym
import numpy as np
import pytest
from training import train_until

from sample_factory.cfg.policy_params import TUNABLE_HYPERPARAMS, read_hyperparams, write_reward_shaping
from sample_factory.envs.env_utils import RewardShapingInterface, register_env
from sample_factory.pbt.population_based_training import (
    MUTATION_BOUNDS,
    PopulationBasedTraining,
    fraction_size,
    gap_allows_replacement,
    history_path,
    is_top,
    mutated,
    perturbed,
    ranked,
    replacement_for,
)
from sample_factory.train import make_runner
from sf_examples.train_gym_env import parse_gym_args

pytestmark = pytest.mark.timeout(400)


# --- the decisions ---------------------------------------------------------------------------


def test_ranking_is_best_first_and_ties_go_to_the_lower_id():
    assert ranked({0: 1.0, 1: 5.0, 2: 3.0, 3: 5.0}) == [1, 3, 2, 0]


@pytest.mark.parametrize("num, fraction, size", [(4, 0.3, 2), (4, 0.25, 1), (8, 0.3, 3), (2, 0.3, 1), (1, 0.3, 0)])
def test_the_top_and_bottom_fractions_hold_at_least_one_policy_and_never_overlap(num, fraction, size):
    assert fraction_size(num, fraction) == size


def test_a_replacement_needs_both_the_relative_and_the_absolute_gap():
    assert gap_allows_replacement(100.0, 80.0, relative_gap=0.1, absolute_gap=5.0)
    assert not gap_allows_replacement(100.0, 95.0, relative_gap=0.1, absolute_gap=1.0), "5 % < 10 %"
    assert not gap_allows_replacement(1.0, 0.5, relative_gap=0.1, absolute_gap=1.0), "0.5 < 1 absolute"
    assert gap_allows_replacement(-10.0, -20.0, relative_gap=0.5, absolute_gap=1.0), "relative to |better|"
    assert not gap_allows_replacement(50.0, 50.0, relative_gap=0.0, absolute_gap=0.0), "a tie replaces nobody"


def test_only_the_bottom_fraction_is_replaced_and_only_by_the_top_fraction():
    objectives = {0: 10.0, 1: 500.0, 2: 20.0, 3: 450.0}
    rng = random.Random(0)
    sources = {replacement_for(0, objectives, 0.3, 0.1, 1.0, rng) for _ in range(50)}
    assert sources == {1, 3}
    assert all(replacement_for(2, objectives, 0.3, 0.1, 1.0, rng) in (1, 3) for _ in range(20))
    assert replacement_for(1, objectives, 0.3, 0.1, 1.0, rng) is None, "the best is never replaced"
    assert replacement_for(3, objectives, 0.3, 0.1, 1.0, rng) is None
    assert replacement_for(0, {0: 499.0, 1: 500.0}, 0.3, 0.1, 1.0, rng) is None, "gap too small"
    assert is_top(1, objectives, 0.3) and is_top(3, objectives, 0.3) and not is_top(2, objectives, 0.3)


def test_mutations_multiply_or_divide_by_a_factor_from_the_range_and_stay_in_bounds():
    rng = random.Random(1)
    start = {"learning_rate": 1e-3, "value_loss_coeff": 0.5, "gamma": 0.99, "ppo_clip_ratio": 0.2, "zero": 0.0}
    once = mutated(start, 1.0, 1.1, 1.5, rng)
    for name in ("learning_rate", "value_loss_coeff", "ppo_clip_ratio"):
        ratio = once[name] / start[name]
        assert 1.1 <= ratio <= 1.5 or 1.1 <= 1 / ratio <= 1.5, (name, ratio)
    horizon_ratio = (1 - once["gamma"]) / (1 - start["gamma"])
    assert 1.1 <= horizon_ratio <= 1.5 or 1.1 <= 1 / horizon_ratio <= 1.5, "gamma mutates through 1 - gamma"
    assert once["zero"] == 0.0, "a term not in use stays unused"
    assert mutated(start, 0.0, 1.1, 1.5, rng) == start

    values = dict(start)
    for _ in range(2000):
        values = mutated(values, 1.0, 1.5, 2.0, rng)
        for name, (low, high) in MUTATION_BOUNDS.items():
            if name in values:
                assert low <= values[name] <= high, (name, values[name])
    assert perturbed("gamma", 0.9999, 2.0, up=False) <= MUTATION_BOUNDS["gamma"][1] < 1.0


# --- in a run ----------------------------------------------------------------------------------

BAD_LR = 1e-8  # CartPole's return stays near a random policy's (~22) for the whole run


def population_cfg(tmp_path, *flags):
    return parse_gym_args(
        [
            "--env=CartPole-v1",
            "--experiment=population",
            f"--train_dir={tmp_path}",
            "--num_policies=4",
            "--with_pbt=True",
            "--pbt_period_env_steps=20000",
            "--pbt_start_mutation=0",
            "--pbt_replace_reward_gap=0.2",
            "--pbt_replace_reward_gap_absolute=20",
            f'--policy_hyperparams={{"0": {{"learning_rate": {BAD_LR}}}, "1": {{"learning_rate": {BAD_LR}}}}}',
            "--use_rnn=False",
            "--device=cpu",
            "--report_interval_sec=1",
            "--seed=1",
            *flags,
        ]
    )


def history(tmp_path, policy_id, experiment="population"):
    return json.loads(history_path(tmp_path / experiment, policy_id).read_text())["history"]


@pytest.mark.parametrize(
    "mode_flags",
    [
        pytest.param(["--serial_mode=False"], id="parallel"),
        pytest.param(["--serial_mode=False", "--batched_sampling=True"], id="batched"),
    ],
)
def test_the_policies_that_cannot_learn_take_the_weights_of_those_that_can(tmp_path, mode_flags):
    result = train_until(population_cfg(tmp_path, "--train_for_env_steps=400000", *mode_flags))
    assert result["status"] == 0
    for bad in (0, 1):
        replaced = [e for e in history(tmp_path, bad) if "replaced_by" in e]
        assert replaced, f"policy {bad} was never replaced: {history(tmp_path, bad)}"
        first = replaced[0]
        assert first["objective"] < 60, first
    for policy_id in range(4):
        for event in history(tmp_path, policy_id):
            if "replaced_by" in event:
                assert event["source_objective"] > event["objective"] + 20, "replaced by a better one only"
    returns = [p["mean_reward"] for p in result["policies"]]
    assert min(returns) > 200, f"every policy should end far above what BAD_LR reaches: {returns}"
    for bad in (0, 1):
        lr = read_hyperparams(tmp_path / "population", bad)["learning_rate"]
        assert lr > 100 * BAD_LR, "a replaced policy takes the hyper-parameters of its source"


def test_a_resumed_population_keeps_its_hyperparameters_and_history(tmp_path):
    first = population_cfg(
        tmp_path, "--serial_mode=True", "--train_for_env_steps=120000", "--pbt_mutation_rate=1.0", "--num_workers=1"
    )
    assert train_until(first)["status"] == 0
    exp = tmp_path / "population"
    params_before = [read_hyperparams(exp, p) for p in range(4)]
    history_before = [history(tmp_path, p) for p in range(4)]
    assert any(history_before), "no PBT update happened in the first run"
    assert any(params_before[p] != params_before[0] for p in range(1, 4))
    assert set(params_before[0]) == set(TUNABLE_HYPERPARAMS)

    seen = {}

    def learning_rates_at_start(runner):
        seen.setdefault("lr", [learner.learner.state.learning_rate for learner in runner.learners])

    # No update in the resumed run: what it trains with can only come from the files.
    resumed = population_cfg(
        tmp_path,
        "--serial_mode=True",
        "--train_for_env_steps=160000",
        "--num_workers=1",
        "--pbt_period_env_steps=1000000000",
    )
    _, runner = make_runner(resumed)
    runner.init()
    (pbt,) = [o for o in runner.observers if isinstance(o, PopulationBasedTraining)]
    assert [r.history for r in pbt.records] == history_before
    runner.report_callbacks.append(learning_rates_at_start)
    assert runner.run() == 0
    for p in range(4):
        assert seen["lr"][p] == pytest.approx(params_before[p]["learning_rate"]), p
        assert read_hyperparams(exp, p) == params_before[p]
        assert history(tmp_path, p) == history_before[p]


# --- reward shaping --------------------------------------------------------------------------

EPISODE_LEN = 8


class BonusEnv(gym.Env, RewardShapingInterface):
    """Episodes of EPISODE_LEN steps; every step rewards the `bonus` coefficient of its shaping."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self):
        self.bonus, self.steps = 1.0, 0

    def get_default_reward_shaping(self):
        return {"bonus": 1.0}

    def set_reward_shaping(self, reward_shaping, agent_idx):
        self.bonus = reward_shaping["bonus"]

    def reset(self, seed=None, options=None):
        self.steps = 0
        return np.zeros(2, np.float32), {}

    def step(self, action):
        self.steps += 1
        return np.zeros(2, np.float32), self.bonus, self.steps >= EPISODE_LEN, False, {}


def make_bonus_env(full_env_name, cfg=None, env_config=None, render_mode=None):
    return BonusEnv()


def bonus_cfg(tmp_path, experiment: str, *flags):
    register_env("bonus_env", make_bonus_env)
    return parse_gym_args(
        [
            "--env=bonus_env",
            f"--experiment={experiment}",
            f"--train_dir={tmp_path}",
            "--with_pbt=True",
            f"--rollout={EPISODE_LEN}",  # a policy takes over an env exactly when its episode starts
            "--batch_size=64",
            "--num_workers=1",
            "--num_envs_per_worker=8",
            "--auto_tune=False",
            "--device=cpu",
            *flags,
        ]
    )


@pytest.mark.parametrize("mode_flags", [["--serial_mode=True"], ["--serial_mode=True", "--batched_sampling=True"]])
def test_each_policy_plays_with_its_own_reward_shaping(tmp_path, mode_flags):
    exp = tmp_path / "shaped"
    for policy_id in range(3):  # files of the experiment win over the env's defaults (as in 2.x)
        write_reward_shaping(exp, policy_id, {"bonus": float(policy_id + 1)})
    cfg = bonus_cfg(
        tmp_path,
        "shaped",
        "--num_policies=3",
        "--pbt_period_env_steps=1000000000",
        "--train_for_env_steps=20000",
        *mode_flags,
    )
    _, runner = make_runner(cfg)
    returns = {p: set() for p in range(3)}
    runner.register_episodic_stats_handler(lambda r, ep, p: returns[p].add(ep["reward"]))
    assert runner.run() == 0
    assert returns == {p: {EPISODE_LEN * (p + 1.0)} for p in range(3)}, returns


def test_mutated_reward_shaping_reaches_the_envs(tmp_path):
    cfg = bonus_cfg(
        tmp_path,
        "mutating",
        "--num_policies=2",
        "--pbt_period_env_steps=2000",
        "--pbt_start_mutation=0",
        "--pbt_mutation_rate=1.0",
        "--pbt_replace_reward_gap_absolute=1e9",  # no replacement: the mutations alone
        "--train_for_env_steps=30000",
        "--serial_mode=True",
    )
    _, runner = make_runner(cfg)
    returns = {p: set() for p in range(2)}
    runner.register_episodic_stats_handler(lambda r, ep, p: returns[p].add(round(ep["reward"], 6)))
    assert runner.run() == 0
    mutated_policies = 0
    for p in range(2):
        changes = [v for e in history(tmp_path, p, "mutating") for v in e.get("reward_shaping", {}).values()]
        bonuses = {1.0} | {new for _, new in changes}
        low, high = EPISODE_LEN * min(bonuses), EPISODE_LEN * max(bonuses)
        assert all(low - 1e-6 <= r <= high + 1e-6 for r in returns[p]), "an episode played by shaping never set"
        if len(bonuses) > 2:  # the policy on top is not mutated: its return is the larger one
            mutated_policies += 1
            # a change reaches the envs at once, so an episode may mix two: some play one whole
            whole = returns[p] & {round(EPISODE_LEN * b, 6) for b in bonuses - {1.0}}
            assert whole, "no episode played by a mutated coefficient"
    assert mutated_policies >= 1
