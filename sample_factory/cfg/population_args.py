"""Populations' flags: population-based training and the league of snapshots."""

from __future__ import annotations

import argparse

from sample_factory.cfg.bool_flags import str2bool


def add_pbt_args(p: argparse.ArgumentParser):
    """Populations: population-based training and the league (2.x's one call)."""
    add_population_args(p)
    add_league_args(p)


def add_population_args(p):
    g = p.add_argument_group("population-based training")
    g.add_argument(
        "--with_pbt",
        type=str2bool,
        default=False,
        help="Population-based training of the --num_policies policies: every --pbt_period_env_steps the worst"
        " take the weights of the best, and hyper-parameters mutate (README, 'Populations')",
    )
    g.add_argument(
        "--policy_hyperparams",
        type=str,
        default=None,
        help='Per-policy hyper-parameters, JSON or a JSON file: \'{"1": {"learning_rate": 1e-5}}\' (with or'
        " without PBT); policy_XX_cfg.json files of an earlier run of the experiment take precedence",
    )
    g.add_argument(
        "--pbt_mix_policies_in_one_env",
        type=str2bool,
        default=True,
        help="Agents of one env may belong to different policies",
    )
    g.add_argument("--pbt_period_env_steps", type=int, default=int(5e6), help="Env steps between PBT updates")
    g.add_argument("--pbt_start_mutation", type=int, default=int(2e7), help="Env steps before the first mutation")
    g.add_argument("--pbt_replace_fraction", type=float, default=0.3, help="Fraction of the population replaced")
    g.add_argument("--pbt_mutation_rate", type=float, default=0.15, help="Probability of mutating each hyper-parameter")
    g.add_argument("--pbt_replace_reward_gap", type=float, default=0.1, help="Relative gap needed to replace a policy")
    g.add_argument(
        "--pbt_replace_reward_gap_absolute", type=float, default=1e-6, help="Absolute gap needed to replace a policy"
    )
    g.add_argument(
        "--pbt_perturb_min",
        type=float,
        default=1.1,
        help="A mutation multiplies or divides by a factor from [min, max]",
    )
    g.add_argument(
        "--pbt_perturb_max",
        type=float,
        default=1.5,
        help="A mutation multiplies or divides by a factor from [min, max]",
    )
    g.add_argument("--pbt_optimize_gamma", type=str2bool, default=False, help="Let PBT mutate gamma")
    g.add_argument("--pbt_target_objective", type=str, default="true_objective", help="info key PBT maximizes")


def add_league_args(p):
    g = p.add_argument_group("league")
    g.add_argument(
        "--league_snapshot_every_env_steps",
        type=int,
        default=0,
        help="Keep a frozen snapshot of each policy at its start and every this many of its env steps, in"
        " <experiment>/league/ (0: none); `python -m sample_factory.match` plays a policy against them",
    )
    g.add_argument(
        "--league_size",
        type=int,
        default=10,
        help="Snapshots kept per policy: the first (the policy at its start) and the newest",
    )
    g.add_argument(
        "--league_opponents",
        type=int,
        default=0,
        help="Frozen opponents in training: this many extra inference-only policies, each playing a league"
        " snapshot (needs --league_snapshot_every_env_steps and a multi-agent env; 0: none)",
    )
    g.add_argument(
        "--league_opponent_prob",
        type=float,
        default=0.5,
        help="Chance that a draw of an env's policies puts a frozen opponent in one of its seats",
    )
    g.add_argument(
        "--league_opponent_sampling",
        type=str,
        default="win_rate",
        choices=["uniform", "win_rate"],
        help="Which snapshots the frozen opponents play: uniformly, or more often those the learning"
        " policies score worst against (their games in training)",
    )
