"""Kills the ViZDoom engines of a process that died without closing them (run as a script, stdlib only).

ViZDoom starts each engine as a child process. `DoomGame.close()` stops it, but a process that
dies abruptly (SIGKILL, the OOM killer, a segfault) leaves its engines running forever, waiting on
their message queues, and their /dev/shm segments behind. A process with Doom envs starts this
script as one child with a pipe on its stdin, and its envs write one line per engine they start:

    <engine pid> <viz_instance_id> <the env's temporary folder>

When the pipe closes, the envs are gone (all closed, or the process died): every listed engine
that still runs is killed (SIGKILL; its command line must still name its instance id, so a
reused pid is never hit), its /dev/shm entries are removed, and so is its env's folder. Cleanly
closed envs leave nothing to kill or remove.

SIGINT and SIGTERM are ignored: a signal to the whole process group must not end the watchdog
while its env is alive (the env's process decides how to stop).
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time

SHM_DIR = "/dev/shm"
SHM_PREFIXES = ("ViZDoomSM", "ViZDoomMQCtr", "ViZDoomMQDoom")


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except (OSError, IndexError):
        return True


def kill_engine(pid: int, instance_id: str, wait_sec: float = 5.0):
    """SIGKILLs the engine if it still runs as instance_id, then removes its shared memory."""
    if instance_id and instance_id in _cmdline(pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + wait_sec
        while time.monotonic() < deadline and not _is_zombie(pid):
            time.sleep(0.01)
    for prefix in SHM_PREFIXES:
        try:
            os.unlink(os.path.join(SHM_DIR, prefix + instance_id))
        except (FileNotFoundError, IsADirectoryError, PermissionError):
            pass


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    engines: list[tuple[int, str]] = []
    folders: set[str] = set()
    for line in sys.stdin:  # ends when every writer has closed the pipe
        parts = line.rstrip("\n").split(" ", 2)
        if len(parts) == 3 and parts[0].isdigit():
            engines.append((int(parts[0]), parts[1]))
            folders.add(parts[2])
    for pid, instance_id in engines:
        kill_engine(pid, instance_id)
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
