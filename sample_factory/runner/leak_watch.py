"""Leak alarms: a resource of the run that grows steadily is warned about while the run goes on.

sample-factory 2.x once leaked 1 GB per 5-10 minutes unseen (its issue #116). The runner samples
each process's memory (PSS) and open file descriptors, and /dev/shm use (machine-wide), at reports;
a quantity that grew at each of the last `window` samples taken `min_interval_sec` apart, and by
more than `min_growth` overall, is one warning line (again only after it doubles its growth).
"""

from __future__ import annotations

import logging
import time
from collections import deque

log = logging.getLogger(__name__)


class LeakWatch:
    def __init__(self, window: int = 10, min_interval_sec: float = 30.0, min_growth: float = 0.2):
        self.window = window
        self.min_interval_sec = min_interval_sec
        self.min_growth = min_growth
        self._samples: dict[str, deque] = {}
        self._last_sample_time = float("-inf")
        self._warned_growth: dict[str, float] = {}

    def sample(self, values: dict[str, float], now: float | None = None) -> list[str]:
        """Records one sample of each quantity; returns the names that now look like leaks (and warns)."""
        now = time.monotonic() if now is None else now
        if now - self._last_sample_time < self.min_interval_sec:
            return []
        self._last_sample_time = now
        leaking = []
        for name, value in values.items():
            history = self._samples.setdefault(name, deque(maxlen=self.window))
            history.append(float(value))
            if len(history) < self.window or history[0] <= 0:
                continue
            steadily = all(b > a for a, b in zip(history, list(history)[1:]))
            growth = history[-1] / history[0] - 1.0
            if steadily and growth > max(self.min_growth, 2 * self._warned_growth.get(name, 0.0)):
                self._warned_growth[name] = growth
                leaking.append(name)
                span = (self.window - 1) * self.min_interval_sec
                log.warning(
                    "%s grew at each of the last %d samples, from %.1f to %.1f (+%.0f%% in about %.0fs): a leak?",
                    name, self.window, history[0], history[-1], 100 * growth, span,
                )  # fmt: skip
        return leaking
