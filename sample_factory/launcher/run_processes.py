"""`--backend=processes`: the runs of a sweep as local processes, a few at a time.

At most `--max_parallel` runs at once. Each run gets its own cores when there are enough
(`cores // max_parallel` each, through CPU affinity, which the run's auto-tuning counts) and, with
`--experiments_per_gpu=K`, one of `--num_gpus` GPUs through CUDA_VISIBLE_DEVICES, at most K runs
per GPU. Finished runs are skipped; the others start (and resume from their checkpoints).
Ctrl-C or SIGTERM stops every run the same way (each saves) and waits for them; a second one
kills them. Each run's wrapper dies with the launcher, so a killed launcher leaves nothing.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

from sample_factory.launcher.job import STOP_GRACE_SEC
from sample_factory.launcher.run_description import SweepRun
from sample_factory.launcher.status import FINISHED, QUEUED, log_sweep_end, read_status, runs_to_do, update_status

log = logging.getLogger(__name__)

POLL_SEC = 0.2
EXIT_INTERRUPTED = 130


def add_os_parallelism_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    g = parser.add_argument_group("processes backend")
    g.add_argument("--num_gpus", default=1, type=int, help="GPUs to spread runs over (with --experiments_per_gpu)")
    g.add_argument("--max_parallel", default=4, type=int, help="Runs at once")
    g.add_argument(
        "--experiments_per_gpu",
        default=-1,
        type=int,
        help="Runs that share one GPU; -1 leaves CUDA_VISIBLE_DEVICES alone (every run sees every GPU)",
    )
    return parser


def core_sets(cores: list[int], max_parallel: int) -> list[list[int]]:
    """Disjoint sets of cores, one per run slot; [] when there are fewer cores than slots (runs share)."""
    per_run = len(cores) // max_parallel
    if per_run < 1:
        return []
    return [cores[i * per_run : (i + 1) * per_run] for i in range(max_parallel)]


@dataclass
class _Active:
    run: SweepRun
    process: subprocess.Popen
    cores: list[int] | None
    gpu: int | None


class LocalScheduler:
    """Starts runs while there is room, collects them as they end."""

    def __init__(self, runs: list[SweepRun], args):
        self.pending = list(runs)
        self.args = args
        self.active: list[_Active] = []
        self.free_cores = core_sets(sorted(os.sched_getaffinity(0)), args.max_parallel)
        self.gpu_load = {g: 0 for g in range(args.num_gpus)} if args.experiments_per_gpu > 0 else {}
        self.ended: dict[str, str] = {}
        self.stopping = False

    def _free_gpu(self) -> int | None:
        if not self.gpu_load:
            return None
        gpu = min(self.gpu_load, key=lambda g: (self.gpu_load[g], g))
        return gpu if self.gpu_load[gpu] < self.args.experiments_per_gpu else -1

    def has_room(self) -> bool:
        return len(self.active) < self.args.max_parallel and self._free_gpu() != -1

    def start_next(self):
        run = self.pending.pop(0)
        cores = self.free_cores.pop(0) if self.free_cores else None
        gpu = self._free_gpu()
        env = dict(os.environ, **{str(k): str(v) for k, v in run.env_vars.items()})
        if gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = str(gpu)
            self.gpu_load[gpu] += 1
        run.experiment_dir.parent.mkdir(parents=True, exist_ok=True)
        update_status(run.status_path, status=QUEUED, backend="processes", params=run.params)
        wrapper = [sys.executable, "-m", "sample_factory.launcher.job", "--die_with_parent"]
        wrapper += ["--status", str(run.status_path), "--log", str(run.log_path)]
        if cores:
            wrapper += ["--cpus", ",".join(map(str, cores))]
        # A session of its own: a Ctrl-C in the terminal reaches the launcher, which stops each run in turn.
        process = subprocess.Popen(wrapper + ["--", *run.argv(sys.executable)], env=env, start_new_session=True)
        self.active.append(_Active(run, process, cores, gpu))
        where = f" on cores {cores[0]}-{cores[-1]}" if cores else ""
        where += f" on GPU {gpu}" if gpu is not None else ""
        log.info("started %s%s (log: %s)", run.name, where, run.log_path)

    def collect(self):
        still = []
        for a in self.active:
            if a.process.poll() is None:
                still.append(a)
                continue
            if a.cores:
                self.free_cores.append(a.cores)
            if a.gpu is not None:
                self.gpu_load[a.gpu] -= 1
            status = read_status(a.run.status_path).get("status", "failed")
            self.ended[a.run.name] = status
            level = logging.INFO if status == FINISHED else logging.WARNING
            log.log(level, "%s %s (exit code %d, log: %s)", a.run.name, status, a.process.returncode, a.run.log_path)
        self.active = still

    def stop_all(self, sig: int):
        for a in self.active:
            try:
                a.process.send_signal(sig)
            except ProcessLookupError:
                pass


def run(run_description, args) -> int:
    if args.max_parallel < 1:
        raise ValueError(f"--max_parallel={args.max_parallel}: at least one run must be allowed")
    if args.experiments_per_gpu > 0 and args.num_gpus < 1:
        raise ValueError(f"--experiments_per_gpu={args.experiments_per_gpu} needs --num_gpus=1 or more")
    if args.num_gpus != 1 and args.experiments_per_gpu <= 0:
        raise ValueError(
            f"--num_gpus={args.num_gpus} spreads runs over GPUs only with --experiments_per_gpu=K"
            " (runs per GPU); without it every run sees every GPU"
        )
    runs = run_description.runs(args.train_dir)
    todo = runs_to_do(runs)
    log.info("%d of %d runs to do, at most %d at once", len(todo), len(runs), args.max_parallel)
    scheduler = LocalScheduler(todo, args)

    signals_received = []

    def on_signal(signum, _frame):
        signals_received.append(signum)
        if len(signals_received) == 1:
            log.warning("stopping: each run saves its checkpoint (again to kill them)")
            scheduler.stop_all(signal.SIGINT)
        else:
            scheduler.stop_all(signal.SIGKILL)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        next_start = 0.0
        stop_deadline = None
        while scheduler.active or (scheduler.pending and not signals_received):
            if not signals_received and scheduler.pending and scheduler.has_room() and time.monotonic() >= next_start:
                scheduler.start_next()
                next_start = time.monotonic() + args.pause_between
            scheduler.collect()
            if signals_received and stop_deadline is None:
                stop_deadline = time.monotonic() + STOP_GRACE_SEC + 10
            if stop_deadline is not None and time.monotonic() > stop_deadline:
                scheduler.stop_all(signal.SIGKILL)
            time.sleep(POLL_SEC)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)

    all_finished = log_sweep_end(run_description.run_name, scheduler.ended, len(scheduler.pending))
    if signals_received:
        return EXIT_INTERRUPTED
    return 0 if all_finished else 1
