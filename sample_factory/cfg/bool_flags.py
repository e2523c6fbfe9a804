"""`str2bool`: how a boolean flag reads its value (`--flag=True`, `--flag=0`, ...)."""

from __future__ import annotations

import argparse


def str2bool(value) -> bool:
    if isinstance(value, bool):
        return value
    lowered = str(value).lower()
    if lowered in ("true", "t", "yes", "y", "1"):
        return True
    if lowered in ("false", "f", "no", "n", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean (True/False), got {value!r}")
