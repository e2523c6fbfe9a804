"""How one split of a rollout worker steps its envs: env by env, or as one vectorized env.

Both return the same thing, per agent of the split, as preallocated numpy arrays:
`StepResult(obs, rewards, terminated, truncated, valids, episode_infos, failures)`.

An env that raises in `step()` is closed, made anew and reset (`--max_env_failures` bounds how
often, counted by the runner): its agents' step is marked invalid and done, so the unfinished
episode is neither trained through nor reported, and the failure is returned in
`StepResult.failures`. An env that cannot be made or reset raises EnvFailure, one line naming it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

import gymnasium as gym
import numpy as np

from sample_factory.algo.sampling.env_checks import ObservationError, check_obs_against_space
from sample_factory.cfg.derived import env_seed, global_env_id, remade_env_seed
from sample_factory.envs.create_env import (
    MultiAgentView,
    as_obs_dict,
    env_config_for,
    is_vector_env,
    make_env,
    numpy_action,
)
from sample_factory.envs.env_utils import RewardShapingInterface, find_wrapper_interface

WORKER_RESTART_SEEDS = 1000  # reset seeds set aside for the env re-makes of one worker process


class EnvFailure(RuntimeError):
    """An env could not be made or reset: the message names the env, its worker and index, and the error."""


@dataclass
class RecoveredEnv:
    env_idx: int  # index in the worker (vector index)
    error: str  # "TypeName: message" of what the env raised


def _describe(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"


def _env_config(cfg, worker_idx: int, vector_idx: int):
    return env_config_for(worker_idx, vector_idx, global_env_id(cfg, worker_idx, vector_idx))


def _close_quietly(env):
    try:
        env.close()
    except Exception:
        pass  # a crashed env may not close; the one made instead matters


@dataclass
class StepResult:
    obs: dict  # key -> [num_agents, *shape]
    rewards: np.ndarray  # [num_agents] float32
    terminated: np.ndarray  # [num_agents] bool
    truncated: np.ndarray  # [num_agents] bool
    valids: np.ndarray  # [num_agents] bool: False for steps that are not real transitions
    episode_infos: dict = field(default_factory=dict)  # agent index -> info of an episode that just ended
    failures: list = field(default_factory=list)  # RecoveredEnv of each env that raised and was made anew


def _obs_arrays(obs_space: gym.spaces.Dict, num_agents: int) -> dict:
    return {key: np.zeros((num_agents,) + space.shape, dtype=space.dtype) for key, space in obs_space.spaces.items()}


class PerEnvRunner:
    """A list of envs stepped one after another (multi-agent envs welcome)."""

    def __init__(self, cfg, env_info, worker_idx: int, split_idx: int, num_envs: int, epoch: int = 0):
        self.action_space = env_info.action_space
        self._obs_space = env_info.obs_space
        self.agents_per_env = env_info.num_agents
        self._cfg, self._env_name, self._worker_idx = cfg, cfg.env, worker_idx
        self._first_vector_idx = split_idx * num_envs
        self._seeds = [env_seed(cfg, worker_idx, split_idx, i) for i in range(num_envs)]
        # A re-made env gets a seed of its own, and so do the envs of a worker started anew (epoch).
        self._restarts = [epoch * WORKER_RESTART_SEEDS] * num_envs
        self.envs = [self._make(i) for i in range(num_envs)]
        self.num_agents = num_envs * self.agents_per_env
        self._result = StepResult(
            obs=_obs_arrays(env_info.obs_space, self.num_agents),
            rewards=np.zeros(self.num_agents, np.float32),
            terminated=np.zeros(self.num_agents, bool),
            truncated=np.zeros(self.num_agents, bool),
            valids=np.ones(self.num_agents, bool),
        )

    def _where(self, env_idx: int) -> str:
        return f"{self._env_name} (worker {self._worker_idx}, env {self._first_vector_idx + env_idx})"

    def _make(self, env_idx: int) -> MultiAgentView:
        env_config = _env_config(self._cfg, self._worker_idx, self._first_vector_idx + env_idx)
        try:
            return MultiAgentView(make_env(self._cfg, env_config))
        except Exception as e:
            raise EnvFailure(f"could not make {self._where(env_idx)}: {_describe(e)}") from e

    def _write_obs(self, agent_idx: int, obs: dict):
        for key, arr in self._result.obs.items():
            value = obs[key]
            if np.shape(value) != arr.shape[1:]:  # numpy would broadcast (1,) into (4,) silently
                raise ObservationError(
                    f"{self._where(agent_idx // self.agents_per_env)} returned observation {key!r} of shape {np.shape(value)}; its observation space says {arr.shape[1:]}"
                )
            arr[agent_idx] = value

    def _reset_one(self, env_idx: int):
        seed = remade_env_seed(self._seeds[env_idx], self._restarts[env_idx])
        try:
            obs_list, _ = self.envs[env_idx].reset(seed=seed)
        except Exception as e:
            raise EnvFailure(f"could not reset {self._where(env_idx)}: {_describe(e)}") from e
        for a, obs in enumerate(obs_list):
            check_obs_against_space(obs, self._obs_space, self._where(env_idx))  # keys and dtypes, once an episode
            self._write_obs(env_idx * self.agents_per_env + a, obs)

    def reset(self) -> dict:
        for env_idx in range(len(self.envs)):
            self._reset_one(env_idx)
        return self._result.obs

    def _remake(self, env_idx: int, error: Exception):
        """Replaces an env that raised: its agents' step is not a transition, and their episode ends."""
        _close_quietly(self.envs[env_idx])
        self._restarts[env_idx] += 1
        self.envs[env_idx] = self._make(env_idx)
        self._reset_one(env_idx)
        agents = slice(env_idx * self.agents_per_env, (env_idx + 1) * self.agents_per_env)
        result = self._result
        result.rewards[agents] = 0.0
        result.terminated[agents] = True
        result.truncated[agents] = False
        result.valids[agents] = False
        result.failures.append(RecoveredEnv(self._first_vector_idx + env_idx, _describe(error)))

    def step(self, actions: np.ndarray) -> StepResult:
        result = self._result
        result.episode_infos = {}
        result.failures = []
        n = self.agents_per_env
        for env_idx, env in enumerate(self.envs):
            first = env_idx * n
            env_actions = [numpy_action(self.action_space, actions[first + a]) for a in range(n)]
            try:
                obs_list, rewards, terminated, truncated, infos = env.step(env_actions)
            except Exception as e:
                self._remake(env_idx, e)
                continue
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

    def set_reward_shaping(self, agents: np.ndarray, shaping: dict):
        """The reward-shaping coefficients of these agents (of an env that implements RewardShapingInterface)."""
        n = self.agents_per_env
        for a in agents:
            _shaping_interface(self.envs[a // n].env).set_reward_shaping(shaping, int(a % n))

    def close(self):
        for env in self.envs:
            env.close()


def _shaping_interface(env) -> RewardShapingInterface:
    found = find_wrapper_interface(env, RewardShapingInterface)
    if found is None:
        raise TypeError(f"{type(env).__name__} does not implement RewardShapingInterface")
    return found


class _SubEnvFailed(Exception):
    def __init__(self, env_idx: int, error: Exception):
        super().__init__(env_idx, error)
        self.env_idx, self.error = env_idx, error


def _origin(e: Exception) -> tuple[int | None, Exception]:
    """(index of the sub-env that raised or None if unknown, what it raised)."""
    return (e.env_idx, e.error) if isinstance(e, _SubEnvFailed) else (None, e)


class _NamesItsFailures(gym.Wrapper):
    """Inside a SyncVectorEnv: tells which of its envs raised, and checks its first observation
    (the vector env would fail on a missing key with a bare KeyError)."""

    def __init__(self, env, env_idx: int, obs_space: gym.spaces.Dict, where: str):
        super().__init__(env)
        self._env_idx, self._obs_space, self._where = env_idx, obs_space, where
        self._first_obs_checked = False

    def step(self, action):
        try:
            return self.env.step(action)
        except Exception as e:
            raise _SubEnvFailed(self._env_idx, e) from e

    def reset(self, **kwargs):
        try:
            obs, info = self.env.reset(**kwargs)
        except Exception as e:
            raise _SubEnvFailed(self._env_idx, e) from e
        if not self._first_obs_checked:  # autoresets come back here every episode: once is enough
            check_obs_against_space(as_obs_dict(obs), self._obs_space, self._where)
            self._first_obs_checked = True
        return obs, info


class VectorEnvRunner:
    """One vectorized env per split: arrays in, arrays out, no per-env Python loop here.

    A registered env may return a `gymnasium.vector.VectorEnv` itself (GPU simulators, envs with a
    `vector_entry_point`); otherwise `num_envs` copies are wrapped in a SyncVectorEnv. Both
    autoreset modes are handled: with NEXT_STEP, the step after an episode end only resets the env,
    so it is marked invalid and done (the RNN state and the returns restart after it). When one env
    raises, the whole vector env is made anew (its state after a half-done step is unknown).
    """

    def __init__(self, cfg, env_info, worker_idx: int, split_idx: int, num_envs: int, epoch: int = 0):
        if env_info.num_agents != 1:
            raise ValueError("--batched_sampling needs a single-agent env (got a multi-agent env)")
        self._cfg, self._worker_idx, self._env_name = cfg, worker_idx, cfg.env
        self._first_vector_idx = split_idx * num_envs
        self.num_agents = num_envs
        self._seed = env_seed(cfg, worker_idx, split_idx, 0)  # the vector env seeds env i with this + i
        self._restarts = epoch * WORKER_RESTART_SEEDS
        self._was_done = np.zeros(num_envs, bool)
        self._space = env_info.action_space
        self._obs_space = env_info.obs_space
        self.vec_env = self._make()
        self.next_step_autoreset = self.vec_env.metadata.get("autoreset_mode") == gym.vector.AutoresetMode.NEXT_STEP

    def _where(self, env_idx: int | None) -> str:
        first = self._first_vector_idx
        envs = f"env {first + env_idx}" if env_idx is not None else f"envs {first}..{first + self.num_agents - 1}"
        return f"{self._env_name} (worker {self._worker_idx}, {envs})"

    def _make_one(self, env_idx: int):
        try:
            env = make_env(self._cfg, _env_config(self._cfg, self._worker_idx, self._first_vector_idx + env_idx))
        except Exception as e:
            raise EnvFailure(f"could not make {self._where(env_idx)}: {_describe(e)}") from e
        return _NamesItsFailures(env, env_idx, self._obs_space, self._where(env_idx))

    def _make(self):
        vec_config = _env_config(self._cfg, self._worker_idx, self._first_vector_idx)
        vec_config.num_envs = self.num_agents  # a make_env_func that builds vector envs reads this
        try:
            env = make_env(self._cfg, vec_config)
        except Exception as e:
            raise EnvFailure(f"could not make {self._where(0)}: {_describe(e)}") from e
        if is_vector_env(env):
            if env.num_envs != self.num_agents:
                raise ValueError(f"The env made a vector env of {env.num_envs} envs, expected {self.num_agents}")
            return env
        env.close()
        return gym.vector.SyncVectorEnv(
            [partial(self._make_one, i) for i in range(self.num_agents)],
            autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
        )

    def reset(self) -> dict:
        try:
            obs, _ = self.vec_env.reset(seed=remade_env_seed(self._seed, self._restarts))
        except ObservationError:
            raise
        except Exception as e:
            idx, error = _origin(e)
            raise EnvFailure(f"could not reset {self._where(idx)}: {_describe(error)}") from error
        self._was_done[:] = False
        obs = as_obs_dict(obs)
        check_obs_against_space(obs, self._obs_space, self._where(None), batch_shape=(self.num_agents,))
        return obs

    def _remake(self, failed: Exception) -> StepResult:
        """A step of every env of the split that is no transition: all restart from a reset."""
        env_idx, error = _origin(failed)
        _close_quietly(self.vec_env)
        self._restarts += 1
        self.vec_env = self._make()
        obs = self.reset()
        n = self.num_agents
        return StepResult(
            obs=obs,
            rewards=np.zeros(n, np.float32),
            terminated=np.ones(n, bool),
            truncated=np.zeros(n, bool),
            valids=np.zeros(n, bool),
            failures=[RecoveredEnv(self._first_vector_idx + (env_idx or 0), _describe(error))],
        )

    def step(self, actions: np.ndarray) -> StepResult:
        if isinstance(self._space, gym.spaces.Discrete):
            actions = actions.astype(np.int64, copy=False)
        try:
            obs, rewards, terminated, truncated, infos = self.vec_env.step(actions)
        except Exception as e:
            return self._remake(e)
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

    def set_reward_shaping(self, agents: np.ndarray, shaping: dict):
        if isinstance(self.vec_env, gym.vector.SyncVectorEnv):
            for a in agents:
                _shaping_interface(self.vec_env.envs[a]).set_reward_shaping(shaping, 0)
        else:  # an env's own vector env takes the index of each of its envs
            for a in agents:
                _shaping_interface(self.vec_env).set_reward_shaping(shaping, int(a))

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
