"""`--backend=ray`: each run a Ray task that asks for its cores and GPUs.

On the cluster `--ray_address` names (`auto`: the one `ray start` runs on this machine), or, by
default, on a local one started for the sweep and shut down after it. Ray places the tasks; each
runs the run's command through the job wrapper (`launcher/job.py`) in the launcher's folder (the
nodes share a filesystem, as on Slurm) and sends back the run's status record, which the launcher
logs as each one ends. Ctrl-C cancels the tasks: each stops its run the same way (it saves).
Needs `pip install ray` (the `ray` extra).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import time

from sample_factory.launcher.job import STOP_GRACE_SEC
from sample_factory.launcher.run_description import SweepRun, command_argv
from sample_factory.launcher.status import (
    FAILED,
    FINISHED,
    QUEUED,
    RUNNING,
    log_sweep_end,
    read_status,
    runs_to_do,
    update_status,
)

log = logging.getLogger(__name__)

EXIT_INTERRUPTED = 130


def add_ray_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    g = parser.add_argument_group("ray backend")
    g.add_argument(
        "--ray_address", default=None, type=str, help="Cluster to use (auto: the local `ray start`); default: a new one"
    )
    g.add_argument("--ray_cpus_per_run", default=1.0, type=float, help="Cores Ray reserves for each run")
    g.add_argument("--ray_gpus_per_run", default=0.0, type=float, help="GPUs Ray reserves for each run (may be < 1)")
    g.add_argument("--ray_num_cpus", default=None, type=int, help="Cores of the local cluster (default: all)")
    return parser


def run_in_task(cmd: str, cwd: str, env_vars: dict, status_path: str, log_path: str) -> dict:
    """The body of a run's Ray task: the wrapper as a child; a cancelled task stops it gracefully.

    The wrapper dies with the task's worker (it then stops the run the same way), so a cluster that
    shuts down leaves no run behind.
    """
    wrapper = [sys.executable, "-m", "sample_factory.launcher.job", "--die_with_parent"]
    wrapper += ["--status", status_path, "--log", log_path]
    env = dict(os.environ, **{str(k): str(v) for k, v in env_vars.items()})
    env["PYTHONPATH"] = os.pathsep.join(p for p in (cwd, env.get("PYTHONPATH")) if p)
    child = subprocess.Popen(
        [*wrapper, "--", *command_argv(cmd, sys.executable)], cwd=cwd, env=env, start_new_session=True
    )
    try:
        child.wait()
    except KeyboardInterrupt:  # what ray.cancel raises in a running task
        child.send_signal(signal.SIGINT)
        child.wait()
    return dict(read_status(status_path), exit_code=child.returncode)


def _connect(args):
    try:
        import ray
    except ImportError:
        raise ValueError("--backend=ray needs Ray: pip install ray (or the project's [ray] extra)") from None
    if args.ray_address:
        ray.init(address=args.ray_address, log_to_driver=False)
    else:
        ray.init(num_cpus=args.ray_num_cpus, include_dashboard=False, log_to_driver=False)
    return ray


def run_ray(run_description, args) -> int:
    runs: list[SweepRun] = run_description.runs(args.train_dir)
    todo = runs_to_do(runs)
    if not todo:
        log.info("sweep %s: nothing to do, every run finished", run_description.run_name)
        return 0

    ray = _connect(args)
    try:
        resources = ray.cluster_resources()
        log.info("Ray cluster: %g CPUs, %g GPUs", resources.get("CPU", 0), resources.get("GPU", 0))
        task = ray.remote(num_cpus=args.ray_cpus_per_run, num_gpus=args.ray_gpus_per_run, max_retries=0)(run_in_task)
        refs = {}
        for r in todo:
            r.experiment_dir.parent.mkdir(parents=True, exist_ok=True)
            update_status(r.status_path, status=QUEUED, backend="ray", params=r.params)
            refs[task.remote(r.cmd, os.getcwd(), r.env_vars, str(r.status_path), str(r.log_path))] = r
            if r is not todo[-1]:  # spaces the starts of the first wave; Ray starts the rest as room frees
                time.sleep(args.pause_between)
        results, interrupted = _collect(ray, refs)
    finally:
        ray.shutdown()
    if interrupted:
        _wait_until_stopped([r for r in todo if r.name not in results])
        results.update(
            {r.name: read_status(r.status_path).get("status", QUEUED) for r in todo if r.name not in results}
        )

    all_finished = log_sweep_end(run_description.run_name, results)
    if interrupted:
        return EXIT_INTERRUPTED
    return 0 if all_finished else 1


def _collect(ray, refs: dict) -> tuple[dict, bool]:
    """Waits for the tasks, logging each run as it ends; Ctrl-C or SIGTERM cancels those left."""
    results: dict[str, str] = {}

    def on_sigterm(*_):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    pending = list(refs)
    try:
        while pending:
            done, pending = ray.wait(pending, num_returns=1, timeout=1.0)
            for ref in done:
                _log_result(refs[ref], _result_of(ray, ref, refs[ref]), results)
        return results, False
    except KeyboardInterrupt:
        log.warning("stopping: each run saves its checkpoint")
        for ref in pending:
            ray.cancel(ref)
        return results, True
    finally:
        signal.signal(signal.SIGTERM, previous)


def _wait_until_stopped(runs: list[SweepRun]):
    """A cancelled run stops on its own (it saves first): wait for its record to say so."""
    deadline = time.monotonic() + STOP_GRACE_SEC + 10
    while time.monotonic() < deadline:
        if all(read_status(r.status_path).get("status") != RUNNING for r in runs):
            return
        time.sleep(0.5)
    log.error("runs still running after %.0fs: %s", STOP_GRACE_SEC, ", ".join(r.name for r in runs))


def _result_of(ray, ref, run: SweepRun) -> dict:
    try:
        return ray.get(ref)
    except Exception as e:  # a lost task (its node died): the record on disk says how far the run got
        record = read_status(run.status_path)
        if record.get("status") in (None, QUEUED, RUNNING):
            record = update_status(run.status_path, status=FAILED, error=f"ray: {type(e).__name__}: {e}")
        return record


def _log_result(run: SweepRun, record: dict, results: dict):
    status = record.get("status", FAILED)
    results[run.name] = status
    level = logging.INFO if status == FINISHED else logging.WARNING
    log.log(level, "%s %s on %s (log: %s)", run.name, status, record.get("host", "?"), run.log_path)
