"""How one split of a rollout worker steps its envs: env by env, or as one vectorized env.

Both return the same thing, per agent of the split, as preallocated numpy arrays:
`StepResult(obs, rewards, terminated, truncated, valids, episode_infos)`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np

from sample_factory.cfg.derived import env_seed, global_env_id
from sample_factory.envs.create_env import (
    MultiAgentView,
    as_obs_dict,
    env_config_for,
    is_vector_env,
    make_env,
    numpy_action,
)


class ObservationError(ValueError):
    """An env returned an observation its own observation space does not allow."""


@dataclass
class StepResult:
    obs: dict  # key -> [num_agents, *shape]
    rewards: np.ndarray  # [num_agents] float32
    terminated: np.ndarray  # [num_agents] bool
    truncated: np.ndarray  # [num_agents] bool
    valids: np.ndarray  # [num_agents] bool: False for steps that are not real transitions
    episode_infos: dict = field(default_factory=dict)  # agent index -> info of an episode that just ended


def _obs_arrays(obs_space: gym.spaces.Dict, num_agents: int) -> dict:
    return {key: np.zeros((num_agents,) + space.shape, dtype=space.dtype) for key, space in obs_space.spaces.items()}


class PerEnvRunner:
    """A list of envs stepped one after another (multi-agent envs welcome)."""

    def __init__(self, cfg, env_info, worker_idx: int, split_idx: int, num_envs: int):
        self.action_space = env_info.action_space
        self.agents_per_env = env_info.num_agents
        self.envs = []
        for i in range(num_envs):
            vector_idx = split_idx * num_envs + i
            env = make_env(cfg, env_config_for(worker_idx, vector_idx, global_env_id(cfg, worker_idx, vector_idx)))
            self.envs.append(MultiAgentView(env))
        self.num_agents = num_envs * self.agents_per_env
        self._env_name, self._worker_idx = cfg.env, worker_idx
        self._seeds = [env_seed(cfg, worker_idx, split_idx, i) for i in range(num_envs)]
        self._result = StepResult(
            obs=_obs_arrays(env_info.obs_space, self.num_agents),
            rewards=np.zeros(self.num_agents, np.float32),
            terminated=np.zeros(self.num_agents, bool),
            truncated=np.zeros(self.num_agents, bool),
            valids=np.ones(self.num_agents, bool),
        )

    def _write_obs(self, agent_idx: int, obs: dict):
        for key, arr in self._result.obs.items():
            value = obs[key]
            if np.shape(value) != arr.shape[1:]:  # numpy would broadcast (1,) into (4,) silently
                raise ObservationError(
                    f"{self._env_name} (worker {self._worker_idx}, env {agent_idx // self.agents_per_env}) returned "
                    f"observation {key!r} of shape {np.shape(value)}; its observation space says {arr.shape[1:]}"
                )
            arr[agent_idx] = value

    def reset(self) -> dict:
        for env_idx, env in enumerate(self.envs):
            obs_list, _ = env.reset(seed=self._seeds[env_idx])
            for a, obs in enumerate(obs_list):
                self._write_obs(env_idx * self.agents_per_env + a, obs)
        return self._result.obs

    def step(self, actions: np.ndarray) -> StepResult:
        result = self._result
        result.episode_infos = {}
        n = self.agents_per_env
        for env_idx, env in enumerate(self.envs):
            first = env_idx * n
            env_actions = [numpy_action(self.action_space, actions[first + a]) for a in range(n)]
            obs_list, rewards, terminated, truncated, infos = env.step(env_actions)
            for a in range(n):
                agent = first + a
                self._write_obs(agent, obs_list[a])
                result.rewards[agent] = rewards[a]
                result.terminated[agent] = terminated[a]
                result.truncated[agent] = truncated[a]
                info = infos[a]
                result.valids[agent] = info.get("is_active", True) if info else True
                if terminated[a] or truncated[a]:
                    result.episode_infos[agent] = info
        return result

    def close(self):
        for env in self.envs:
            env.close()


class VectorEnvRunner:
    """One vectorized env per split: arrays in, arrays out, no per-env Python loop here.

    A registered env may return a `gymnasium.vector.VectorEnv` itself (GPU simulators, envs with a
    `vector_entry_point`); otherwise `num_envs` copies are wrapped in a SyncVectorEnv. Both
    autoreset modes are handled: with NEXT_STEP, the step after an episode end only resets the env,
    so it is marked invalid and done (the RNN state and the returns restart after it).
    """

    def __init__(self, cfg, env_info, worker_idx: int, split_idx: int, num_envs: int):
        if env_info.num_agents != 1:
            raise ValueError("--batched_sampling needs a single-agent env (got a multi-agent env)")
        first_env_id = global_env_id(cfg, worker_idx, split_idx * num_envs)
        vec_config = env_config_for(worker_idx, split_idx * num_envs, first_env_id)
        vec_config.num_envs = num_envs  # a make_env_func that builds vector envs reads this
        env = make_env(cfg, vec_config)
        if is_vector_env(env):
            if env.num_envs != num_envs:
                raise ValueError(f"The env made a vector env of {env.num_envs} envs, expected {num_envs}")
            self.vec_env = env
        else:
            env.close()

            def make_one(i):
                return lambda: make_env(cfg, env_config_for(worker_idx, split_idx * num_envs + i, first_env_id + i))

            self.vec_env = gym.vector.SyncVectorEnv(
                [make_one(i) for i in range(num_envs)], autoreset_mode=gym.vector.AutoresetMode.SAME_STEP
            )
        self.next_step_autoreset = self.vec_env.metadata.get("autoreset_mode") == gym.vector.AutoresetMode.NEXT_STEP
        self.num_agents = num_envs
        self._seed = env_seed(cfg, worker_idx, split_idx, 0)  # the vector env seeds env i with this + i
        self._was_done = np.zeros(num_envs, bool)
        self._space = env_info.action_space

    def reset(self) -> dict:
        obs, _ = self.vec_env.reset(seed=self._seed)
        self._was_done[:] = False
        return as_obs_dict(obs)

    def step(self, actions: np.ndarray) -> StepResult:
        if isinstance(self._space, gym.spaces.Discrete):
            actions = actions.astype(np.int64, copy=False)
        obs, rewards, terminated, truncated, infos = self.vec_env.step(actions)
        done = terminated | truncated
        if self.next_step_autoreset:
            # This step only reset the envs that were done: not a real transition.
            valids = ~self._was_done
            reset_step = self._was_done
            terminated = terminated | reset_step
            self._was_done = done & valids
            done = self._was_done
        else:
            valids = np.ones(self.num_agents, bool)
        episode_infos = {}
        if done.any():
            # With same-step autoreset the info of the last step sits under "final_info".
            final_infos = infos.get("final_info")
            for i in np.flatnonzero(done):
                has_final = final_infos is not None and infos.get("_final_info", np.zeros(self.num_agents, bool))[i]
                episode_infos[int(i)] = _info_of(final_infos if has_final else infos, int(i))
        return StepResult(
            obs=as_obs_dict(obs),
            rewards=np.asarray(rewards, np.float32),
            terminated=np.asarray(terminated, bool),
            truncated=np.asarray(truncated, bool) & valids,
            valids=valids,
            episode_infos=episode_infos,
        )

    def close(self):
        self.vec_env.close()


def _info_of(infos: dict, i: int) -> dict:
    """One env's entries of a vector env's info dict (keys with a `_key` mask)."""
    out = {}
    for key, value in infos.items():
        if key.startswith("_"):
            continue
        mask = infos.get("_" + key)
        if mask is not None and not mask[i]:
            continue
        if isinstance(value, dict):
            out[key] = _info_of(value, i)
        else:
            try:
                out[key] = value[i]
            except (TypeError, IndexError, KeyError):
                out[key] = value
    return out
