"""The record each run of a sweep keeps beside its folder: what state it is in and how it ended.

Written atomically by the job wrapper (`launcher/job.py`) on whichever machine runs it, read by
every backend to skip finished runs and by the results table. States:

  queued       handed to a backend (a Slurm job id or a Ray task), not started yet
  running      the wrapper started the command (host and pid say where)
  finished     the command exited 0 on its own: the run is done and is skipped next time
  failed       the command exited non-zero; the next launch of the sweep runs it again
  interrupted  stopped by Ctrl-C/SIGTERM (it saved its checkpoint); the next launch resumes it
  timed_out    stopped at --slurm_timeout (it saved); requeued, or resumed by the next launch
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from sample_factory.utils.experiment_folder import atomic_write_json

log = logging.getLogger(__name__)

QUEUED, RUNNING, FINISHED, FAILED, INTERRUPTED, TIMED_OUT = (
    "queued",
    "running",
    "finished",
    "failed",
    "interrupted",
    "timed_out",
)
ENDED = (FINISHED, FAILED, INTERRUPTED, TIMED_OUT)


def read_status(path: Path) -> dict:
    """The record, or {} when there is none (never launched) or it cannot be read."""
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def update_status(path: Path, **fields) -> dict:
    """Merges `fields` into the record and writes it atomically; returns the new record."""
    record = read_status(path)
    record.update(fields, updated_at=time.time())
    atomic_write_json(path, record)
    return record


def runs_to_do(runs: list) -> list:
    """The runs of a sweep that did not finish in an earlier launch (each skipped one is logged)."""
    todo = []
    for run in runs:
        if read_status(run.status_path).get("status") == FINISHED:
            log.info("skipping %s: finished in an earlier launch", run.name)
        else:
            todo.append(run)
    return todo


def log_sweep_end(run_name: str, statuses: dict[str, str], not_started: int = 0) -> bool:
    """One line on how the runs that ended this launch ended; True when all of them finished."""
    not_finished = {name: status for name, status in statuses.items() if status != FINISHED}
    log.info(
        "sweep %s: %d finished, %d not (%s), %d not started",
        run_name,
        len(statuses) - len(not_finished),
        len(not_finished),
        ", ".join(f"{n}: {s}" for n, s in not_finished.items()) or "-",
        not_started,
    )
    return not not_finished
