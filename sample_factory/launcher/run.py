"""Runs a sweep: `python -m sample_factory.launcher.run --run=<module> --backend=processes|slurm|ray`.

`--run` names an importable module that defines `RUN_DESCRIPTION` (see run_description.py), as in
sample-factory 2.x. Running the same sweep again skips the runs that finished and resumes the
others from their checkpoints. `python -m sample_factory.launcher.results --run=<module>` prints
where every run stands.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from pathlib import Path

from sample_factory.launcher.run_description import RunDescription
from sample_factory.utils.logging_setup import setup_logging

log = logging.getLogger(__name__)

BACKENDS = ("processes", "slurm", "ray")
BAD_INPUT_STATUS = 2


class SweepModuleError(ValueError):
    """The --run module cannot be imported or describes no sweep; the message says which."""


def add_sweep_args(parser: argparse.ArgumentParser):
    """The flags that say which sweep and where its runs live (the launcher and the results table)."""
    parser.add_argument("--train_dir", default="./train_dir", type=str, help="Folder the sweep's folder goes under")
    parser.add_argument(
        "--run",
        required=True,
        type=str,
        help="Importable module defining RUN_DESCRIPTION, e.g. sf_examples.experiments.cartpole_lr_sweep",
    )
    parser.add_argument("--experiment_suffix", default="", type=str, help="Appended to each experiment's folder")


def launcher_argparser(argv) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sample_factory.launcher.run", description=__doc__.splitlines()[0])
    add_sweep_args(parser)
    parser.add_argument("--backend", default="processes", choices=BACKENDS, help="Where the runs go")
    parser.add_argument(
        "--pause_between", default=1.0, type=float, help="Seconds between starting (Slurm, Ray: submitting) two runs"
    )
    backend, _ = parser.parse_known_args(argv)
    if backend.backend == "processes":
        from sample_factory.launcher.run_processes import add_os_parallelism_args

        add_os_parallelism_args(parser)
    elif backend.backend == "slurm":
        from sample_factory.launcher.run_slurm import add_slurm_args

        add_slurm_args(parser)
    else:
        from sample_factory.launcher.run_ray import add_ray_args

        add_ray_args(parser)
    return parser


def load_run_description(module_name: str, experiment_suffix: str = "") -> RunDescription:
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise SweepModuleError(f"--run={module_name}: cannot import it ({e}); it must be on the import path") from e
    description = getattr(module, "RUN_DESCRIPTION", None)
    if not isinstance(description, RunDescription):
        raise SweepModuleError(f"--run={module_name}: the module defines no RUN_DESCRIPTION = RunDescription(...)")
    description.experiment_suffix = experiment_suffix
    return description


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    setup_logging()
    args = launcher_argparser(argv).parse_args(argv)
    args.train_dir = str(Path(args.train_dir).resolve())  # the same folder wherever a run lands (Slurm, Ray)
    try:
        description = load_run_description(args.run, args.experiment_suffix)
        if args.backend == "processes":
            from sample_factory.launcher.run_processes import run

            return run(description, args)
        if args.backend == "slurm":
            from sample_factory.launcher.run_slurm import run_slurm

            return run_slurm(description, args)
        from sample_factory.launcher.run_ray import run_ray

        return run_ray(description, args)
    except (SweepModuleError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return BAD_INPUT_STATUS


if __name__ == "__main__":
    sys.exit(main())
