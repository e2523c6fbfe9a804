"""A task only a policy with memory solves: recall a cue shown several steps earlier.

At step 0 the observation shows one of two cues; then `delay` blank steps; then a query step
where action == cue earns +1 and anything else -1. A feed-forward policy sees the same query
observation whatever the cue was, so its expected return is 0; a recurrent one reaches 1.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np


class CueMemoryEnv(gym.Env):
    def __init__(self, delay: int = 5):
        self.delay = delay
        # [cue is A, cue is B, this is the query step]
        self.observation_space = gym.spaces.Box(0.0, 1.0, shape=(3,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self._cue = 0
        self._t = 0

    def _obs(self) -> np.ndarray:
        obs = np.zeros(3, np.float32)
        if self._t == 0:
            obs[self._cue] = 1.0
        if self._t == self.delay + 1:
            obs[2] = 1.0
        return obs

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self._cue = int(self.np_random.integers(2))
        self._t = 0
        return self._obs(), {}

    def step(self, action):
        if self._t == self.delay + 1:
            reward = 1.0 if int(action) == self._cue else -1.0
            return self._obs(), reward, True, False, {}
        self._t += 1
        return self._obs(), 0.0, False, False, {}


def make_cue_memory_env(full_env_name, cfg=None, env_config=None, render_mode=None):
    return CueMemoryEnv()
