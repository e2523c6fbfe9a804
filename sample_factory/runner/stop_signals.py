"""Ctrl-C and SIGTERM: the first asks the run to save and stop, a second one exits at once.

Only the main thread of the main process handles them (component processes ignore both; an
embedding program that runs the trainer in another thread keeps its own handlers).
"""

from __future__ import annotations

import multiprocessing
import os
import signal as os_signal
from collections.abc import Callable

from sample_factory.utils.status import ExitStatus

STOP_SIGNALS = (os_signal.SIGINT, os_signal.SIGTERM)


class StopSignals:
    def __init__(self, kill_all: Callable[[], None], stopping: Callable[[], bool]):
        self._kill_all = kill_all
        self._stopping = stopping
        self._received = 0
        self._pending: int | None = None
        self._previous: dict | None = None

    def install(self):
        if multiprocessing.current_process().name != "MainProcess":
            return
        try:
            self._previous = {sig: os_signal.signal(sig, self._on_signal) for sig in STOP_SIGNALS}
        except ValueError:  # not the main thread (embedded use): the caller handles signals
            self._previous = None

    def restore(self):
        for sig, handler in (self._previous or {}).items():
            os_signal.signal(sig, handler)
        self._previous = None

    def take_pending(self) -> str | None:
        """The name of a signal received since the last call (SIGINT, SIGTERM), if any."""
        if self._pending is None:
            return None
        name, self._pending = os_signal.Signals(self._pending).name, None
        return name

    def _on_signal(self, signum, _frame):
        # The handler may interrupt the main thread anywhere, inside logging or a queue put: it only
        # records the signal, and the runner's loop stops the run. A second signal, or one during
        # shutdown, exits at once without touching locks or queues.
        self._received += 1
        if self._received > 1 or self._stopping():
            os.write(2, b"Second signal: exiting now without waiting\n")
            self._kill_all()
            os._exit(ExitStatus.INTERRUPTED)
        self._pending = signum
