"""Where every run of a sweep stands: `python -m sample_factory.launcher.results --run=<module>`.

One row per run: its parameters, status (from its launcher record), env steps, final and best
mean return and FPS (from its progress.csv). `--plot=curves.png --group_by=learning_rate` draws
every run's curve in one PNG, one colour per value of the parameter.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from sample_factory.launcher.run import BAD_INPUT_STATUS, SweepModuleError, add_sweep_args, load_run_description
from sample_factory.launcher.run_description import SweepRun
from sample_factory.launcher.status import read_status
from sample_factory.plot import ProgressFileError, plot_experiments, read_progress


@dataclass
class RunResult:
    run: SweepRun
    status: str
    env_steps: int | None = None
    final_return: float | None = None
    best_return: float | None = None
    fps: float | None = None


def result_of(run: SweepRun) -> RunResult:
    status = read_status(run.status_path).get("status", "not started")
    try:
        per_policy = read_progress(run.experiment_dir)
    except ProgressFileError:
        return RunResult(run, status)
    # Several policies (a population): the run is as good as its best policy.
    last = [cols for cols in per_policy.values()]
    env_steps = max(int(cols["env_steps"][-1]) for cols in last)
    seconds = max(float(cols["train_seconds"][-1]) for cols in last)
    return RunResult(
        run,
        status,
        env_steps=env_steps,
        final_return=max(float(cols["reward_mean"][-1]) for cols in last),
        best_return=max(float(cols["reward_mean"].max()) for cols in last),
        fps=sum(float(cols["env_steps"][-1]) for cols in last) / seconds if seconds > 0 else None,
    )


def _cell(value, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def format_table(results: list[RunResult]) -> str:
    param_names = list(dict.fromkeys(k for r in results for k in r.run.params))
    header = ["run", *param_names, "status", "env steps", "final return", "best return", "FPS"]
    rows = [
        [
            r.run.name,
            *(str(r.run.params.get(k, "-")) for k in param_names),
            r.status,
            _cell(r.env_steps),
            _cell(r.final_return),
            _cell(r.best_return),
            _cell(r.fps, 0),
        ]
        for r in results
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sample_factory.launcher.results", description=__doc__.splitlines()[0]
    )
    add_sweep_args(parser)
    parser.add_argument("--plot", type=Path, default=None, help="Also draw every run's curve into this PNG")
    parser.add_argument("--group_by", type=str, default=None, help="One colour per value of this parameter")
    parser.add_argument("--smooth", type=int, default=1, help="Moving average over this many reports")
    args = parser.parse_args(argv)
    try:
        description = load_run_description(args.run, args.experiment_suffix)
        runs = description.runs(Path(args.train_dir).resolve())
    except (SweepModuleError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return BAD_INPUT_STATUS
    if args.group_by and not any(args.group_by in r.params for r in runs):
        print(f"error: --group_by={args.group_by}: no run of the sweep has that parameter", file=sys.stderr)
        return BAD_INPUT_STATUS

    results = [result_of(r) for r in runs]
    print(format_table(results))
    if args.plot:
        plotted = [r.run for r in results if r.env_steps is not None]
        if not plotted:
            print("error: no run has progress to plot yet", file=sys.stderr)
            return BAD_INPUT_STATUS
        groups = None
        if args.group_by:
            groups = {r.experiment_dir: f"{args.group_by}={r.params.get(args.group_by, '-')}" for r in plotted}
        try:
            out = plot_experiments(
                [r.experiment_dir for r in plotted], args.plot, args.smooth, groups, title=description.run_name
            )
        except ImportError as e:
            print(f"error: {e.name or e} is needed for plotting: pip install matplotlib", file=sys.stderr)
            return BAD_INPUT_STATUS
        print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
