"""Learning for real: CartPole is solved in every sampling mode; an RNN learns what an MLP can't."""

from __future__ import annotations

import pytest
from training import train_until

from sample_factory.cfg.arguments import parse_full_cfg, parse_sf_args
from sample_factory.envs.env_utils import register_env
from sf_examples.memory_task import make_cue_memory_env
from sf_examples.train_gym_env import parse_gym_args

pytestmark = pytest.mark.timeout(400)

CARTPOLE_GOAL = 450.0
CARTPOLE_BUDGET = 600_000


def cartpole_cfg(tmp_path, *flags):
    argv = [
        "--env=CartPole-v1",
        "--experiment=cartpole",
        f"--train_dir={tmp_path}",
        f"--train_for_env_steps={CARTPOLE_BUDGET}",
        "--report_interval_sec=1",
        "--seed=1",
        *flags,
    ]
    return parse_gym_args(argv)


@pytest.mark.parametrize(
    "mode_flags",
    [
        pytest.param(["--serial_mode=True"], id="serial"),
        pytest.param(["--serial_mode=False", "--async_rl=True"], id="parallel-async"),
        pytest.param(["--serial_mode=False", "--async_rl=False"], id="parallel-sync"),
        pytest.param(["--serial_mode=False", "--batched_sampling=True"], id="batched"),
    ],
)
def test_cartpole_reaches_450(tmp_path, mode_flags):
    cfg = cartpole_cfg(tmp_path, *mode_flags)
    result = train_until(cfg, goal_reward=CARTPOLE_GOAL)
    print(f"{mode_flags}: {result['steps_to_goal']} env steps, {result['sec_to_goal']} s to reach {CARTPOLE_GOAL}")
    assert result["status"] == 0
    assert result["steps_to_goal"] is not None, (
        f"mean return {result['policies'][0]['mean_reward']:.1f} < {CARTPOLE_GOAL}"
    )
    lag = result["policies"][0]["lag"]
    if not cfg.async_rl:
        assert lag["max"] == 0, "sync mode must be on-policy"
    assert (tmp_path / "cartpole" / "checkpoint_p0").is_dir()


# The three ways a user's script runs: one process, parallel async (the default), parallel sync.
USER_SCRIPT_MODES = [
    pytest.param(["--serial_mode=True"], id="serial"),
    pytest.param([], id="parallel-async"),
    pytest.param(["--async_rl=False"], id="parallel-sync"),
]


def make_user_cartpole(full_env_name, cfg=None, env_config=None, render_mode=None):
    import gymnasium as gym

    return gym.make("CartPole-v1", render_mode=render_mode)


def user_script_cfg(tmp_path, *flags: str):
    """What a user's script gets: gymnasium CartPole through register_env, parse_sf_args defaults + flags."""
    register_env("user_cartpole", make_user_cartpole)
    argv = ["--env=user_cartpole", "--experiment=user", f"--train_dir={tmp_path}", "--use_rnn=False"]
    argv += ["--report_interval_sec=1", "--device=cpu", *flags]
    parser, _ = parse_sf_args(argv)
    return parse_full_cfg(parser, argv)


@pytest.mark.parametrize("mode_flags", USER_SCRIPT_MODES)
def test_library_defaults_start_learning_as_fast_as_sample_factory_2(tmp_path, mode_flags):
    """A user's script on parse_sf_args defaults (ISSUE 12). sample-factory 2.1.1 reaches a 50-episode
    mean of 150 after 17k-26k env steps on these flags; before it took the same trunk initialization and
    --normalize_input default, this project needed 91k-104k (orthogonal trunk with normalized inputs: 46k).
    The mean here is over the last 100 episodes, so it lags the 50-episode figures. auto_tune keeps the
    typed 2 x 8 envs and trains on minibatches of 256: 19k-42k measured over 14 runs of the three modes
    on a noisy 2-core machine, and two async/sync runs past 45k. A full-suite run on 2026-12-05 had a mean of
    135.7 at 60k (parallel-sync; 17k-37k in three runs of it alone just after), hence the budget of 75k, still
    below the 91k-104k of the old initialization."""
    cfg = user_script_cfg(
        tmp_path, "--num_workers=2", "--num_envs_per_worker=8", "--train_for_env_steps=75000", "--seed=2", *mode_flags
    )
    result = train_until(cfg, goal_reward=150.0, min_episodes=100)
    print(f"{mode_flags}: {result['steps_to_goal']} env steps to a mean return of 150")
    assert result["status"] == 0
    assert result["steps_to_goal"] is not None, (
        f"mean return {result['policies'][0]['mean_reward']:.1f} < 150 after 75k steps"
    )


