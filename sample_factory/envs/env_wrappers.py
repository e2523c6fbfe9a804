"""Env wrappers at sample-factory 2.x's import path, with its names.

The Atari preprocessing of `sf_examples/atari` is built from the first five (NoopResetEnv,
MaxAndSkipEnv, FireResetEnv, EpisodicLifeEnv, ClipRewardEnv); the rest are the general-purpose
wrappers 2.x scripts use. All follow the gymnasium API.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

NOOP_ACTION = 0
FIRE_ACTION = 1


def has_image_observations(observation_space: gym.Space) -> bool:
    """Observations of rank 3 or more (H x W x C or C x H x W) are images."""
    return len(getattr(observation_space, "shape", None) or ()) >= 3


class NoopResetEnv(gym.Wrapper):
    """After each reset, a random number (1..noop_max) of NOOP steps: varied start states.

    The count comes from the env's seeded generator, so `reset(seed=s)` is reproducible.
    """

    def __init__(self, env: gym.Env, noop_max: int = 30):
        super().__init__(env)
        if noop_max < 1:
            raise ValueError(f"noop_max must be at least 1, got {noop_max}")
        self.noop_max = noop_max
        self.last_num_noops = 0  # for tests and debugging

    def reset(self, *, seed=None, options=None):
        obs, info = self.env.reset(seed=seed, options=options)
        self.last_num_noops = int(self.np_random.integers(1, self.noop_max + 1))
        for _ in range(self.last_num_noops):
            obs, _, terminated, truncated, info = self.env.step(NOOP_ACTION)
            if terminated or truncated:  # a game that ends while idle: start over, no more waiting
                obs, info = self.env.reset(options=options)
                break
        return obs, info


class MaxAndSkipEnv(gym.Wrapper):
    """Repeats an action `skip` times (stops early at the episode end), sums the rewards, and returns
    the pixel-wise max of the last two frames: Atari games draw some sprites only every other frame."""

    def __init__(self, env: gym.Env, skip: int = 4):
        super().__init__(env)
        if skip < 1:
            raise ValueError(f"skip must be at least 1, got {skip}")
        self.skip = skip

    def step(self, action):
        total_reward = 0.0
        previous_obs = obs = None
        terminated = truncated = False
        info = {}
        for _ in range(self.skip):
            previous_obs = obs
            obs, reward, terminated, truncated, info = self.env.step(action)
            total_reward += float(reward)
            if terminated or truncated:
                break
        if previous_obs is not None:
            obs = np.maximum(previous_obs, obs)
        return obs, total_reward, terminated, truncated, info


class FireResetEnv(gym.Wrapper):
    """Presses FIRE after a reset and right after every lost life, for games that otherwise wait
    for it (Breakout serves no ball until FIRE). Doing it in the env, not only at reset, keeps the
    game the same with and without episodic life, so a policy trained with it never learns to
    depend on resets and still plays full games in evaluation.

    Reads the lives from `info["lives"]` (ale-py reports them in every step and reset).
    """

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.lives = 0

    def reset(self, *, seed=None, options=None):
        obs, info = self.env.reset(seed=seed, options=options)
        obs, _, terminated, truncated, info = self.env.step(FIRE_ACTION)
        if terminated or truncated:
            obs, info = self.env.reset(options=options)
        self.lives = int(info.get("lives", 0))
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        lives = int(info.get("lives", 0))
        if lives < self.lives and not (terminated or truncated):
            obs, fire_reward, terminated, truncated, info = self.env.step(FIRE_ACTION)
            reward = float(reward) + float(fire_reward)
            lives = int(info.get("lives", 0))
        self.lives = lives
        return obs, reward, terminated, truncated, info


class EpisodicLifeEnv(gym.Wrapper):
    """A lost life ends the episode (terminated=True) while the game goes on: the learner does not
    bootstrap across a death, which speeds up learning in most games (Mnih et al. 2015).

    `reset()` after a lost life does not touch the emulator: the next episode starts from the
    observation at the lost life. Only after a real game end does `reset()` start a new game.
    """

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.lives = 0
        self.game_over = True
        self._last_obs = None

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.game_over = bool(terminated or truncated)
        lives = int(info.get("lives", 0))
        if 0 < lives < self.lives:
            terminated = True
            info = {**info, "life_lost": True}
        self.lives = lives
        self._last_obs = obs
        return obs, reward, terminated, truncated, info

    def reset(self, *, seed=None, options=None):
        if self.game_over or seed is not None or self._last_obs is None:
            obs, info = self.env.reset(seed=seed, options=options)
            self.game_over = False
            self.lives = int(info.get("lives", 0))
            self._last_obs = obs
            return obs, info
        return self._last_obs, {"lives": self.lives}


class ClipRewardEnv(gym.RewardWrapper):
    """Rewards become their sign (-1, 0, +1): one set of hyper-parameters for games whose point
    values differ by orders of magnitude. The real score is kept by GameScore below."""

    def reward(self, reward):
        return float(np.sign(reward))


class ResizeWrapper(gym.ObservationWrapper):
    """Image observations resized to w x h (OpenCV); `grayscale` keeps one channel, `add_channel_dim`
    keeps a channel axis on grayscale images."""

    def __init__(self, env: gym.Env, w: int, h: int, grayscale: bool = True, add_channel_dim: bool = False,
                 area_interpolation: bool = False):  # fmt: skip
        super().__init__(env)
        import cv2

        self._cv2 = cv2
        self.w, self.h = w, h
        self.grayscale = grayscale
        self.add_channel_dim = add_channel_dim
        self.interpolation = cv2.INTER_AREA if area_interpolation else cv2.INTER_NEAREST
        channels = 1 if grayscale else env.observation_space.shape[-1]
        shape = (h, w, 1) if grayscale and add_channel_dim else (h, w) if grayscale else (h, w, channels)
        self.observation_space = gym.spaces.Box(0, 255, shape=shape, dtype=np.uint8)

    def observation(self, observation):
        frame = self._cv2.resize(np.asarray(observation), (self.w, self.h), interpolation=self.interpolation)
        if self.grayscale:
            if frame.ndim == 3:
                frame = self._cv2.cvtColor(frame, self._cv2.COLOR_RGB2GRAY)
            if self.add_channel_dim:
                frame = frame[:, :, None]
        return frame


class RewardScalingWrapper(gym.RewardWrapper):
    def __init__(self, env: gym.Env, scaling_factor: float):
        super().__init__(env)
        self.scaling_factor = scaling_factor

    def reward(self, reward):
        return reward * self.scaling_factor


class TimeLimitWrapper(gym.Wrapper):
    """Truncates an episode after `limit` steps, plus a random 0..random_variation_steps (varied lengths)."""

    def __init__(self, env: gym.Env, limit: int, random_variation_steps: int = 0):
        super().__init__(env)
        self.default_limit = limit
        self.random_variation_steps = random_variation_steps
        self.limit = limit
        self.num_steps = 0

    def reset(self, *, seed=None, options=None):
        obs, info = self.env.reset(seed=seed, options=options)
        self.num_steps = 0
        variation = (
            int(self.np_random.integers(0, self.random_variation_steps + 1)) if self.random_variation_steps else 0
        )
        self.limit = self.default_limit + variation
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.num_steps += 1
        if self.num_steps >= self.limit and not terminated:
            truncated = True
        return obs, reward, terminated, truncated, info


class PixelFormatChwWrapper(gym.ObservationWrapper):
    """H x W x C images -> C x H x W (the layout the library's conv encoders expect)."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        space = env.observation_space
        if not has_image_observations(space):
            raise ValueError(f"PixelFormatChwWrapper needs image observations, got {space}")
        h, w, c = space.shape
        low = np.moveaxis(np.broadcast_to(space.low, space.shape), -1, 0)
        high = np.moveaxis(np.broadcast_to(space.high, space.shape), -1, 0)
        self.observation_space = gym.spaces.Box(low, high, shape=(c, h, w), dtype=space.dtype)

    def observation(self, observation):
        return np.ascontiguousarray(np.moveaxis(np.asarray(observation), -1, 0))


class NumpyObsWrapper(gym.ObservationWrapper):
    """Observations as numpy arrays (for envs that return lists or lazy frames)."""

    def observation(self, observation):
        return np.asarray(observation)


class EpisodeCounterWrapper(gym.Wrapper):
    """Counts finished episodes; the count is `info["episode_counter"]` at every step."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.episode_count = 0

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        if terminated or truncated:
            self.episode_count += 1
        info = {**info, "episode_counter": self.episode_count}
        return obs, reward, terminated, truncated, info
