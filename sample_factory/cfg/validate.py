"""All config checks in one place, before any process starts; every error reported at once."""

from __future__ import annotations

from sample_factory.cfg.arguments import make_parser
from sample_factory.cfg.derived import (
    agents_per_split,
    effective_recurrence,
    envs_per_split,
    samples_per_iteration,
    trajectories_per_iteration,
)
from sample_factory.cfg.policy_params import PolicyParamsError, parse_policy_overrides


class ConfigError(ValueError):
    """Carries every problem found; str() is one line per problem."""

    def __init__(self, errors: list[str]):
        self.errors = errors
        super().__init__("\n".join(errors))


# Flags of sample-factory 2.x that are parsed (so its users' scripts and saved configs load) but
# not implemented here, with why. Set to anything but their library default, they stop the run
# before it starts.
_NOT_SUPPORTED_REASONS = {
    "algo": "APPO is the only algorithm (plain PPO is --async_rl=False)",
    "optimizer": "only Adam is implemented",
    "decorrelate_envs_on_one_worker": (
        "envs of one worker are not offset from each other at start; --decorrelate_experience_max_seconds delays whole workers"
    ),
    "summaries_use_frameskip": "env steps are always counted in frames after frameskip",
    "env_gpu_actions": "envs receive their actions as numpy arrays",
    "env_gpu_observations": "observations are numpy arrays, copied into shared host memory",
}
_LIBRARY_DEFAULTS = make_parser()
NOT_SUPPORTED: dict[str, tuple[object, str]] = {
    name: (_LIBRARY_DEFAULTS.get_default(name), reason) for name, reason in _NOT_SUPPORTED_REASONS.items()
}


def unsupported_flag_errors(cfg) -> list[str]:
    return [
        f"--{name}={cfg[name]} is not supported: {reason}"
        for name, (supported, reason) in NOT_SUPPORTED.items()
        if cfg[name] != supported
    ]


def _positive(cfg, errors: list[str], *names: str):
    for name in names:
        if cfg[name] is None or cfg[name] <= 0:
            errors.append(f"--{name}={cfg[name]}: must be a positive number")


def config_errors(cfg, env_info=None) -> list[str]:
    """Problems with `cfg` (and with it for this env, when `env_info` is given)."""
    errors = unsupported_flag_errors(cfg)
    _positive(
        cfg,
        errors,
        "num_workers",
        "num_envs_per_worker",
        "worker_num_splits",
        "rollout",
        "batch_size",
        "num_batches_per_epoch",
        "num_epochs",
        "num_policies",
        "policy_workers_per_policy",
        "learning_rate",
        "env_frameskip",
        "num_batches_to_accumulate",
    )
    if errors:
        return errors

    if cfg.num_envs_per_worker % cfg.worker_num_splits != 0:
        errors.append(
            f"--num_envs_per_worker={cfg.num_envs_per_worker}: must be a multiple of --worker_num_splits={cfg.worker_num_splits}"
            f" (e.g. --num_envs_per_worker={cfg.worker_num_splits * max(1, envs_per_split(cfg))})"
        )
    if samples_per_iteration(cfg) % cfg.rollout != 0:
        errors.append(
            f"--batch_size={cfg.batch_size}: batch_size * num_batches_per_epoch must be a multiple of --rollout={cfg.rollout}"
        )
    recurrence = effective_recurrence(cfg)
    if cfg.rollout % recurrence != 0:
        errors.append(f"--recurrence={cfg.recurrence}: --rollout={cfg.rollout} must be a multiple of it")
    if cfg.batch_size % recurrence != 0:
        errors.append(f"--batch_size={cfg.batch_size}: must be a multiple of the recurrence ({recurrence})")
    if cfg.use_rnn and recurrence == 1 and cfg.recurrence == 1:
        errors.append("--recurrence=1 with --use_rnn=True: an RNN needs sequences; use --recurrence=-1 (the rollout)")
    if not 0.0 <= cfg.gamma <= 1.0:
        errors.append(f"--gamma={cfg.gamma}: must be in [0, 1]")
    if not 0.0 <= cfg.gae_lambda <= 1.0:
        errors.append(f"--gae_lambda={cfg.gae_lambda}: must be in [0, 1]")
    if cfg.max_env_failures < 0:
        errors.append(f"--max_env_failures={cfg.max_env_failures}: must be 0 (stop at the first) or more")
    if cfg.max_worker_restarts < 0:
        errors.append(f"--max_worker_restarts={cfg.max_worker_restarts}: must be 0 (stop at the first) or more")
    if cfg.ppo_clip_ratio <= 0:
        errors.append(f"--ppo_clip_ratio={cfg.ppo_clip_ratio}: must be positive (e.g. 0.1)")
    if not cfg.async_rl and cfg.num_policies > 1:
        errors.append("--async_rl=False with --num_policies>1: sync mode trains one policy; use --async_rl=True")
    if cfg.exploration_loss == "symmetric_kl" and env_info is not None and _has_continuous_part(env_info.action_space):
        errors.append(
            "--exploration_loss=symmetric_kl needs discrete actions (a uniform prior); this env's actions are"
            " continuous: use --exploration_loss=entropy"
        )
    errors += _pbt_errors(cfg)
    if cfg.batched_sampling and env_info is not None and env_info.num_agents > 1:
        errors.append("--batched_sampling=True needs a single-agent env; this env has several agents")
    if cfg.league_opponents > 0 and env_info is not None and env_info.num_agents < 2:
        errors.append(f"--league_opponents={cfg.league_opponents}: frozen opponents need a multi-agent env")

    if env_info is not None and not cfg.async_rl:
        per_split = agents_per_split(cfg, env_info.num_agents)
        trajectories = trajectories_per_iteration(cfg)
        if per_split and trajectories % per_split != 0:
            errors.append(
                f"--batch_size={cfg.batch_size}: in sync mode (--async_rl=False) a training batch must hold whole splits:"
                f" batch_size * num_batches_per_epoch / rollout = {trajectories} trajectories must be a multiple of"
                f" {per_split} (envs per split x agents per env)"
            )
    return errors


