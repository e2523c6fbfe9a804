"""The engine with other kinds of envs: multi-agent with masks and inactive agents, continuous actions."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from training import train_until

from sample_factory.envs.env_utils import register_env
from sf_examples.multi_agent_example import PointingGameEnv, make_pointing_game
from sf_examples.train_gym_env import parse_gym_args

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


class ReachTargetEnv(gym.Env):
    """Continuous control in one step: the observation is a target in [-1, 1], the reward -|action - target|.

    A random Gaussian policy (std 1) scores about -7 over the 8 steps of an episode; one that learned
    the mapping scores above -1.
    """

    observation_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    LENGTH = 8

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.steps = 0
        self.target = self.np_random.uniform(-1, 1, 1).astype(np.float32)
        return self.target, {}

    def step(self, action):
        reward = -min(abs(float(action[0]) - float(self.target[0])), 2.0)
        self.steps += 1
        self.target = self.np_random.uniform(-1, 1, 1).astype(np.float32)
        return self.target, reward, False, self.steps >= self.LENGTH, {}


def make_reach_target(full_env_name, cfg=None, env_config=None, render_mode=None):
    return ReachTargetEnv()


@pytest.mark.parametrize("serial", [True, False], ids=["serial", "parallel"])
def test_continuous_actions_learn_to_reach_a_target(tmp_path, serial):
    """Measured: the 50-episode mean passes -1.5 after ~13k env steps (serial, seed 1)."""
    register_env("reach_target", make_reach_target)
    cfg = parse_gym_args(
        [
            "--env=reach_target",
            f"--train_dir={tmp_path}",
            "--experiment=reach",
            f"--serial_mode={serial}",
            "--train_for_env_steps=80000",
            "--report_interval_sec=1",
            "--seed=1",
        ]
    )
    result = train_until(cfg, goal_reward=-1.5, min_episodes=50)
    assert result["status"] == 0
    assert result["steps_to_goal"] is not None, f"mean return {result['policies'][0]['mean_reward']:.2f} < -1.5"


def test_batched_sampling_keeps_the_final_info_of_episodes(tmp_path):
    """With same-step autoreset, `true_objective` and extra stats come from the step that ended the episode."""
    register_env("pointing_single", make_single_agent_pointing)
    cfg = parse_gym_args(
        [
            "--env=pointing_single",
            f"--train_dir={tmp_path}",
            "--experiment=batched_info",
            "--serial_mode=True",
            "--batched_sampling=True",
            "--num_envs_per_worker=4",
            "--train_for_env_steps=3000",
        ]
    )
    result = train_until(cfg)
    stats = result["runner"].stats
    assert result["status"] == 0
    assert stats.num_episodes[0] > 0
    assert len(stats.true_objectives[0]) == min(stats.num_episodes[0], cfg.stats_avg)
    assert stats.extra_stats[0]["hit_rate"]


class SingleAgentPointing(gym.Env):
    """One agent of the pointing game, as a plain gymnasium env."""

    def __init__(self):
        self.game = PointingGameEnv(num_agents=1)
        self.observation_space = gym.spaces.Box(0.0, 1.0, shape=(3,), dtype=np.float32)
        self.action_space = self.game.action_space

    def reset(self, seed=None, options=None):
        obs, infos = self.game.reset(seed=seed)
        return obs[0]["obs"], infos[0]

    def step(self, action):
        obs, rewards, terminated, truncated, infos = self.game.step([action])
        return obs[0]["obs"], rewards[0], terminated[0], truncated[0], infos[0]


def make_single_agent_pointing(full_env_name, cfg=None, env_config=None, render_mode=None):
    return SingleAgentPointing()
