"""The local Slurm cluster of slurm_local.py runs real sbatch jobs: two at once, and a job that requeues itself."""

from __future__ import annotations

import os

import psutil
import pytest
import slurm_local
from slurm_local import LocalSlurm

pytestmark = pytest.mark.timeout(120)

slurm_cluster = slurm_local.slurm_cluster  # the fixture, for this module's tests

# Each job waits for the other's file, so both pass only if they run at the same time.
TOGETHER_JOB = """\
echo $SLURM_JOB_ID > {mine}
for i in $(seq 300); do [ -e {other} ] && break; sleep 0.1; done
[ -e {other} ] && echo together >> {mine}
"""

# The first run requeues itself and is killed by it; the second run (SLURM_RESTART_COUNT=1) ends.
REQUEUE_JOB = """\
#!/bin/bash
echo "$SLURM_JOB_ID ${{SLURM_RESTART_COUNT:-0}}" >> {runs}
if [ ! -e {marker} ]; then
    touch {marker}
    scontrol requeue $SLURM_JOB_ID
    sleep 60
fi
"""


def test_two_jobs_run_at_once(slurm_cluster, tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    ids = [
        slurm_cluster.sbatch(
            "-c", "1", f"--output={tmp_path}/%j.out", "--wrap", TOGETHER_JOB.format(mine=mine, other=other)
        )
        for mine, other in ((a, b), (b, a))
    ]
    slurm_cluster.wait_for_jobs_done(timeout=60)
    assert a.read_text().split() == [str(ids[0]), "together"]
    assert b.read_text().split() == [str(ids[1]), "together"]


def test_job_requeues_itself(slurm_cluster, tmp_path):
    runs, marker, script = tmp_path / "runs.txt", tmp_path / "marker", tmp_path / "job.sh"
    script.write_text(REQUEUE_JOB.format(runs=runs, marker=marker))
    job_id = slurm_cluster.sbatch("--requeue", "-c", "1", f"--output={tmp_path}/%j.out", str(script))
    # Slurm holds a requeued job for cred_expire (5 s here) before it starts it again.
    slurm_cluster.wait_for_jobs_done(timeout=60)
    assert runs.read_text().splitlines() == [f"{job_id} 0", f"{job_id} 1"]


def alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_stop_leaves_no_process_behind(tmp_path):
    with LocalSlurm() as cluster:
        started = tmp_path / "started"
        cluster.sbatch("-c", "1", f"--output={tmp_path}/%j.out", "--wrap", f"touch {started}; exec sleep 300")
        cluster.wait_for(started.exists, "the job to start")
        procs = cluster.own_processes()
        cluster_dir = cluster.dir
        assert {"munged", "slurmctld", "slurmd", "slurmstepd", "sleep"} <= {proc.name() for proc in procs}
    assert [proc for proc in procs if alive(proc)] == []
    assert not os.path.exists(cluster_dir)