def verify_cfg(cfg, env_info=None):
    errors = config_errors(cfg, env_info)
    if errors:
        raise ConfigError(errors)


def _has_continuous_part(space) -> bool:
    import gymnasium as gym

    if isinstance(space, gym.spaces.Tuple):
        return any(_has_continuous_part(s) for s in space.spaces)
    return isinstance(space, gym.spaces.Box)


def _pbt_errors(cfg) -> list[str]:
    errors = []
    try:
        parse_policy_overrides(cfg.policy_hyperparams, cfg.num_policies)
    except PolicyParamsError as e:
        errors.append(str(e))
    if cfg.league_snapshot_every_env_steps < 0:
        errors.append(f"--league_snapshot_every_env_steps={cfg.league_snapshot_every_env_steps}: 0 (off) or more")
    if cfg.league_size < 2:
        errors.append(f"--league_size={cfg.league_size}: at least 2 (the first snapshot and the newest)")
    if cfg.league_opponents < 0:
        errors.append(f"--league_opponents={cfg.league_opponents}: 0 (none) or more")
    elif cfg.league_opponents > 0 and cfg.league_snapshot_every_env_steps <= 0:
        errors.append(
            f"--league_opponents={cfg.league_opponents} play league snapshots: set --league_snapshot_every_env_steps"
        )
    if not 0.0 <= cfg.league_opponent_prob <= 1.0:
        errors.append(f"--league_opponent_prob={cfg.league_opponent_prob}: a probability in [0, 1]")
    if cfg.league_opponents == 0 and (cfg.league_opponent_prob != 0.5 or cfg.league_opponent_sampling != "win_rate"):
        errors.append("--league_opponent_prob and --league_opponent_sampling do nothing without --league_opponents=K")
    if not cfg.with_pbt:
        return errors
    if cfg.pbt_period_env_steps <= 0:
        errors.append(f"--pbt_period_env_steps={cfg.pbt_period_env_steps}: must be positive")
    if not 0.0 < cfg.pbt_replace_fraction <= 0.5:
        errors.append(
            f"--pbt_replace_fraction={cfg.pbt_replace_fraction}: must be in (0, 0.5] (the bottom and the top"
            " fraction of the population must not overlap)"
        )
    if not 0.0 <= cfg.pbt_mutation_rate <= 1.0:
        errors.append(f"--pbt_mutation_rate={cfg.pbt_mutation_rate}: must be a probability in [0, 1]")
    if not 1.0 <= cfg.pbt_perturb_min <= cfg.pbt_perturb_max:
        errors.append(
            f"--pbt_perturb_min={cfg.pbt_perturb_min} --pbt_perturb_max={cfg.pbt_perturb_max}: need"
            " 1 <= min <= max (a mutation multiplies or divides by a factor between them)"
        )
    if cfg.pbt_replace_reward_gap < 0 or cfg.pbt_replace_reward_gap_absolute < 0:
        errors.append("--pbt_replace_reward_gap and --pbt_replace_reward_gap_absolute: must not be negative")
    return errors
