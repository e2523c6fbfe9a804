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
import time
from pathlib import Path

from sample_factory.cfg.experiment import write_json_atomically

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
    write_json_atomically(Path(path), record)
    return record


def is_finished(path: Path) -> bool:
    return read_status(path).get("status") == FINISHED
