"""Push an experiment folder to the Hugging Face Hub, with a model card:

python -m sample_factory.huggingface.push_to_hub -r <user>/<repo> -d ./train_dir/<experiment>
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sample_factory.huggingface.huggingface_utils import HubError, generate_model_card, push_to_hf


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sample_factory.huggingface.push_to_hub")
    parser.add_argument("-r", "--hf_repository", required=True, help="<username>/<repo_name> to push to")
    parser.add_argument("-d", "--experiment_dir", required=True, help="The experiment folder")
    parser.add_argument("--train_script", default=None, help="Module that trains it (for the model card)")
    parser.add_argument("--enjoy_script", default=None, help="Module that plays it (for the model card)")
    args = parser.parse_args(argv)
    exp_dir = Path(args.experiment_dir)
    cfg_file = exp_dir / "config.json"
    if not cfg_file.is_file():
        print(f"error: {cfg_file} does not exist: -d must name an experiment folder", file=sys.stderr)
        return 2
    cfg = json.loads(cfg_file.read_text())
    generate_model_card(
        exp_dir, "APPO", cfg["env"], args.hf_repository,
        enjoy_name=args.enjoy_script, train_name=args.train_script,
    )  # fmt: skip
    try:
        push_to_hf(exp_dir, args.hf_repository)
    except HubError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
