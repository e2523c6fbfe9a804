"""Which policy of the population controls each agent: the matchmaking of self-play and PBT.

A rollout worker asks its mapping for the policies of an env's agents when the run starts and
whenever that env's episode ends; the answer holds from the next trajectory on. The default draws
uniformly at random, one policy per agent with `--pbt_mix_policies_in_one_env=True` (the agents of
one env then play against other members of the population) and one for the whole env otherwise,
and draws anew at the first episode end after `steps_per_draw` steps of the env: a policy whose
episodes are short (a bad one, often) holds an env as many steps as one whose episodes are long,
so every member of a population gets about the same experience and reaches its PBT period alike.

With `--league_opponents=K`, a draw puts, with chance `--league_opponent_prob`, one of the K
frozen opponents (policy ids num_policies .. num_policies + K - 1, each playing a league snapshot;
they train nothing) in one random seat of the env, the learning policies in the others.

To match agents another way, subclass `AgentPolicyMapping` and pass the class to
`set_agent_policy_mapping` before the run starts (in the training script, like `register_env`):

    class FixedMatchups(AgentPolicyMapping):
        def policies_for_env(self, env_id, episode, env_steps):
            return [env_id % self.num_policies, (env_id + 1) % self.num_policies]

    set_agent_policy_mapping(FixedMatchups)

Each rollout worker process has its own instance, made with the run's config, its env info and a
seed of its own; the class must be importable (defined at module level).
"""

from __future__ import annotations

import random
from collections.abc import Sequence


class AgentPolicyMapping:
    steps_per_draw = 1000  # env steps; a CartPole policy at its best plays 2 episodes, Doom 1

    def __init__(self, cfg, env_info, seed: int | None = None):
        self.num_policies = cfg.num_policies
        self.num_opponents = cfg.league_opponents
        self.opponent_prob = cfg.league_opponent_prob
        self.num_agents = env_info.num_agents
        self.mix_policies_in_one_env = bool(cfg.pbt_mix_policies_in_one_env)
        self.rng = random.Random(seed)
        self._drawn: dict[int, tuple[int, list[int]]] = {}  # env id -> (env steps at the draw, policies)

    def policies_for_env(self, env_id: int, episode: int, env_steps: int) -> Sequence[int]:
        """The policy of each agent of env `env_id` (its index over the run) for its episode number
        `episode` (0: the first), which starts after `env_steps` steps of the env: `num_agents` ints
        in [0, num_policies + num_opponents)."""
        drawn = self._drawn.get(env_id)
        if drawn is None or env_steps - drawn[0] >= self.steps_per_draw:
            if self.mix_policies_in_one_env:
                policies = [self.rng.randrange(self.num_policies) for _ in range(self.num_agents)]
            else:
                policies = [self.rng.randrange(self.num_policies)] * self.num_agents
            if self.num_opponents and self.num_agents > 1 and self.rng.random() < self.opponent_prob:
                policies[self.rng.randrange(self.num_agents)] = self.num_policies + self.rng.randrange(
                    self.num_opponents
                )
            drawn = self._drawn[env_id] = (env_steps, policies)
        return drawn[1]


_MAPPING_CLASS: type[AgentPolicyMapping] = AgentPolicyMapping


def set_agent_policy_mapping(mapping_cls: type[AgentPolicyMapping]):
    """The class every rollout worker of the runs started from now on matches agents with."""
    if not (isinstance(mapping_cls, type) and issubclass(mapping_cls, AgentPolicyMapping)):
        raise TypeError(f"{mapping_cls!r} is not a subclass of AgentPolicyMapping")
    global _MAPPING_CLASS
    _MAPPING_CLASS = mapping_cls


def agent_policy_mapping_class() -> type[AgentPolicyMapping]:
    return _MAPPING_CLASS