@pytest.mark.parametrize("mode_flags", USER_SCRIPT_MODES)
def test_library_defaults_solve_cartpole_within_1m_steps(tmp_path, mode_flags):
    """A user's script on parse_sf_args defaults, layout included (ISSUE 12): auto_tune picks 2 x 128
    vectorized envs and 4 minibatches of 1024 on 2 cores. Measured: the 50-episode mean passes 450 after
    364k-530k env steps in the three modes; parallel-sync over 9 runs on 2026-12-02: 426k-692k, and a CI
    run had 423 at 800k, hence the budget of 1M (sample-factory 2.1.1 on 2 x 8 envs: 180-492 at 800k)."""
    cfg = user_script_cfg(tmp_path, "--train_for_env_steps=1000000", "--stats_avg=50", "--seed=1", *mode_flags)
    result = train_until(cfg, goal_reward=450.0, min_episodes=50)
    tuned = result["runner"].cfg
    print(
        f"{mode_flags}: {result['steps_to_goal']} env steps to a 50-episode mean of 450 ({tuned.num_envs_per_worker} envs per worker)"
    )
    assert result["status"] == 0
    assert tuned.batched_sampling and tuned.num_envs_per_worker > 8, "the layout is auto_tune's"
    assert result["steps_to_goal"] is not None, (
        f"mean return {result['policies'][0]['mean_reward']:.1f} < 450 after 1M steps"
    )


def test_async_vtrace_learns_from_the_experience_of_older_policies(tmp_path):
    """Parallel async sampling goes on while the learner trains, so batches hold steps of older policy
    versions (lag >= 1) and V-trace corrects for them; the policy still learns."""
    cfg = cartpole_cfg(
        tmp_path, "--serial_mode=False", "--train_for_env_steps=300000", "--batch_size=256", "--with_vtrace=True"
    )
    result = train_until(cfg, goal_reward=200.0)
    assert result["status"] == 0
    policy = result["policies"][0]
    assert result["steps_to_goal"] is not None, f"mean return {policy['mean_reward']:.1f} < 200"
    assert policy["lag"]["max"] >= 1, "async sampling with two workers trains on older versions' steps"
    assert 0 <= policy["lag"]["min"] <= policy["lag"]["avg"] <= policy["lag"]["max"]
    assert policy["dropped_for_lag"] == 0, "the default --max_policy_lag keeps them all"


def test_two_policies_train_side_by_side(tmp_path):
    cfg = cartpole_cfg(tmp_path, "--serial_mode=False", "--num_policies=2", "--train_for_env_steps=1000000")
    result = train_until(cfg, goal_reward=150.0)
    policies = result["policies"]
    assert result["status"] == 0
    for p in policies:
        assert p["train_steps"] > 0 and p["num_episodes"] > 0
    assert result["steps_to_goal"] is not None, f"returns {[p['mean_reward'] for p in policies]}"
    for p in range(2):
        assert (tmp_path / "cartpole" / f"checkpoint_p{p}").is_dir()


def memory_cfg(tmp_path, use_rnn: bool, budget: int, rnn_type: str = "gru"):
    register_env("cue_memory", make_cue_memory_env)
    argv = [
        "--env=cue_memory",
        "--experiment=memory",
        f"--train_dir={tmp_path}",
        "--serial_mode=True",
        f"--use_rnn={use_rnn}",
        f"--rnn_type={rnn_type}",
        "--rnn_size=32",
        "--encoder_mlp_layers",
        "32",
        f"--train_for_env_steps={budget}",
        "--rollout=16",
        "--batch_size=256",
        "--num_envs_per_worker=8",
        "--num_epochs=4",
        "--learning_rate=3e-3",
        "--report_interval_sec=1",
        "--normalize_input=False",
        "--seed=3",
    ]
    return parse_gym_args(argv)


def test_gru_learns_memory_task_that_mlp_cannot(tmp_path):
    budget = 150_000
    rnn = train_until(memory_cfg(tmp_path / "rnn", use_rnn=True, budget=budget), goal_reward=0.9, min_episodes=100)
    assert rnn["steps_to_goal"] is not None, f"GRU mean return {rnn['policies'][0]['mean_reward']:.2f} < 0.9"

    # Ten times the GRU's budget: more experience does not help a policy without memory.
    mlp = train_until(memory_cfg(tmp_path / "mlp", use_rnn=False, budget=10 * rnn["steps_to_goal"]))
    assert mlp["policies"][0]["num_episodes"] > 1000
    assert mlp["policies"][0]["mean_reward"] < 0.5, "a feed-forward policy should not beat chance on this task"


def test_lstm_learns_memory_task(tmp_path):
    cfg = memory_cfg(tmp_path, use_rnn=True, budget=150_000, rnn_type="lstm")
    result = train_until(cfg, goal_reward=0.9, min_episodes=100)
    assert result["steps_to_goal"] is not None, f"LSTM mean return {result['policies'][0]['mean_reward']:.2f} < 0.9"
