"""Convert checkpoints between sample-factory 2.x and this project, in both directions.

    python -m sample_factory.convert_checkpoint --to=sf2 SRC DST    # this project -> 2.x
    python -m sample_factory.convert_checkpoint --to=sf SRC DST     # 2.x -> this project

SRC and DST are checkpoint files, or folders: an experiment folder (every `checkpoint_p*/`
inside) or one `checkpoint_p<policy>` folder; files keep their names. Loading a 2.x checkpoint
needs no conversion here (it is converted on load); writing one for 2.x does.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from sample_factory.utils.checkpoint import CHECKPOINT_FORMAT_VERSION, save_atomically
from sample_factory.utils.experiment_folder import CHECKPOINT_DIR_PREFIX
from sample_factory.utils.sf2_checkpoint import from_sf2, is_sf2_checkpoint, to_sf2


def convert_file(src: Path, dst: Path, to: str) -> str:
    state = torch.load(src, map_location="cpu", weights_only=True)
    sf2 = is_sf2_checkpoint(state)
    if to == "sf2":
        if sf2:
            return "already 2.x"
        state = to_sf2(state)
    else:
        if not sf2:
            return "already this project's"
        state = from_sf2(state, CHECKPOINT_FORMAT_VERSION)
    save_atomically(state, dst)
    return "converted"


def checkpoint_files(src: Path) -> list[Path]:
    if src.is_file():
        return [src]
    return sorted(p for p in src.rglob("*.pth") if p.parent.name.startswith(CHECKPOINT_DIR_PREFIX))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sample_factory.convert_checkpoint", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--to", choices=["sf2", "sf"], required=True, help="sf2: for sample-factory 2.x; sf: for this project"
    )
    parser.add_argument("src", type=Path)
    parser.add_argument("dst", type=Path)
    args = parser.parse_args(argv)
    if not args.src.exists():
        print(f"error: {args.src} does not exist", file=sys.stderr)
        return 2
    files = checkpoint_files(args.src)
    if not files:
        print(f"error: no checkpoint (*.pth under checkpoint_p*/) in {args.src}", file=sys.stderr)
        return 2
    for file in files:
        dst = args.dst if args.src.is_file() else args.dst / file.relative_to(args.src)
        try:
            outcome = convert_file(file, dst, args.to)
        except Exception as e:
            print(f"error: {file} could not be converted ({type(e).__name__}: {e})", file=sys.stderr)
            return 1
        print(f"{file} -> {dst}: {outcome}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
