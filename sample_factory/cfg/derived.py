"""Values derived from the config, each computed here and nowhere else.

The config is final once `cfg/validate.py` accepts it; everything a component needs beyond the
flags themselves is a function of it, so two components can never disagree about a layout.
"""

from __future__ import annotations


def effective_recurrence(cfg) -> int:
    """The length of the sequences an RNN trains on: --recurrence, or the rollout with an RNN, 1 without."""
    if cfg.recurrence > 0:
        return cfg.recurrence
    return cfg.rollout if cfg.use_rnn else 1


def envs_per_split(cfg) -> int:
    """Envs one split of a rollout worker steps together (validation makes the division exact)."""
    return cfg.num_envs_per_worker // cfg.worker_num_splits


def agents_per_split(cfg, num_agents: int) -> int:
    return envs_per_split(cfg) * num_agents


def samples_per_iteration(cfg) -> int:
    """Agent steps one training iteration consumes."""
    return cfg.batch_size * cfg.num_batches_per_epoch


def trajectories_per_iteration(cfg) -> int:
    return samples_per_iteration(cfg) // cfg.rollout


def global_env_id(cfg, worker_idx: int, vector_idx: int) -> int:
    """The env's index over the whole run: `env_config.env_id`."""
    return worker_idx * cfg.num_envs_per_worker + vector_idx


SEED_STRIDE = 100_003  # more envs than any run has: runs with different --seed share no env seed


def env_seed(cfg, worker_idx: int, split_idx: int, env_idx: int) -> int | None:
    """The seed of an env's first reset, or None for unseeded runs; distinct for every env of a run.

    `env_idx` counts within the split; env i of a split is seeded with the split's first seed + i.
    """
    if cfg.seed is None:
        return None
    return cfg.seed * SEED_STRIDE + global_env_id(cfg, worker_idx, split_idx * envs_per_split(cfg) + env_idx)


def remade_env_seed(first_seed: int | None, restarts: int) -> int | None:
    """The reset seed of an env made anew after it raised `restarts` times: not its first episode's again."""
    return None if first_seed is None else first_seed + restarts * 1_000_003


def worker_rng_seed(cfg, worker_idx: int) -> int | None:
    """The seed of a rollout worker's own random choices (agent -> policy draws)."""
    return None if cfg.seed is None else cfg.seed * 7919 + worker_idx


def acting_policies(cfg) -> int:
    """Policies that act: the `num_policies` that learn, then `league_opponents` frozen ones
    (ids num_policies and up), which play league snapshots and train nothing."""
    return cfg.num_policies + cfg.league_opponents
