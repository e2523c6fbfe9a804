"""Leak alarms: steady growth is warned about once (again only when it doubles); noise is not."""

from __future__ import annotations

import pytest

from sample_factory.runner.leak_watch import LeakWatch


def feed(watch: LeakWatch, series: list[float], start: float = 0.0) -> list[list[str]]:
    return [watch.sample({"memory_mb_rollout_worker_0": v}, now=start + 30.0 * i) for i, v in enumerate(series)]


def test_steady_growth_is_warned_once_and_again_when_it_doubles(caplog):
    watch = LeakWatch(window=5, min_interval_sec=30.0, min_growth=0.2)
    leaks = feed(watch, [100, 110, 120, 130, 140, 150, 200, 280, 400, 600])
    flagged = [i for i, names in enumerate(leaks) if names]
    assert flagged[0] == 4, "the first full window that grew 40 % > 20 %"
    # 100 -> 140 (+40 %), then 130 -> 280 (+115 % > 2 x 40 %), then 150 -> 600 (+300 % > 2 x 115 %)
    assert flagged == [4, 7, 9], "warned again only when the growth over the window doubled"
    assert "memory_mb_rollout_worker_0 grew at each of the last 5 samples, from 100.0 to 140.0" in caplog.text


@pytest.mark.parametrize(
    "series",
    [
        [100, 101, 102, 103, 104, 105, 106],  # steady but small: warm-up caches, not a leak
        [100, 130, 120, 150, 140, 170, 160],  # large but not steady: noise
        [100] * 8,
    ],
    ids=["small", "noisy", "flat"],
)
def test_small_or_unsteady_changes_are_not_leaks(series):
    watch = LeakWatch(window=5, min_interval_sec=30.0, min_growth=0.2)
    assert not any(feed(watch, series))


def test_samples_closer_than_the_interval_are_ignored():
    watch = LeakWatch(window=3, min_interval_sec=30.0, min_growth=0.1)
    for i, v in enumerate([100, 200, 300, 400, 500, 600]):
        assert watch.sample({"fds_runner": v}, now=float(i)) == []  # 1 s apart: only the first counts
