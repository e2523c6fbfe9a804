"""Learning curves from the `progress.csv` of experiments: `python -m sample_factory.plot train_dir/a train_dir/b`.

One PNG, two panels: mean episode return against env frames and against training time, one line per
experiment and policy. Needs matplotlib (`pip install matplotlib`); it draws with Agg, no display.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

from sample_factory.runner.stats import OBJECTIVE_COLUMN, PROGRESS_COLUMNS
from sample_factory.utils.experiment_folder import PROGRESS_FILE, ExperimentFolder, atomic_target

BAD_INPUT_STATUS = 2


class ProgressFileError(ValueError):
    """An experiment folder whose progress cannot be plotted; the message says which and why."""


def read_progress(exp_dir: Path) -> dict[int, dict[str, np.ndarray]]:
    """The rows of `exp_dir/progress.csv` as one float array per column, per policy id."""
    path = ExperimentFolder(exp_dir).progress_file
    if not path.is_file():
        raise ProgressFileError(f"{exp_dir}: no {PROGRESS_FILE} (not an experiment folder, or no report written yet)")
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in PROGRESS_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ProgressFileError(f"{path}: missing column(s) {', '.join(missing)}")
        # Files of runs older than the objective column lack it (only the return can be drawn from them).
        columns = PROGRESS_COLUMNS + ((OBJECTIVE_COLUMN,) if OBJECTIVE_COLUMN in reader.fieldnames else ())
        rows = []
        for row in reader:
            try:
                rows.append({c: float(row[c]) for c in columns})
            except (TypeError, ValueError):
                continue  # a row cut short by a killed run
    if not rows:
        raise ProgressFileError(f"{path}: no rows yet (no episode finished before the first report)")
    per_policy: dict[int, dict[str, np.ndarray]] = {}
    for policy_id in sorted({int(r["policy_id"]) for r in rows}):
        mine = [r for r in rows if int(r["policy_id"]) == policy_id]
        per_policy[policy_id] = {c: np.array([r[c] for r in mine]) for c in columns}
    return per_policy


def moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over the last `window` points (fewer at the start); same length as `values`."""
    if window <= 1 or len(values) == 0:
        return values
    cumsum = np.concatenate([[0.0], np.cumsum(values)])
    end = np.arange(1, len(values) + 1)
    start = np.maximum(0, end - window)
    return (cumsum[end] - cumsum[start]) / (end - start)


METRICS = {  # --metric: (progress column, what the axis says)
    "return": ("reward_mean", "mean episode return"),
    "objective": (OBJECTIVE_COLUMN, "mean true objective (Doom: frags)"),
}


def plot_experiments(
    dirs, out_path, smooth: int = 1, groups: dict | None = None, title: str = "", metric: str = "return"
) -> Path:
    """Writes the learning curves of the experiment folders `dirs` to the PNG `out_path`.

    `groups` maps a folder to a label: the folders of one label share a colour and one legend entry
    (the runs of a sweep grouped by a parameter). Raises ProgressFileError for a folder without
    plottable progress (before drawing anything).
    """
    curves = [(Path(d), read_progress(Path(d))) for d in dirs]
    column, what = METRICS[metric]
    for exp_dir, per_policy in curves:
        if any(column not in cols for cols in per_policy.values()):
            raise ProgressFileError(
                f"{exp_dir}: {PROGRESS_FILE} has no {column} column (written by runs since it exists)"
            )

    # The object API with an explicit Agg canvas: no display needed and pyplot's global state untouched.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax_frames, ax_time = fig.subplots(1, 2, sharey=True)
    group_colors: dict[str, str] = {}
    for exp_dir, per_policy in curves:
        name = exp_dir.resolve().name
        group = groups.get(exp_dir) if groups else None
        for policy_id, cols in per_policy.items():
            label = name if len(per_policy) == 1 else f"{name} p{policy_id}"
            color = None
            if group is not None:
                label, color = (None, group_colors[group]) if group in group_colors else (group, None)
            reward = moving_average(cols[column], smooth)
            (line,) = ax_frames.plot(cols["env_steps"], reward, label=label, color=color)
            ax_time.plot(cols["train_seconds"] / 60.0, reward, color=line.get_color())
            if group is not None:
                group_colors.setdefault(group, line.get_color())

    suptitle = "; ".join(t for t in (title, f"moving average over {smooth} reports" if smooth > 1 else "") if t)
    if suptitle:
        fig.suptitle(suptitle)
    ax_frames.set_title(f"{what.capitalize()} vs env frames")
    ax_frames.set_xlabel("env frames")
    ax_frames.set_ylabel(what)
    ax_time.set_title(f"{what.capitalize()} vs training time")
    ax_time.set_xlabel("training time (minutes)")
    for ax in (ax_frames, ax_time):
        ax.grid(alpha=0.3)
    ax_frames.legend(loc="best", fontsize="small")

    out_path = Path(out_path)
    with atomic_target(out_path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return out_path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sample_factory.plot", description=__doc__.splitlines()[0])
    parser.add_argument(
        "dirs", nargs="+", type=Path, help="Experiment folders (train_dir/<experiment>) holding progress.csv"
    )
    parser.add_argument("--out", type=Path, default=Path("learning_curves.png"), help="PNG to write")
    parser.add_argument("--smooth", type=int, default=1, help="Moving average over this many reports (1: none)")
    parser.add_argument(
        "--metric",
        choices=sorted(METRICS),
        default="return",
        help="return: the (shaped) episode return; objective: the env's true_objective, e.g. frags in Doom",
    )
    args = parser.parse_args(argv)
    if args.smooth < 1:
        parser.error(f"--smooth={args.smooth}: use 1 (no smoothing) or more")
    try:
        out = plot_experiments(args.dirs, args.out, smooth=args.smooth, metric=args.metric)
    except ProgressFileError as e:
        print(f"error: {e}", file=sys.stderr)
        return BAD_INPUT_STATUS
    except ImportError as e:
        print(f"error: {e.name or e} is needed for plotting: pip install matplotlib", file=sys.stderr)
        return BAD_INPUT_STATUS
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
