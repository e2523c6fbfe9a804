"""The launcher's Slurm backend against a real one-node Slurm (tests/slurm_local.py): a 2 x 2
CartPole sweep submitted with sbatch runs to its end and is skipped when launched again; a run
stopped at --slurm_timeout saves, submits itself again and resumes from its checkpoint."""

from __future__ import annotations

import subprocess

import pytest
import slurm_local
from launcher_helpers import launch, runs_of, wait_for, write_sweep

from sample_factory.launcher.status import ENDED, FINISHED, read_status

pytestmark = pytest.mark.timeout(400)

slurm_cluster = slurm_local.slurm_cluster  # the fixture, for this module's tests

SLURM_FLAGS = ["--backend=slurm", "--slurm_gpus_per_job=0", "--slurm_cpus_per_gpu=1", "--pause_between=0"]


def submit(folder, module, cluster, *flags) -> str:
    launcher = launch(
        folder,
        module,
        *SLURM_FLAGS,
        *flags,
        extra_env=cluster.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    out, _ = launcher.communicate(timeout=60)
    assert launcher.returncode == 0, out
    return out


def test_a_sweep_submitted_to_slurm_runs_to_its_end_and_is_skipped_next_time(tmp_path, slurm_cluster, monkeypatch):
    write_sweep(tmp_path, "slurm_sweep", env_steps=3000)
    out = submit(tmp_path, "slurm_sweep", slurm_cluster)
    assert out.count("as Slurm job") == 4
    runs = runs_of(tmp_path, "slurm_sweep", monkeypatch)
    wait_for(lambda: all(read_status(r.status_path).get("status") in ENDED for r in runs), 300, "the sweep's jobs")
    slurm_cluster.wait_for_jobs_done(timeout=60)
    job_ids = set()
    for run in runs:
        record = read_status(run.status_path)
        assert record["status"] == FINISHED, (record, run.log_path.read_text()[-2000:])
        assert record["backend"] == "slurm" and record["slurm_job_id"]
        job_ids.add(record["slurm_job_id"])
        assert (run.experiment_dir / "checkpoint_p0").is_dir()
    assert len(job_ids) == 4
    script = (tmp_path / "td" / "slurm_sweep" / "_slurm" / f"sbatch_{runs[0].name}.sh").read_text()
    assert "sample_factory.launcher.job" in script

    again = submit(tmp_path, "slurm_sweep", slurm_cluster)
    assert again.count("skipping") == 4 and "as Slurm job" not in again
    assert slurm_cluster.job_ids() == []


def test_a_run_stopped_at_the_slurm_timeout_is_submitted_again_and_resumes(tmp_path, slurm_cluster, monkeypatch):
    write_sweep(tmp_path, "slurm_timeout", env_steps=40_000, seeds=(1,), lrs=(1e-3,))
    submit(tmp_path, "slurm_timeout", slurm_cluster, "--slurm_timeout=15s")
    (run,) = runs_of(tmp_path, "slurm_timeout", monkeypatch)
    wait_for(lambda: read_status(run.status_path).get("status") == FINISHED, 360, "the run to finish")
    slurm_cluster.wait_for_jobs_done(timeout=60)
    record = read_status(run.status_path)
    log = run.log_path.read_text()
    assert record["attempts"] >= 2, log[-3000:]
    assert "SIGINT received: saving and stopping" in log  # the timeout stopped it the graceful way
    assert "resumed from" in log.split("attempt 2")[-1]
    outputs = list((tmp_path / "td" / "slurm_timeout" / "_slurm").glob("*-slurm-*.out"))
    assert len(outputs) == record["attempts"]  # one Slurm job per attempt
