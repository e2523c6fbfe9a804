"""Old-gym envs under the gymnasium API, at sample-factory 2.x's import path.

`patch_non_gymnasium_env(env)` wraps an env written for gym < 0.26 (`reset() -> obs`,
`step() -> (obs, reward, done, info)`) so the library steps it as a gymnasium env. An episode
that gym ended by a time limit (`info["TimeLimit.truncated"]`) becomes `truncated=True`.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np


def convert_space(space) -> gym.Space:
    """A gym space (by its class name and fields) as the gymnasium space of the same kind."""
    if isinstance(space, gym.Space):
        return space
    kind = type(space).__name__
    if kind == "Box":
        return gym.spaces.Box(np.asarray(space.low), np.asarray(space.high), shape=space.shape, dtype=space.dtype)
    if kind == "Discrete":
        return gym.spaces.Discrete(int(space.n), start=int(getattr(space, "start", 0)))
    if kind == "MultiDiscrete":
        return gym.spaces.MultiDiscrete(np.asarray(space.nvec))
    if kind == "MultiBinary":
        return gym.spaces.MultiBinary(space.n)
    if kind == "Tuple":
        return gym.spaces.Tuple([convert_space(s) for s in space.spaces])
    if kind == "Dict":
        return gym.spaces.Dict({key: convert_space(s) for key, s in space.spaces.items()})
    raise TypeError(f"cannot convert the space {space!r} to a gymnasium space")


class _GymnasiumApi(gym.Env):
    """Presents an old-gym env with gymnasium's reset/step signatures."""

    def __init__(self, env):
        self.env = env
        self.observation_space = convert_space(env.observation_space)
        self.action_space = convert_space(env.action_space)
        self.render_mode = getattr(env, "render_mode", None)
        self.metadata = getattr(env, "metadata", {})

    def reset(self, *, seed=None, options=None):
        if seed is not None and hasattr(self.env, "seed"):
            self.env.seed(seed)
        result = self.env.reset()
        if isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], dict):
            return result
        return result, {}

    def step(self, action):
        result = self.env.step(action)
        if len(result) == 5:
            return result
        obs, reward, done, info = result
        truncated = bool(info.get("TimeLimit.truncated", False))
        return obs, reward, bool(done) and not truncated, truncated, info

    def render(self):
        return self.env.render()

    def close(self):
        self.env.close()

    def __getattr__(self, name):
        if name.startswith("_") or name == "env":
            raise AttributeError(name)
        return getattr(self.env, name)


def patch_non_gymnasium_env(env) -> gym.Env:
    """The env itself if it is a gymnasium env, else a wrapper that gives it the gymnasium API."""
    if isinstance(env, gym.Env) or hasattr(env, "is_multiagent"):
        return env
    return _GymnasiumApi(env)
