"""A custom multi-agent env, laid out as sample-factory 2.x's example of the same name:

    python -m sf_examples.train_custom_multi_env --experiment=multi --train_for_env_steps=200000

The env is the pointing game of `multi_agent_example.py` (two agents, action masks, an agent that
sits out some steps); `--custom_env_num_agents` sets how many agents play.
"""

from __future__ import annotations

import sys

from sample_factory.cfg.arguments import parse_full_cfg, parse_sf_args
from sample_factory.envs.env_utils import register_env
from sample_factory.train import run_rl
from sf_examples.multi_agent_example import PointingGameEnv

ENV_NAME = "my_custom_multi_env_v1"


def make_custom_multi_env_func(full_env_name, cfg=None, _env_config=None, render_mode=None):
    num_agents = cfg.get("custom_env_num_agents", 2) if cfg is not None else 2
    return PointingGameEnv(num_agents=num_agents)


def add_extra_params_func(parser):
    parser.add_argument("--custom_env_num_agents", type=int, default=2, help="Agents in the custom multi-agent env")


def override_default_params_func(env, parser):
    parser.set_defaults(num_envs_per_worker=4, rollout=16, batch_size=128, num_policies=1)


def register_custom_components():
    register_env(ENV_NAME, make_custom_multi_env_func)


def parse_custom_args(argv=None, evaluation=False):
    argv = sys.argv[1:] if argv is None else argv
    if not any(a.startswith("--env") for a in argv):
        argv = [f"--env={ENV_NAME}", *argv]
    parser, partial_cfg = parse_sf_args(argv=argv, evaluation=evaluation)
    add_extra_params_func(parser)
    override_default_params_func(partial_cfg.env, parser)
    return parse_full_cfg(parser, argv)


def main() -> int:
    register_custom_components()
    return run_rl(parse_custom_args())


if __name__ == "__main__":
    sys.exit(main())
