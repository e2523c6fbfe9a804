"""Train on an Atari game: `python -m sf_examples.atari.train_atari --env=atari_breakout --experiment=breakout`.

Every single-player game of ale-py is available as `atari_<rom id>` (atari_pong, atari_space_invaders, ...).
The console's `reward` is the clipped return of one life; the real game score is in TensorBoard
(`episode/true_objective`, `episode_extra/game_score`). See atari_envs.py.
"""

from __future__ import annotations

import sys

from sample_factory.cfg.arguments import parse_full_cfg, parse_sf_args
from sample_factory.train import run_rl
from sf_examples.atari.atari_envs import register_atari_envs
from sf_examples.atari.atari_params import add_atari_env_args, atari_override_defaults


def setup_atari_parser(parser, partial_cfg=None, evaluation: bool = False):
    """Env-family hook (sample_factory/envs/env_families.py): Atari flags, defaults and `atari_*` envs."""
    add_atari_env_args(parser)
    atari_override_defaults(parser)
    register_atari_envs(evaluation=evaluation)


def parse_atari_args(argv=None, evaluation: bool = False):
    parser, partial_cfg = parse_sf_args(argv, evaluation=evaluation)
    setup_atari_parser(parser, partial_cfg, evaluation=evaluation)
    return parse_full_cfg(parser, argv)


def register_atari_components():
    """sample-factory 2.x's name: registers every `atari_*` env (and 2.x's names of them)."""
    register_atari_envs()


def main() -> int:
    cfg = parse_atari_args()
    return run_rl(cfg)


if __name__ == "__main__":
    sys.exit(main())
