"""Console (and file) logging, set up once by the entry points."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from sample_factory.utils.experiment_folder import LOG_FILE  # noqa: F401 (callers import it from here too)

_LOGS_TO_STDERR = "SF_LOGS_TO_STDERR"
_FORMAT = "[%(asctime)s][%(process)05d] %(message)s"


class _StdoutHandler(logging.StreamHandler):
    """Writes to whatever `sys.stdout` is when a record is emitted, not the one at setup time:
    pytest's capture, notebooks and redirect_stdout replace it, and a stale one may be closed."""

    @property
    def stream(self):
        # Machine-readable output on stdout (benchmark --json) moves the logs of every process away.
        return sys.stderr if os.environ.get(_LOGS_TO_STDERR) else sys.stdout

    @stream.setter
    def stream(self, _value):
        pass


def setup_logging(level: int = logging.INFO, log_file: Path | None = None):
    root = logging.getLogger()
    if not any(getattr(h, "_sf_console", False) for h in root.handlers):
        handler = _StdoutHandler()
        handler.setFormatter(logging.Formatter(_FORMAT, "%H:%M:%S"))
        handler._sf_console = True
        root.addHandler(handler)
    if log_file is not None and not any(getattr(h, "_sf_file", None) == str(log_file) for h in root.handlers):
        log_file.parent.mkdir(parents=True, exist_ok=True)
        file_handler = logging.FileHandler(log_file)
        file_handler.setFormatter(logging.Formatter(_FORMAT, "%Y-%m-%d %H:%M:%S"))
        file_handler._sf_file = str(log_file)
        root.addHandler(file_handler)
    root.setLevel(level)


def log_to_stderr():
    """Console logs (of this process and the ones it starts) go to stderr, leaving stdout to data."""
    os.environ[_LOGS_TO_STDERR] = "1"
