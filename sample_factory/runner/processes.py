"""The run's processes, kept by role: made one per component, started, looked up, killed.

Serial mode makes none (every component lives on the runner's loop). A process of a restartable
role (rollout and inference workers) may be started anew on one of the run's spare queues; every
process can dump its stack into a file of the run's stack folder.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import tempfile
from collections.abc import Iterator
from functools import partial
from pathlib import Path

from sample_factory.algo.roles import Role
from sample_factory.signal_slot import forkserver_guard
from sample_factory.signal_slot.loop import EventLoop
from sample_factory.signal_slot.process import EventLoopProcess, kill_process_tree
from sample_factory.signal_slot.transport import SpareQueues
from sample_factory.utils.logging_setup import setup_logging

# Spare queues of a run (1 MiB each, touched), shared by its restartable processes: one per restart, so
# a dead worker is started anew at most this many times in a run, whatever --max_worker_restarts says.
MAX_SPARE_QUEUES = 8

# Modules every component process needs: the fork server imports them once, and each process
# forked from it starts with them loaded instead of importing torch again (seconds per process).
_PRELOADED_MODULES = [
    "sample_factory.signal_slot.forkserver_guard",  # first: the server dies with the main process
    "torch",
    "numpy",
    "gymnasium",
    "sample_factory.algo.sampling.rollout_worker",
    "sample_factory.algo.sampling.inference_worker",
    "sample_factory.algo.learning.learner_worker",
]


def process_context():
    """forkserver: fast start-up without fork's hazards (the server has run no torch ops or threads)."""
    method = os.environ.get("SF_START_METHOD", "forkserver")
    ctx = multiprocessing.get_context(method)
    if method == "forkserver":
        forkserver_guard.arm(os.getpid())
        ctx.set_forkserver_preload(_PRELOADED_MODULES)
    return ctx


class RunProcesses:
    """Iterating gives the processes in the order they were made."""

    def __init__(self, queue_max_bytes: int, max_restarts: int, log_file: Path | None):
        self.mp_ctx = process_context()
        self._queue_max_bytes = queue_max_bytes
        self._max_restarts = max_restarts
        self._log_file = log_file
        self._by_role: dict[Role, EventLoopProcess] = {}
        self._stack_dir: str | None = None  # made with the first process
        self.spare_queues: SpareQueues | None = None  # made with the first restartable process

    def loop_for(self, role: Role, restartable: bool) -> EventLoop:
        """A new process for the component of `role`; returns the loop the component lives in."""
        if self._stack_dir is None:
            self._stack_dir = tempfile.mkdtemp(prefix="sf_stacks_")
        if restartable and self.spare_queues is None and self._max_restarts > 0:
            self.spare_queues = SpareQueues(min(self._max_restarts, MAX_SPARE_QUEUES), self._queue_max_bytes)
        process = EventLoopProcess(
            role.name,
            self.mp_ctx,
            queue_max_bytes=self._queue_max_bytes,
            stack_path=str(Path(self._stack_dir) / f"{role.name}.txt"),
            spares=self.spare_queues if restartable else None,
            init_fn=partial(setup_logging, log_file=self._log_file),
        )
        self._by_role[role] = process
        return process.event_loop

    def __iter__(self) -> Iterator[EventLoopProcess]:
        return iter(list(self._by_role.values()))

    def __len__(self) -> int:
        return len(self._by_role)

    def get(self, role: Role) -> EventLoopProcess | None:
        return self._by_role.get(role)

    def items(self) -> list[tuple[Role, EventLoopProcess]]:
        return list(self._by_role.items())

    def start_all(self):
        for process in self:
            process.start()

    def kill_all(self):
        """Kills every process with what it started (env engines): an exit that waits for nobody."""
        for process in self:
            if process.pid:
                kill_process_tree(process.pid)

    def stop_all(self, join_timeout_sec: float = 10.0):
        """Joins each process that is still alive (killing it when it does not exit), then kills what
        is left of every process tree; removes the stack folder."""
        for process in self:
            if process.is_alive():
                # A message may not get through a dead or stuck loop: join, then kill.
                process.join(timeout_sec=join_timeout_sec)
        self.kill_all()
        if self._stack_dir is not None:
            shutil.rmtree(self._stack_dir, ignore_errors=True)
