"""progress.csv written by RunStats (resumes included) and the learning-curve PNG drawn from it."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from training import train_until

from sample_factory.cfg.arguments import default_cfg
from sample_factory.cfg.experiment import experiment_dir
from sample_factory.plot import moving_average, read_progress
from sample_factory.runner.stats import OBJECTIVE_COLUMN, PROGRESS_COLUMNS, PROGRESS_FILE, RunStats
from sf_examples.train_gym_env import parse_gym_args

pytestmark = pytest.mark.timeout(120)

REPO_ROOT = Path(__file__).resolve().parents[1]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def learner_stats(env_steps: int, policy_version: int) -> dict:
    return {"env_steps": env_steps, "policy_version": policy_version, "lag_min": 0.0, "lag_avg": 0.5, "lag_max": 1.0}


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def run_plot(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sample_factory.plot", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )


def test_progress_rows_and_resume(tmp_path):
    cfg = default_cfg(env="x", argv=["--num_policies=2", f"--train_dir={tmp_path}", "--experiment=e"])
    exp_dir = experiment_dir(cfg)
    progress = exp_dir / PROGRESS_FILE

    stats = RunStats(cfg, exp_dir)
    stats.on_learner_report(0, learner_stats(1000, 1))
    stats.on_learner_report(1, learner_stats(800, 1))
    stats.report(1.0)
    assert not progress.exists(), "no episode finished yet: nothing to write"

    stats.on_episodes([{"policy_id": 0, "reward": 1.0, "len": 10}, {"policy_id": 0, "reward": 3.0, "len": 30}])
    stats.report(2.0)
    stats.on_learner_report(0, learner_stats(2000, 2))
    stats.on_learner_report(1, learner_stats(1600, 2))
    stats.on_episodes([{"policy_id": 1, "reward": -5.0, "len": 7}])
    stats.report(4.0)
    stats.close()

    rows = read_rows(progress)
    assert tuple(rows[0].keys()) == PROGRESS_COLUMNS + (OBJECTIVE_COLUMN,)
    assert [(r["policy_id"], int(r["env_steps"]), float(r["train_seconds"])) for r in rows] == [
        ("0", 1000, 2.0),  # policy 1 had no episode at 2s: skipped, not NaN
        ("0", 2000, 4.0),
        ("1", 1600, 4.0),
    ]
    assert float(rows[0]["reward_mean"]) == pytest.approx(2.0)
    assert float(rows[0]["len_mean"]) == pytest.approx(20.0)
    assert float(rows[2]["reward_mean"]) == pytest.approx(-5.0)
    assert float(rows[2]["len_mean"]) == pytest.approx(7.0)
    assert float(rows[0][OBJECTIVE_COLUMN]) == pytest.approx(2.0), "no true_objective: the return"

    # A resumed run appends (no second header) and its time axis starts where the last run stopped.
    resumed = RunStats(cfg, exp_dir)
    resumed.on_learner_report(0, learner_stats(2500, 3))
    resumed.on_episodes([{"policy_id": 0, "reward": 9.0, "len": 90}])
    resumed.report(1.5)
    resumed.close()

    lines = progress.read_text().splitlines()
    assert sum(line.startswith("policy_id") for line in lines) == 1
    rows = read_rows(progress)
    assert len(rows) == 4
    assert rows[-1]["policy_id"] == "0"
    assert int(rows[-1]["env_steps"]) == 2500
    assert float(rows[-1]["train_seconds"]) == pytest.approx(4.0 + 1.5)
    assert float(rows[-1]["reward_mean"]) == pytest.approx(9.0)


def test_moving_average_matches_loop():
    values = np.array([1.0, 5.0, 2.0, 8.0, 3.0, 0.0])
    window = 3
    expected = [np.mean(values[max(0, i + 1 - window) : i + 1]) for i in range(len(values))]
    np.testing.assert_allclose(moving_average(values, window), expected)
    np.testing.assert_array_equal(moving_average(values, 1), values)


def test_plot_after_real_cartpole_run(tmp_path):
    argv = [
        "--env=CartPole-v1",
        f"--train_dir={tmp_path}",
        "--experiment=p",
        "--serial_mode=True",
        "--train_for_env_steps=15000",
        "--report_interval_sec=0.5",
        "--seed=1",
    ]
    train_until(parse_gym_args(argv))
    exp_dir = tmp_path / "p"

    rows = read_rows(exp_dir / PROGRESS_FILE)
    assert len(rows) >= 2, "expected several reports in a 15k-step run"
    env_steps = [int(r["env_steps"]) for r in rows]
    train_seconds = [float(r["train_seconds"]) for r in rows]
    assert env_steps == sorted(env_steps) and env_steps[-1] > 0
    assert train_seconds == sorted(train_seconds) and train_seconds[0] > 0
    assert all(np.isfinite(float(r["reward_mean"])) for r in rows)

    out = tmp_path / "curves" / "X.png"
    result = run_plot(str(exp_dir), "--out", str(out), "--smooth", "3")
    assert result.returncode == 0, result.stderr
    data = out.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 1000

    import matplotlib.image

    image = matplotlib.image.imread(out)
    assert image.ndim >= 2 and image.shape[0] > 100 and image.shape[1] > 100
    assert image.min() != image.max(), "a blank image"


@pytest.mark.parametrize("make_dir", [False, True], ids=["missing-dir", "dir-without-progress"])
def test_plot_without_progress_fails_cleanly(tmp_path, make_dir):
    target = tmp_path / "not_an_experiment"
    if make_dir:
        target.mkdir()
    out = tmp_path / "X.png"
    result = run_plot(str(target), "--out", str(out))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert str(target) in result.stderr and PROGRESS_FILE in result.stderr
    assert not out.exists()


def test_the_objective_column_holds_the_true_objective_and_plots_and_old_files_keep_their_header(tmp_path):
    cfg = default_cfg(env="x", argv=[f"--train_dir={tmp_path}", "--experiment=e"])
    exp_dir = experiment_dir(cfg)
    stats = RunStats(cfg, exp_dir)
    stats.on_learner_report(0, learner_stats(1000, 1))
    stats.on_episodes([{"policy_id": 0, "reward": 40.0, "len": 10, "true_objective": 3.0}])
    stats.report(1.0)
    stats.close()
    assert float(read_rows(exp_dir / PROGRESS_FILE)[0][OBJECTIVE_COLUMN]) == pytest.approx(3.0), "frags, not shaping"
    out = tmp_path / "frags.png"
    result = run_plot(str(exp_dir), "--out", str(out), "--metric=objective")
    assert result.returncode == 0, result.stderr
    assert out.read_bytes().startswith(PNG_SIGNATURE)

    # A killed run's last row, cut before its objective, is dropped like any cut row.
    with open(exp_dir / PROGRESS_FILE, "a") as f:
        f.write("0,2000,2.0,41.0,10.0,100.0\n")
    assert read_progress(exp_dir)[0][OBJECTIVE_COLUMN].tolist() == [3.0]
    assert run_plot(str(exp_dir), "--out", str(out), "--metric=objective").returncode == 0

    # A run from before the column: a resume appends rows its header fits, and --metric=objective says why not.
    old = tmp_path / "old"
    old.mkdir()
    (old / PROGRESS_FILE).write_text(",".join(PROGRESS_COLUMNS) + "\n0,500,1.0,2.0,10.0,100.0\n")
    resumed = RunStats(default_cfg(env="x", argv=[f"--train_dir={tmp_path}", "--experiment=old"]), old)
    resumed.on_learner_report(0, learner_stats(1000, 1))
    resumed.on_episodes([{"policy_id": 0, "reward": 4.0, "len": 10}])
    resumed.report(1.0)
    resumed.close()
    rows = read_rows(old / PROGRESS_FILE)
    assert len(rows) == 2 and None not in rows[1], "no field beyond the header"
    result = run_plot(str(old), "--out", str(tmp_path / "x.png"), "--metric=objective")
    assert result.returncode == 2 and "has no objective_mean column" in result.stderr
    assert run_plot(str(old), "--out", str(tmp_path / "y.png")).returncode == 0
