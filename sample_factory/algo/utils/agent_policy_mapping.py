"""Which policy of the population controls each agent: the matchmaking of self-play and PBT.

A rollout worker asks its mapping for the policies of an env's agents when the run starts and
whenever that env's episode ends; the answer holds from the next trajectory on, and the worker
tells the mapping how many agent steps each policy took (`record_experience`). The default draws
at random anew every `episodes_per_draw` episodes of the env, one policy per agent with
`--pbt_mix_policies_in_one_env=True` (the agents of one env then play against other members of the
population) and one for the whole env otherwise. A policy is drawn in inverse proportion to its
share of the worker's experience so far: a policy whose episodes are short (a bad one, often) still
gets its share of env steps, so every member of a population reaches its PBT period alike.

To match agents another way, subclass `AgentPolicyMapping` and pass the class to
`set_agent_policy_mapping` before the run starts (in the training script, like `register_env`):

    class FixedMatchups(AgentPolicyMapping):
        def policies_for_env(self, env_id, episode):
            return [env_id % self.num_policies, (env_id + 1) % self.num_policies]

    set_agent_policy_mapping(FixedMatchups)

Each rollout worker process has its own instance, made with the run's config, its env info and a
seed of its own; the class must be importable (defined at module level).
"""

from __future__ import annotations

import random
from collections.abc import Sequence


class AgentPolicyMapping:
    episodes_per_draw = 5  # few enough that every env meets the whole population soon

    def __init__(self, cfg, env_info, seed: int | None = None):
        self.num_policies = cfg.num_policies
        self.num_agents = env_info.num_agents
        self.mix_policies_in_one_env = bool(cfg.pbt_mix_policies_in_one_env)
        self.rng = random.Random(seed)
        self._current: dict[int, list[int]] = {}
        self.experience = [0] * self.num_policies  # agent steps each policy took in this worker

    def record_experience(self, policy_id: int, agent_steps: int):
        self.experience[policy_id] += agent_steps

    def draw_policy(self) -> int:
        """A policy, favoring those with less than their share of the experience."""
        total = sum(self.experience)
        if total == 0:
            return self.rng.randrange(self.num_policies)
        floor = 0.01 / self.num_policies  # a policy with no experience yet is not infinitely likely
        weights = [1.0 / max(steps / total, floor) for steps in self.experience]
        return self.rng.choices(range(self.num_policies), weights)[0]

    def policies_for_env(self, env_id: int, episode: int) -> Sequence[int]:
        """The policy of each agent of env `env_id` (its index over the run) for its episode number
        `episode` (0: the first): `num_agents` ints in [0, num_policies)."""
        if self.num_policies == 1:
            return [0] * self.num_agents
        if episode % self.episodes_per_draw == 0 or env_id not in self._current:
            if self.mix_policies_in_one_env:
                self._current[env_id] = [self.draw_policy() for _ in range(self.num_agents)]
            else:
                self._current[env_id] = [self.draw_policy()] * self.num_agents
        return self._current[env_id]


_MAPPING_CLASS: type[AgentPolicyMapping] = AgentPolicyMapping


def set_agent_policy_mapping(mapping_cls: type[AgentPolicyMapping]):
    """The class every rollout worker of the runs started from now on matches agents with."""
    if not (isinstance(mapping_cls, type) and issubclass(mapping_cls, AgentPolicyMapping)):
        raise TypeError(f"{mapping_cls!r} is not a subclass of AgentPolicyMapping")
    global _MAPPING_CLASS
    _MAPPING_CLASS = mapping_cls


def agent_policy_mapping_class() -> type[AgentPolicyMapping]:
    return _MAPPING_CLASS
