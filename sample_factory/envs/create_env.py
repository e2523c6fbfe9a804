"""Creating envs and learning their spaces, and the uniform multi-agent view the samplers step."""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from sample_factory.envs.env_utils import (
    RewardShapingInterface,
    UnknownEnvError,
    find_wrapper_interface,
    make_env_func_for,
)
from sample_factory.utils.attr_dict import AttrDict


def make_env(cfg, env_config: AttrDict | None = None, render_mode: str | None = None):
    """Calls the registered make_env_func for cfg.env."""
    make_env_func = make_env_func_for(cfg.env)
    return make_env_func(cfg.env, cfg, env_config, render_mode)  # positional, as 2.x calls it


def create_env(full_env_name: str, cfg=None, env_config: AttrDict | None = None, render_mode: str | None = None):
    """sample-factory 2.x's call: the registered env named `full_env_name` (cfg.env is not read)."""
    return make_env_func_for(full_env_name)(full_env_name, cfg, env_config, render_mode)


def env_config_for(worker_idx: int, vector_idx: int, env_id: int) -> AttrDict:
    return AttrDict(worker_index=worker_idx, vector_index=vector_idx, env_id=env_id)


def as_dict_space(space: gym.Space) -> gym.spaces.Dict:
    if isinstance(space, gym.spaces.Dict):
        return space
    return gym.spaces.Dict({"obs": space})


def as_obs_dict(obs) -> dict:
    return obs if isinstance(obs, dict) else {"obs": obs}


def is_multiagent_env(env) -> bool:
    return bool(getattr(env, "is_multiagent", False))


def is_vector_env(env) -> bool:
    return isinstance(env, gym.vector.VectorEnv)


@dataclass
class EnvInfo:
    """What the rest of the system must know about an env before any worker starts."""

    obs_space: gym.spaces.Dict
    action_space: gym.Space
    num_agents: int
    is_multiagent: bool
    frameskip: int
    reward_shaping_scheme: dict | None = None  # the env's RewardShapingInterface defaults, for PBT

    def __getstate__(self):
        return self.__dict__

    def __setstate__(self, state):
        self.__dict__.update(state)


class EnvCreationError(RuntimeError):
    """The env could not be made (its factory raised): the message names the env and the error."""


def obtain_env_info(cfg) -> EnvInfo:
    """A throw-away env in the parent tells the spaces before anything is allocated.

    Raises UnknownEnvError for an unregistered name and EnvCreationError when the factory fails.
    """
    try:
        env = make_env(cfg, env_config_for(-1, 0, 0))
    except UnknownEnvError:
        raise
    except Exception as e:
        raise EnvCreationError(f"could not create the env {cfg.env!r}: {type(e).__name__}: {e}") from e
    try:
        return env_info_of(env, cfg)
    finally:
        env.close()


def env_info_of(env, cfg) -> EnvInfo:
    if is_vector_env(env):
        obs_space, action_space, num_agents = env.single_observation_space, env.single_action_space, 1
    else:
        obs_space, action_space = env.observation_space, env.action_space
        num_agents = int(getattr(env, "num_agents", 1))
    return EnvInfo(
        obs_space=as_dict_space(obs_space),
        action_space=action_space,
        num_agents=num_agents,
        is_multiagent=is_multiagent_env(env),
        frameskip=int(cfg.env_frameskip),
        reward_shaping_scheme=default_reward_shaping(env),
    )


def default_reward_shaping(env) -> dict | None:
    """The coefficients of an env (or vector env's first env) that implements RewardShapingInterface."""
    shaping_env = find_wrapper_interface(env, RewardShapingInterface)
    if shaping_env is None and isinstance(env, gym.vector.SyncVectorEnv):
        shaping_env = find_wrapper_interface(env.envs[0], RewardShapingInterface)
    return None if shaping_env is None else shaping_env.get_default_reward_shaping()


class MultiAgentView:
    """Steps any env with lists, one entry per agent; single-agent envs are reset when done.

    Multi-agent envs (API.md) already take and return lists and reset their own agents.
    """

    def __init__(self, env):
        self.env = env
        self.is_multiagent = is_multiagent_env(env)
        self.num_agents = int(getattr(env, "num_agents", 1)) if self.is_multiagent else 1

    def reset(self, seed: int | None = None) -> tuple[list[dict], list[dict]]:
        obs, info = self.env.reset(seed=seed)
        if self.is_multiagent:
            return [as_obs_dict(o) for o in obs], list(info) if isinstance(info, (list, tuple)) else [
                info
            ] * self.num_agents
        return [as_obs_dict(obs)], [info]

    def step(self, actions):
        """Returns per-agent lists: obs (after any reset), rewards, terminated, truncated, infos."""
        if self.is_multiagent:
            obs, rewards, terminated, truncated, infos = self.env.step(actions)
            return [as_obs_dict(o) for o in obs], rewards, terminated, truncated, infos
        obs, reward, terminated, truncated, info = self.env.step(actions[0])
        if terminated or truncated:
            obs, reset_info = self.env.reset()
            info = {**reset_info, **info}
        return [as_obs_dict(obs)], [reward], [terminated], [truncated], [info]

    def close(self):
        self.env.close()


def numpy_action(action_space: gym.Space, action: np.ndarray):
    """Turns one agent's action, as stored in the buffers, into what the env expects."""
    if isinstance(action_space, gym.spaces.Discrete):
        return int(action)
    if isinstance(action_space, gym.spaces.Tuple):
        parts, offset = [], 0
        for sub in action_space.spaces:
            width = 1 if isinstance(sub, gym.spaces.Discrete) else int(np.prod(sub.shape))
            chunk = action[offset : offset + width]
            parts.append(int(chunk[0]) if isinstance(sub, gym.spaces.Discrete) else chunk.astype(sub.dtype))
            offset += width
        return tuple(parts)
    return action
