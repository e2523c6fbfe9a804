"""Download an experiment from the Hugging Face Hub into the train folder:

    python -m sample_factory.huggingface.load_from_hub -r <user>/<repo> [-d ./train_dir]

It lands in `<train_dir>/<repo>`; play it with `--experiment=<repo>`.
"""

from __future__ import annotations

import argparse
import sys

from sample_factory.huggingface.huggingface_utils import HubError, load_from_hf


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sample_factory.huggingface.load_from_hub")
    parser.add_argument("-r", "--hf_repository", required=True, help="<username>/<repo_name> to download")
    parser.add_argument("-d", "--train_dir", default="./train_dir", help="Saves the repo to <train_dir>/<repo_name>")
    args = parser.parse_args(argv)
    try:
        path = load_from_hf(args.train_dir, args.hf_repository)
    except HubError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"Loaded {args.hf_repository} into {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
