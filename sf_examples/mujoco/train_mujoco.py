"""Train a MuJoCo task: `python -m sf_examples.mujoco.train_mujoco --env=mujoco_halfcheetah --experiment=halfcheetah`.

Tasks: mujoco_halfcheetah, mujoco_hopper, mujoco_walker2d, mujoco_ant, mujoco_humanoid, ... (mujoco_envs.py).
"""

from __future__ import annotations

import sys

from sample_factory.cfg.arguments import parse_full_cfg, parse_sf_args
from sample_factory.train import run_rl
from sf_examples.mujoco.mujoco_envs import register_mujoco_envs
from sf_examples.mujoco.mujoco_params import add_mujoco_env_args, mujoco_override_defaults


def setup_mujoco_parser(parser, partial_cfg=None):
    """Env-family hook (sample_factory/envs/env_families.py): MuJoCo defaults and `mujoco_*` envs."""
    add_mujoco_env_args(parser)
    mujoco_override_defaults(parser)
    register_mujoco_envs()


def parse_mujoco_args(argv=None, evaluation: bool = False):
    parser, partial_cfg = parse_sf_args(argv, evaluation=evaluation)
    setup_mujoco_parser(parser, partial_cfg)
    return parse_full_cfg(parser, argv)


def register_mujoco_components():
    """sample-factory 2.x's name: registers every `mujoco_*` env."""
    register_mujoco_envs()


parse_mujoco_cfg = parse_mujoco_args  # sample-factory 2.x's name


def main() -> int:
    cfg = parse_mujoco_args()
    return run_rl(cfg)


if __name__ == "__main__":
    sys.exit(main())
