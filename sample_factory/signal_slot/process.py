"""Processes that run an event loop: start, join, stack dumps, and dying with the parent.

An `EventLoopProcess` runs one `loop.EventLoop` and the objects made for it in a child process
that ignores Ctrl-C and SIGTERM (only the main process handles them) and is killed by the kernel
when its parent dies. `kill_process_tree` ends a process and everything it started. The fork
server's own guard is `forkserver_guard` (a module of its own: the fork server preloads it by name).
"""

from __future__ import annotations

import faulthandler
import logging
import os
import signal as os_signal
import time
from collections.abc import Callable

from sample_factory.signal_slot.loop import EventLoop, EventLoopObject
from sample_factory.signal_slot.transport import DEFAULT_QUEUE_BYTES, SpareQueues

log = logging.getLogger(__name__)


def die_with_parent(sig: int = os_signal.SIGKILL):
    """Linux: the kernel sends `sig` to this process if its parent dies, so no child outlives a crash."""
    try:
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, int(sig))
    except (OSError, AttributeError):
        pass


STACK_DUMP_SIGNAL = os_signal.SIGUSR1


_stack_file = None  # kept open in the child: faulthandler writes to its descriptor


def _process_main(loop: EventLoop, objects: list[EventLoopObject], init_fn: Callable | None, stack_path: str | None):
    # Only the main process handles Ctrl-C and SIGTERM; children stop when the runner tells them to.
    os_signal.signal(os_signal.SIGINT, os_signal.SIG_IGN)
    os_signal.signal(os_signal.SIGTERM, os_signal.SIG_IGN)
    # EventLoopProcess.stack(): where a stalled component is stuck, even inside C code.
    if stack_path is not None:
        global _stack_file
        _stack_file = open(stack_path, "w")  # noqa: SIM115 (open for the process's lifetime)
        faulthandler.register(STACK_DUMP_SIGNAL, file=_stack_file, all_threads=True)
    die_with_parent()
    if init_fn is not None:
        init_fn()
    for obj in objects:
        loop.register(obj)
    loop.run()


class EventLoopProcess:
    """A child process that runs one event loop with the objects created for it.

    Create it, construct its objects with `event_loop=process.event_loop`, connect signals,
    then `start()`. `init_fn` runs first in the child (thread counts, CPU affinity).
    """

    def __init__(
        self,
        name: str,
        mp_ctx,
        init_fn: Callable | None = None,
        queue_max_bytes: int = DEFAULT_QUEUE_BYTES,
        stack_path: str | None = None,
        spares: SpareQueues | None = None,
    ):
        """`spares`: the queues the process may be started anew on, one per start (shared by the run's processes)."""
        self.name = name
        self.stack_path = stack_path  # where the child writes its stack on stack()
        self.event_loop = EventLoop(name, queue_max_bytes=queue_max_bytes, owned_by_process=True, spares=spares)
        self._mp_ctx = mp_ctx
        self._init_fn = init_fn
        self.process = None

    def start(self):
        # Not a daemon, so that envs may start processes of their own (engines, async vector envs);
        # the runner joins or kills every process, and each dies with its parent (die_with_parent).
        objects = list(self.event_loop.objects.values())
        self.process = self._mp_ctx.Process(
            target=_process_main,
            args=(self.event_loop, objects, self._init_fn, self.stack_path),
            name=self.name,
            daemon=False,
        )
        self.process.start()

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def is_alive(self) -> bool:
        return self.process is not None and self.process.is_alive()

    @property
    def exitcode(self):
        return self.process.exitcode if self.process else None

    def stack(self, wait_sec: float = 0.5) -> str:
        """The Python stack of each thread of the process, as faulthandler writes it ('' if unknown)."""
        if self.stack_path is None or not self.is_alive():
            return ""
        try:
            os.kill(self.pid, STACK_DUMP_SIGNAL)
        except ProcessLookupError:
            return ""
        time.sleep(wait_sec)
        try:
            with open(self.stack_path) as f:
                f.seek(0)
                text = f.read()
            open(self.stack_path, "w").close()  # the next dump starts afresh
        except OSError:
            return ""
        return text.strip()

    def join(self, timeout_sec: float) -> bool:
        """Waits for the process to exit; kills it if it does not. Returns True on a clean exit."""
        if self.process is None:
            return True
        self.process.join(timeout_sec)
        if self.process.is_alive():
            log.warning("Process %s did not exit in %.1fs, killing it", self.name, timeout_sec)
            self.process.kill()
            self.process.join(5.0)
            return False
        return self.process.exitcode == 0


def kill_process_tree(pid: int):
    """Kills a process and everything it started (engine subprocesses of envs included)."""
    import psutil

    try:
        parent = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return
    procs = parent.children(recursive=True) + [parent]
    for p in procs:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(procs, timeout=5.0)
