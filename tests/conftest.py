"""Leak checks shared by every test: no child process and no /dev/shm entry may outlive a test.

`check_no_leaks` (autouse) snapshots the child processes and the /dev/shm entries before each
test and checks them afterwards with the helpers below, which other test modules may import
(`from conftest import ...`) or reuse for checks of their own.
"""

from __future__ import annotations

import multiprocessing
import os
import time

import psutil
import pytest

# Before sample_factory is imported anywhere: an emit that reaches no slot raises (signal_slot/loop.py).
os.environ["SF_STRICT_SIGNALS"] = "1"

SHM_DIR = "/dev/shm"
CHILD_EXIT_GRACE_SEC = 5.0
SHM_GRACE_SEC = 2.0


def multiprocessing_helper_pids() -> set[int]:
    """Long-lived helpers that `multiprocessing` itself starts once per process and keeps.

    The spawn start method launches the resource tracker on the first `Process.start()` and it
    lives until the test session ends; it is no leak of any one test. Same for a forkserver.
    """
    pids = set()
    try:
        from multiprocessing import resource_tracker

        pid = getattr(resource_tracker._resource_tracker, "_pid", None)
        if pid is not None:
            pids.add(pid)
    except (ImportError, AttributeError):
        pass
    try:
        from multiprocessing import forkserver

        pid = getattr(forkserver._forkserver, "_forkserver_pid", None)
        if pid is not None:
            pids.add(pid)
    except (ImportError, AttributeError):
        pass
    return pids


def child_processes(ignore_pids: set[int] = frozenset()) -> list[psutil.Process]:
    """Live descendants of this process, minus `ignore_pids` and multiprocessing's own helpers."""
    ignore = set(ignore_pids) | multiprocessing_helper_pids()
    alive = []
    for proc in psutil.Process().children(recursive=True):
        if proc.pid in ignore:
            continue
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
        except psutil.NoSuchProcess:
            continue
        alive.append(proc)
    return alive


def describe_processes(procs: list[psutil.Process]) -> str:
    parts = []
    for proc in procs:
        try:
            cmdline = " ".join(proc.cmdline())[:200]
            parts.append(f"pid={proc.pid} name={proc.name()!r} cmdline={cmdline!r}")
        except psutil.Error:
            parts.append(f"pid={proc.pid} (gone)")
    return "; ".join(parts)


def wait_for_children_exit(ignore_pids: set[int] = frozenset(), timeout_sec: float = CHILD_EXIT_GRACE_SEC):
    """Waits up to `timeout_sec` for the children to exit; returns those still alive."""
    deadline = time.monotonic() + timeout_sec
    while True:
        # Reap children that multiprocessing started and that already exited (no zombies left).
        multiprocessing.active_children()
        alive = child_processes(ignore_pids)
        if not alive or time.monotonic() >= deadline:
            return alive
        psutil.wait_procs(alive, timeout=min(0.1, max(0.0, deadline - time.monotonic())))


def kill_processes(procs: list[psutil.Process]):
    for proc in procs:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(procs, timeout=5.0)
    multiprocessing.active_children()


def shm_entries() -> set[str]:
    """Names in /dev/shm, without POSIX semaphores (`sem.*`, owned by multiprocessing locks)."""
    try:
        names = os.listdir(SHM_DIR)
    except FileNotFoundError:
        return set()
    return {name for name in names if not name.startswith("sem.")}


def new_shm_entries(before: set[str], timeout_sec: float = SHM_GRACE_SEC) -> set[str]:
    """Entries that appeared since `before` and are still there after up to `timeout_sec`."""
    deadline = time.monotonic() + timeout_sec
    while True:
        leaked = shm_entries() - before
        if not leaked or time.monotonic() >= deadline:
            return leaked
        time.sleep(0.05)


@pytest.fixture(autouse=True)
def check_no_leaks(request):
    """Fails a test that leaves a child process alive or a new entry in /dev/shm."""
    children_before = {proc.pid for proc in child_processes()}
    shm_before = shm_entries()

    yield

    problems = []
    leaked_procs = wait_for_children_exit(children_before)
    if leaked_procs:
        description = describe_processes(leaked_procs)
        kill_processes(leaked_procs)
        problems.append(f"child processes still alive after the test (killed now): {description}")

    leaked_shm = new_shm_entries(shm_before)
    if leaked_shm:
        problems.append(f"new entries left in {SHM_DIR}: {sorted(leaked_shm)}")

    if problems:
        pytest.fail(f"{request.node.nodeid}: " + " | ".join(problems), pytrace=False)


@pytest.fixture
def mp_ctx():
    """The start method the library uses for its processes."""
    return multiprocessing.get_context("spawn")
