"""Runs one command of a sweep and records how it ended: `python -m sample_factory.launcher.job`.

Every backend (local processes, an sbatch script, a Ray task) runs a sweep's command through this
wrapper, so a run behaves the same wherever it lands:

- the command runs in a process group of its own, its output appended to the run's log;
- SIGINT or SIGTERM to the wrapper reaches the command as SIGINT (a training run saves its
  checkpoint and exits); a second signal, or a command still alive STOP_GRACE_SEC later, kills
  the whole group; nothing of the group outlives the wrapper;
- `--timeout` stops the command the same way when the time is up and exits 124 (GNU timeout's
  code, on which an sbatch script requeues the run);
- the run's status record (`launcher/status.py`) says running, then finished, failed,
  interrupted or timed_out.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from sample_factory.launcher.status import FAILED, FINISHED, INTERRUPTED, RUNNING, TIMED_OUT, read_status, update_status
from sample_factory.signal_slot.process import die_with_parent

EXIT_TIMED_OUT = 124
EXIT_INTERRUPTED = 130
STOP_GRACE_SEC = 120.0  # a training run saves in seconds; this bounds one that hangs while stopping
POLL_SEC = 0.2


def _signal_group(pgid: int, sig: int):
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def run_job(
    argv: list[str],
    status_path: Path,
    log_path: Path,
    timeout_sec: float = 0.0,
    cpus: list[int] | None = None,
    env: dict | None = None,
) -> int:
    """Runs `argv` to its end (see the module's docstring); returns the wrapper's exit code."""
    status_path, log_path = Path(status_path), Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    child_env = dict(os.environ if env is None else env)
    if cpus:
        os.sched_setaffinity(0, cpus)  # inherited by the command: its auto-tuning counts these cores
        child_env["OMP_NUM_THREADS"] = str(len(cpus))

    attempt = int(read_status(status_path).get("attempts", 0)) + 1
    started_at = time.time()
    with open(log_path, "ab") as log:
        header = f"=== {time.strftime('%Y-%m-%d %H:%M:%S')} attempt {attempt} on {socket.gethostname()}: {shlex.join(argv)}\n"
        log.write(header.encode())
        log.flush()
        try:
            child = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=child_env,
                start_new_session=True,
            )
        except OSError as e:
            log.write(f"cannot start the command: {e}\n".encode())
            update_status(
                status_path, status=FAILED, returncode=127, attempts=attempt, error=str(e), ended_at=time.time()
            )
            return 127

    update_status(
        status_path,
        status=RUNNING,
        attempts=attempt,
        host=socket.gethostname(),
        pid=os.getpid(),
        cmd=shlex.join(argv),
        started_at=started_at,
        slurm_job_id=os.environ.get("SLURM_JOB_ID"),
    )

    stop_reason: list[str] = []  # set once, by a signal or the timeout
    kill_at = [float("inf")]

    def stop(reason: str):
        if stop_reason:  # asked twice: no more waiting
            _signal_group(child.pid, signal.SIGKILL)
            return
        stop_reason.append(reason)
        _signal_group(child.pid, signal.SIGINT)
        kill_at[0] = time.monotonic() + STOP_GRACE_SEC

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop(INTERRUPTED))

    deadline = time.monotonic() + timeout_sec if timeout_sec > 0 else float("inf")
    while child.poll() is None:
        now = time.monotonic()
        if now >= deadline and not stop_reason:
            stop(TIMED_OUT)
        if now >= kill_at[0]:
            _signal_group(child.pid, signal.SIGKILL)
        time.sleep(POLL_SEC)
    _signal_group(child.pid, signal.SIGKILL)  # whatever the command left in its group
    returncode = child.returncode

    if stop_reason:
        status = stop_reason[0]
        exit_code = EXIT_TIMED_OUT if status == TIMED_OUT else EXIT_INTERRUPTED
    else:
        status = FINISHED if returncode == 0 else FAILED
        exit_code = returncode if returncode >= 0 else 128 - returncode
    update_status(status_path, status=status, returncode=returncode, ended_at=time.time())
    return exit_code


def parse_timeout(value: str) -> float:
    """Seconds from GNU timeout's spelling: `90`, `90s`, `5m`, `2h`, `1d` (0: no limit)."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = str(value).strip().lower()
    scale = units.get(text[-1:], None)
    number = text[:-1] if scale else text
    try:
        seconds = float(number) * (scale or 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a duration such as 90, 90s, 5m or 2h, got {value!r}") from None
    if seconds < 0:
        raise argparse.ArgumentTypeError(f"a duration cannot be negative, got {value!r}")
    return seconds


def _cpu_list(value: str) -> list[int]:
    try:
        return [int(c) for c in value.split(",") if c]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected core numbers such as 0,1, got {value!r}") from None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sample_factory.launcher.job", description=__doc__.splitlines()[0])
    parser.add_argument("--status", type=Path, required=True, help="The run's status record (JSON)")
    parser.add_argument("--log", type=Path, required=True, help="The run's log: the command's output is appended")
    parser.add_argument("--timeout", type=parse_timeout, default=0.0, help="Stop (and save) after this long; 0: never")
    parser.add_argument("--cpus", type=_cpu_list, default=None, help="Cores the command may use, e.g. 0,1")
    parser.add_argument("--die_with_parent", action="store_true", help="Stop (and save) when the launcher dies")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given: ... -- python -m ...")
    if args.die_with_parent:
        die_with_parent(signal.SIGTERM)
    return run_job(command, args.status, args.log, args.timeout, args.cpus)


if __name__ == "__main__":
    sys.exit(main())
