"""Play a policy trained with train_gym_env:
`python -m sf_examples.enjoy_gym_env --env=CartPole-v1 --experiment=cartpole [--no_render] [--save_video]`."""

from __future__ import annotations

import sys

from sample_factory.enjoy import enjoy
from sf_examples.train_gym_env import parse_gym_args


def main() -> int:
    cfg = parse_gym_args(evaluation=True)
    status, _ = enjoy(cfg)
    return status


if __name__ == "__main__":
    sys.exit(main())
