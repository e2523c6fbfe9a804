"""Watch or record a MuJoCo policy:
`python -m sf_examples.mujoco.enjoy_mujoco --env=mujoco_halfcheetah --experiment=halfcheetah --save_video --no_render`.

Without a display, video rendering uses EGL (see mujoco_envs.py); set MUJOCO_GL to choose another backend.
"""

from __future__ import annotations

import sys

from sample_factory.enjoy import enjoy
from sf_examples.mujoco.train_mujoco import parse_mujoco_args


def main() -> int:
    cfg = parse_mujoco_args(evaluation=True)
    status, _ = enjoy(cfg)
    return status


if __name__ == "__main__":
    sys.exit(main())
