"""`Timing`: named wall-clock timers for a script's own profiling, as sample-factory 2.x offers them.

timing = Timing("rollout")
with timing.timeit("step"):
    env.step(action)
with timing.add_time("inference"):  # accumulates over calls
    ...
print(timing)  # rollout: step: 0.0012, inference: 0.0400
"""

from __future__ import annotations

import time
from contextlib import contextmanager

from sample_factory.utils.attr_dict import AttrDict


class AvgTime:
    """A running average over the last `num_values_to_avg` measurements."""

    def __init__(self, num_values_to_avg: int):
        self.values: list[float] = []
        self.num_values_to_avg = num_values_to_avg

    def add(self, value: float) -> None:
        self.values = (self.values + [value])[-self.num_values_to_avg :]

    def __float__(self) -> float:
        return sum(self.values) / max(len(self.values), 1)

    def __str__(self) -> str:
        return f"{float(self):.4f}"


class Timing(AttrDict):
    """Seconds per key: `timeit` keeps the last measurement, `add_time` sums, `time_avg` averages."""

    def __init__(self, name: str = "Profile", *args, **kwargs):
        super().__init__(*args, **kwargs)
        object.__setattr__(self, "_name", name)

    @contextmanager
    def timeit(self, key: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self[key] = time.perf_counter() - start

    @contextmanager
    def add_time(self, key: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self[key] = self.get(key, 0.0) + time.perf_counter() - start

    @contextmanager
    def time_avg(self, key: str, average: int = 10):
        start = time.perf_counter()
        try:
            yield
        finally:
            if not isinstance(self.get(key), AvgTime):
                self[key] = AvgTime(average)
            self[key].add(time.perf_counter() - start)

    def __str__(self) -> str:
        parts = [
            f"{key}: {value:.4f}" if isinstance(value, float) else f"{key}: {value}" for key, value in self.items()
        ]
        return f"{self._name}: " + ", ".join(parts)
