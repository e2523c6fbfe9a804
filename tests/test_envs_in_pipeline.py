"""The engine with other kinds of envs: multi-agent with masks and inactive agents, continuous actions."""

from __future__ import annotations

import pytest

from sample_factory.envs.env_utils import register_env
from sf_examples.multi_agent_example import make_pointing_game
from sf_examples.train_gym_env import parse_gym_args
from training import train_until

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize("serial", [True, False], ids=["serial", "parallel"])
def test_multi_agent_env_with_masks_trains_two_policies(tmp_path, serial):
    register_env("pointing_game", make_pointing_game)
    cfg = parse_gym_args(
        [
            "--env=pointing_game",
            f"--train_dir={tmp_path}",
            "--experiment=ma",
            f"--serial_mode={serial}",
            "--num_policies=2",
            "--num_envs_per_worker=4",
            "--rollout=16",
            "--batch_size=128",
            "--train_for_env_steps=200000",
            "--report_interval_sec=1",
        ]
    )
    # A random policy hits the target a third to half of the time (return ~8 of 20).
    result = train_until(cfg, goal_reward=16.0)
    assert result["status"] == 0
    assert result["steps_to_goal"] is not None, [p["mean_reward"] for p in result["policies"]]
    runner = result["runner"]
    for policy_id in range(2):
        assert runner.stats.extra_stats[policy_id]["hit_rate"], "episode_extra_stats reach the stats"
        assert runner.stats.true_objectives[policy_id]


def test_continuous_actions_pendulum_trains(tmp_path):
    cfg = parse_gym_args(
        [
            "--env=Pendulum-v1",
            f"--train_dir={tmp_path}",
            "--experiment=pendulum",
            "--serial_mode=True",
            "--train_for_env_steps=20000",
            "--report_interval_sec=1",
        ]
    )
    result = train_until(cfg)
    assert result["status"] == 0
    assert result["policies"][0]["num_episodes"] > 0
    assert result["policies"][0]["train_steps"] > 0
