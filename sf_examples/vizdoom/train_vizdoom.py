"""Train on a ViZDoom scenario: `python -m sf_examples.vizdoom.train_vizdoom --env=doom_basic --experiment=basic`.

Envs: see sf_examples/vizdoom/doom/doom_specs.py (`doom_basic`, ..., `doom_deathmatch_bots`, `doom_duel`).
"""

from __future__ import annotations

import sys

from sample_factory.algo.utils.context import global_model_factory
from sample_factory.cfg.arguments import parse_full_cfg, parse_sf_args
from sample_factory.train import run_rl
from sf_examples.vizdoom.doom.doom_envs import register_doom_envs
from sf_examples.vizdoom.doom.doom_model import make_vizdoom_encoder
from sf_examples.vizdoom.doom.doom_params import add_doom_env_args, doom_override_defaults


def register_vizdoom_envs():
    register_doom_envs()


def register_vizdoom_models():
    """The default encoder already fits Doom's observations; registered so 2.x scripts read the same."""
    global_model_factory().register_encoder_factory(make_vizdoom_encoder)


def register_vizdoom_components():
    register_vizdoom_envs()
    register_vizdoom_models()


def setup_doom_parser(parser, partial_cfg=None):
    """Env-family hook (sample_factory/envs/env_families.py): Doom flags, defaults and envs."""
    add_doom_env_args(parser)
    doom_override_defaults(parser, partial_cfg.env if partial_cfg is not None else None)
    register_doom_envs()


def parse_vizdoom_cfg(argv=None, evaluation=False):
    parser, partial_cfg = parse_sf_args(argv, evaluation=evaluation)
    setup_doom_parser(parser, partial_cfg)
    return parse_full_cfg(parser, argv)


def main() -> int:
    cfg = parse_vizdoom_cfg()
    return run_rl(cfg)


if __name__ == "__main__":
    sys.exit(main())
