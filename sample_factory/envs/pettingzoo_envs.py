"""PettingZoo parallel envs as this project's multi-agent envs (sample-factory 2.x's adapter, same name):

    from pettingzoo.butterfly import pistonball_v6
    register_env("pistonball", lambda name, cfg=None, env_config=None, render_mode=None:
                 PettingZooParallelEnv(pistonball_v6.parallel_env(render_mode=render_mode)))

Every possible agent is one agent slot (`num_agents = len(possible_agents)`); all agents must
share their observation and action spaces (one policy network serves them). An agent that
finishes before the others is reported done once, then inactive (`info["is_active"] = False`,
reward 0) until the episode ends for everyone; then the env resets itself and the step returns
the first observations of the next episode, as the multi-agent convention asks.

Observations: a Dict with `observation` and `action_mask` (PettingZoo's masked envs) becomes
`obs` and `action_mask`; a Discrete observation becomes its one-hot vector.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np


def normalize_observation_space(space: gym.Space) -> gym.Space:
    if isinstance(space, gym.spaces.Discrete):
        return gym.spaces.Box(0.0, 1.0, (int(space.n),), np.float32)
    if isinstance(space, gym.spaces.Dict) and "observation" in space.spaces:
        spaces = {("obs" if key == "observation" else key): normalize_observation_space(s) for key, s in space.items()}
        return gym.spaces.Dict(spaces)
    return space


def normalize_observation(obs, space: gym.Space):
    if isinstance(space, gym.spaces.Discrete):
        one_hot = np.zeros(int(space.n), np.float32)
        one_hot[int(obs) - int(space.start)] = 1.0
        return one_hot
    if isinstance(space, gym.spaces.Dict) and "observation" in space.spaces:
        return {
            ("obs" if key == "observation" else key): normalize_observation(obs[key], s) for key, s in space.items()
        }
    return obs


class PettingZooParallelEnv:
    is_multiagent = True

    def __init__(self, env):
        self.env = env
        self.agent_names = list(env.possible_agents)
        self.num_agents = len(self.agent_names)
        first = self.agent_names[0]
        self._raw_obs_space = env.observation_space(first)
        for agent in self.agent_names[1:]:
            if env.observation_space(agent) != self._raw_obs_space or env.action_space(agent) != env.action_space(
                first
            ):
                raise ValueError(
                    f"PettingZooParallelEnv needs agents with equal spaces; {agent!r} differs from {first!r}"
                )
        self.observation_space = normalize_observation_space(self._raw_obs_space)
        self.action_space = env.action_space(first)
        self.render_mode = getattr(env, "render_mode", None)
        self._last_obs: list = []
        self._done = np.zeros(self.num_agents, bool)

    def _obs_list(self, obs: dict) -> list:
        for i, agent in enumerate(self.agent_names):
            if agent in obs:
                self._last_obs[i] = normalize_observation(obs[agent], self._raw_obs_space)
        return list(self._last_obs)

    def reset(self, seed: int | None = None, options=None):
        obs, infos = self.env.reset(seed=seed, options=options)
        self._last_obs = [None] * self.num_agents
        self._done[:] = False
        return self._obs_list(obs), [dict(infos.get(agent, {})) for agent in self.agent_names]

    def _action(self, action):
        if isinstance(self.action_space, gym.spaces.Discrete):
            return int(np.asarray(action).reshape(-1)[0])
        return np.asarray(action)

    def step(self, actions):
        live = [a for a in self.agent_names if a in self.env.agents]
        index = {agent: i for i, agent in enumerate(self.agent_names)}
        obs, rewards, terminated, truncated, infos = self.env.step({a: self._action(actions[index[a]]) for a in live})
        rew = np.zeros(self.num_agents, np.float32)
        term = np.zeros(self.num_agents, bool)
        trunc = np.zeros(self.num_agents, bool)
        info_list = [{} for _ in range(self.num_agents)]
        for agent, i in index.items():
            if agent in live:
                rew[i] = float(rewards.get(agent, 0.0))
                term[i] = bool(terminated.get(agent, False))
                trunc[i] = bool(truncated.get(agent, False))
                info_list[i] = dict(infos.get(agent, {}))
            else:
                info_list[i] = {"is_active": False}
        newly_done = (term | trunc) & ~self._done
        self._done |= newly_done
        obs_list = self._obs_list(obs)
        if not self.env.agents or self._done.all():
            obs_list, _ = self.reset()
        # an agent that finished before is inactive, not done again
        for i in range(self.num_agents):
            if not newly_done[i] and not info_list[i].get("is_active", True):
                term[i] = trunc[i] = False
        return obs_list, list(rew), list(term), list(trunc), info_list

    def render(self):
        return self.env.render()

    def close(self):
        self.env.close()
