"""A custom env and a custom model, following the documented templates (API.md).

    python -m sf_examples.train_custom_env_custom_model --experiment=custom --train_for_env_steps=100000

The env is the cue-memory task of `sf_examples.memory_task`; the encoder is a small residual MLP
registered through the global model factory, so learner and inference workers build it too.
"""

from __future__ import annotations

import sys

from torch import nn

from sample_factory.algo.utils.context import global_model_factory
from sample_factory.cfg.arguments import parse_full_cfg, parse_sf_args
from sample_factory.envs.env_utils import register_env
from sample_factory.model.encoder import Encoder
from sample_factory.train import run_rl
from sf_examples.memory_task import make_cue_memory_env


class ResidualMlpEncoder(Encoder):
    """obs -> Linear -> (x + MLP(x)): a tiny example of a user-defined encoder."""

    def __init__(self, cfg, obs_space):
        super().__init__(cfg)
        size = cfg.custom_hidden_size
        self.inp = nn.Linear(obs_space["obs"].shape[0], size)
        self.block = nn.Sequential(nn.ELU(), nn.Linear(size, size), nn.ELU(), nn.Linear(size, size))
        self.out_size = size

    def forward(self, obs_dict):
        x = self.inp(obs_dict["obs"])
        return x + self.block(x)

    def get_out_size(self) -> int:
        return self.out_size


def make_residual_encoder(cfg, obs_space) -> Encoder:
    return ResidualMlpEncoder(cfg, obs_space)


def add_extra_params(parser):
    parser.add_argument("--custom_hidden_size", type=int, default=32, help="Width of the example encoder")


def register_custom_components():
    register_env("cue_memory", make_cue_memory_env)
    global_model_factory().register_encoder_factory(make_residual_encoder)


def parse_custom_args(argv=None, evaluation=False):
    argv = sys.argv[1:] if argv is None else argv
    if not any(a.startswith("--env") for a in argv):
        argv = ["--env=cue_memory", *argv]
    parser, _ = parse_sf_args(argv, evaluation=evaluation)
    add_extra_params(parser)
    parser.set_defaults(
        rnn_size=32, rollout=16, batch_size=256, num_envs_per_worker=8, num_epochs=4, learning_rate=3e-3
    )
    return parse_full_cfg(parser, argv)


def main() -> int:
    register_custom_components()
    return run_rl(parse_custom_args())


if __name__ == "__main__":
    sys.exit(main())
