"""Train on any registered gymnasium id: `python -m sf_examples.train_gym_env --env=CartPole-v1 --experiment=cartpole`."""

from __future__ import annotations

import sys

import gymnasium as gym

from sample_factory.cfg.arguments import parse_full_cfg, parse_sf_args
from sample_factory.envs.env_utils import register_env
from sample_factory.train import run_rl


def make_gym_env(full_env_name: str, cfg=None, env_config=None, render_mode=None):
    """A gymnasium env by id; with `env_config.num_envs` (batched sampling) a vector env."""
    num_envs = env_config.get("num_envs") if env_config else None
    if num_envs:
        return gym.make_vec(full_env_name, num_envs=num_envs, render_mode=render_mode)
    return gym.make(full_env_name, render_mode=render_mode)


def gym_env_defaults(parser):
    """Small fast models: classic-control tasks don't need a 512-unit RNN."""
    parser.set_defaults(
        encoder_mlp_layers=[64, 64],
        use_rnn=False,
        num_workers=2,
        num_envs_per_worker=8,
        worker_num_splits=2,
        rollout=32,
        batch_size=512,
        num_batches_per_epoch=1,
        num_epochs=8,
        learning_rate=1e-3,
        exploration_loss_coeff=0.01,
        gamma=0.99,
        gae_lambda=0.95,
        ppo_clip_ratio=0.2,
        normalize_input=True,
        value_bootstrap=True,
        max_grad_norm=0.5,
        train_for_env_steps=400_000,
        save_every_sec=30,
        report_interval_sec=2.0,
    )


def register_gym_env(env_name: str):
    if env_name not in gym.registry:
        return  # run_rl reports the unknown name with the list of registered ones
    register_env(env_name, make_gym_env)


def setup_gym_parser(parser, partial_cfg):
    """Env-family hook (see sample_factory/envs/env_families.py): gymnasium ids and their defaults."""
    gym_env_defaults(parser)
    register_gym_env(partial_cfg.env)


def parse_gym_args(argv=None, evaluation=False):
    parser, partial_cfg = parse_sf_args(argv, evaluation=evaluation)
    gym_env_defaults(parser)
    register_gym_env(partial_cfg.env)
    return parse_full_cfg(parser, argv)


def main() -> int:
    cfg = parse_gym_args()
    return run_rl(cfg)


if __name__ == "__main__":
    sys.exit(main())
