"""How a run or a command ended: its status, which is also its process exit code.

Every entry point returns one of these to `sys.exit`, so shells, the launcher and Slurm read the
same numbers.
"""

from __future__ import annotations

from enum import IntEnum


class ExitStatus(IntEnum):
    SUCCESS = 0  # also a run stopped by Ctrl-C or SIGTERM after saving: it ended normally
    FAILURE = 1  # something failed while running (a dead component, a failed save, a crashing env)
    BAD_INPUT = 2  # bad flags, config or arguments, reported before anything started
    TIMED_OUT = 124  # a launcher job killed past its --timeout (coreutils' timeout says the same)
    INTERRUPTED = 130  # 128 + SIGINT: stopped by a signal before it could finish (a second Ctrl-C, a job)


class ExperimentStatus:
    """sample-factory 2.x's names for what `runner.init()`, `runner.run()` and `run_rl` return.

    A run stopped by Ctrl-C or SIGTERM after saving returns SUCCESS (0) here, as a normal end;
    2.x's INTERRUPTED value is kept for scripts that name it.
    """

    SUCCESS = ExitStatus.SUCCESS
    FAILURE = ExitStatus.FAILURE
    INTERRUPTED = 2
