"""Makes the fork server die with the process that started it (imported by the fork server only).

Component processes are children of the fork server, not of the main process; each dies with
its parent (`process.die_with_parent`). Without this the chain stops at the fork server:
after `kill -9` of the main process the fork server, and with it every worker, would live on.
`arm(os.getpid())` in the main process names it in the environment the fork server inherits;
when the fork server imports this module (it is in the preload list) it asks the kernel for
SIGKILL on its parent's death, and exits at once if that parent is already gone.
"""

from __future__ import annotations

import os

_ENV = "SF_FORKSERVER_PARENT_PID"


def arm(parent_pid: int) -> None:
    os.environ[_ENV] = str(parent_pid)


def _guard_this_process() -> None:
    expected = os.environ.get(_ENV)
    if not expected or os.getppid() != int(expected):
        return  # not a fork server that the armed process started
    from sample_factory.signal_slot.process import die_with_parent

    die_with_parent()
    if os.getppid() != int(expected):  # the parent died before the kernel was asked
        os._exit(1)


_guard_this_process()
