"""Play a policy trained with train_vizdoom:
`python -m sf_examples.vizdoom.enjoy_vizdoom --env=doom_basic --experiment=basic [--no_render] [--save_video]`."""

from __future__ import annotations

import sys

from sample_factory.enjoy import enjoy
from sf_examples.vizdoom.train_vizdoom import parse_vizdoom_cfg


def main() -> int:
    cfg = parse_vizdoom_cfg(evaluation=True)
    status, _ = enjoy(cfg)
    return status


if __name__ == "__main__":
    sys.exit(main())
