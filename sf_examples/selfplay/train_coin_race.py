"""Self-play on coin race (coin_race.py): one policy plays both seats, or a population plays itself.

    python -m sf_examples.selfplay.train_coin_race --experiment=coin_selfplay
    python -m sample_factory.match --env=coin_race --experiment=coin_selfplay --opponent=first

The match plays the trained policy against its frozen snapshot from the start of training (a league
snapshot, on by default here). With `--num_policies=4 --with_pbt=True` the agents of each game
belong to different members of the population (`--pbt_mix_policies_in_one_env`, on by default).
"""

from __future__ import annotations

import sys

from sample_factory.cfg.arguments import parse_full_cfg, parse_sf_args
from sample_factory.envs.env_utils import register_env
from sample_factory.train import run_rl
from sf_examples.selfplay.coin_race import make_coin_race

ENV_NAME = "coin_race"


def coin_race_defaults(parser):
    parser.set_defaults(
        encoder_mlp_layers=[64, 64],
        use_rnn=False,
        num_workers=2,
        num_envs_per_worker=16,
        worker_num_splits=2,
        rollout=32,
        batch_size=1024,
        num_epochs=4,
        learning_rate=1e-3,
        exploration_loss_coeff=0.01,
        gamma=0.97,
        normalize_input=False,
        max_grad_norm=0.5,
        train_for_env_steps=300_000,
        league_snapshot_every_env_steps=100_000,
        save_every_sec=30,
        report_interval_sec=2.0,
    )


def setup_coin_race_parser(parser, partial_cfg=None):
    """Env-family hook (sample_factory/envs/env_families.py) for `coin_race`."""
    coin_race_defaults(parser)
    register_env(ENV_NAME, make_coin_race)


def parse_coin_race_args(argv=None, evaluation=False):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not any(a == "--env" or a.startswith("--env=") for a in argv):
        argv.append(f"--env={ENV_NAME}")
    parser, partial_cfg = parse_sf_args(argv, evaluation=evaluation)
    setup_coin_race_parser(parser, partial_cfg)
    return parse_full_cfg(parser, argv)


def main() -> int:
    return run_rl(parse_coin_race_args())


if __name__ == "__main__":
    sys.exit(main())
