"""Export a policy trained with train_gym_env to ONNX:
`python -m sf_examples.export_gym_onnx --env=CartPole-v1 --experiment=cartpole [--onnx_path=policy.onnx]`
(default path: <train_dir>/<experiment>/policy_p<policy_index>.onnx)."""

from __future__ import annotations

import sys

from sample_factory.cfg.arguments import parse_full_cfg, parse_sf_args
from sample_factory.export_onnx import add_export_args, export_onnx, onnx_path_for
from sf_examples.train_gym_env import gym_env_defaults, register_gym_env


def main(argv=None) -> int:
    parser, partial_cfg = parse_sf_args(argv, evaluation=True)
    gym_env_defaults(parser)
    add_export_args(parser)
    register_gym_env(partial_cfg.env)
    cfg = parse_full_cfg(parser, argv)
    return export_onnx(cfg, onnx_path_for(cfg))


if __name__ == "__main__":
    sys.exit(main())
