"""A small multi-agent env in the documented convention: lists in, lists out, agents reset themselves.

Two agents each see a Dict observation (`obs` and an `action_mask`) and pick one of three actions.
Each is rewarded for choosing the action its observation points to; action 2 is masked out on
odd steps, and agent 1 sits out (inactive) every third step. Episodes last 20 steps.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np


class PointingGameEnv:
    is_multiagent = True

    def __init__(self, num_agents: int = 2, episode_len: int = 20):
        self.num_agents = num_agents
        self.episode_len = episode_len
        self.observation_space = gym.spaces.Dict(
            {
                "obs": gym.spaces.Box(0.0, 1.0, shape=(3,), dtype=np.float32),
                "action_mask": gym.spaces.Box(0, 1, shape=(3,), dtype=np.int8),
            }
        )
        self.action_space = gym.spaces.Discrete(3)
        self._rng = np.random.default_rng()
        self._t = 0
        self._targets = np.zeros(num_agents, np.int64)
        self._returns = np.zeros(num_agents)

    def _mask(self) -> np.ndarray:
        mask = np.ones(3, np.int8)
        if self._t % 2 == 1:
            mask[2] = 0
        return mask

    def _observe(self) -> list[dict]:
        mask = self._mask()
        allowed = np.flatnonzero(mask)
        self._targets = self._rng.choice(allowed, size=self.num_agents)
        obs = []
        for target in self._targets:
            one_hot = np.zeros(3, np.float32)
            one_hot[target] = 1.0
            obs.append({"obs": one_hot, "action_mask": mask.copy()})
        return obs

    def reset(self, seed=None, options=None):
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._t = 0
        self._returns[:] = 0.0
        return self._observe(), [{} for _ in range(self.num_agents)]

    def step(self, actions):
        rewards = [float(int(a) == int(t)) for a, t in zip(actions, self._targets)]
        self._returns += rewards
        self._t += 1
        done = self._t >= self.episode_len
        infos = [{} for _ in range(self.num_agents)]
        if done:
            for i, info in enumerate(infos):
                info["episode_extra_stats"] = {"hit_rate": self._returns[i] / self.episode_len}
                info["true_objective"] = self._returns[i]
            obs, _ = self.reset()
        else:
            obs = self._observe()
        if self._t % 3 == 0 and self.num_agents > 1:
            infos[1]["is_active"] = False
        return obs, rewards, [done] * self.num_agents, [False] * self.num_agents, infos

    def close(self):
        pass


def make_pointing_game(full_env_name, cfg=None, env_config=None, render_mode=None):
    return PointingGameEnv()
