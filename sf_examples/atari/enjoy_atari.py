"""Watch or record an Atari policy:
`python -m sf_examples.atari.enjoy_atari --env=atari_breakout --experiment=breakout --save_video --no_render`.

Plays full games (no episodic life) with unclipped rewards: the returns printed are game scores.
"""

from __future__ import annotations

import sys

from sample_factory.enjoy import enjoy
from sf_examples.atari.train_atari import parse_atari_args


def main() -> int:
    cfg = parse_atari_args(evaluation=True)
    status, _ = enjoy(cfg)
    return status


if __name__ == "__main__":
    sys.exit(main())
