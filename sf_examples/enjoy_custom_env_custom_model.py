"""Play the policy trained by `train_custom_env_custom_model` (sample-factory 2.x's example of the same name):

python -m sf_examples.enjoy_custom_env_custom_model --experiment=custom --no_render --max_num_episodes=10
"""

from __future__ import annotations

import sys

from sample_factory.enjoy import enjoy
from sf_examples.train_custom_env_custom_model import parse_custom_args, register_custom_components


def main() -> int:
    register_custom_components()
    cfg = parse_custom_args(evaluation=True)
    status, _ = enjoy(cfg)
    return status


if __name__ == "__main__":
    sys.exit(main())
