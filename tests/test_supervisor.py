"""The supervisor's watches, driven by a clock of their own: stalls, silences and a stuck run.

The whole supervisor (restarts, the death watch, freed locks) runs in tests/test_faults.py, with
real processes killed and hung; here each decision is checked alone, with the time it takes.
"""

from __future__ import annotations

import pytest

from sample_factory.algo import roles
from sample_factory.runner.supervisor import SILENT_STOP_INTERVALS, SilenceWatch, StallWatch, StuckWatch


def test_a_worker_that_stands_still_while_the_others_sample_is_a_stall():
    watch = StallWatch(patience_sec=20.0, report_interval_sec=60.0)
    assert watch.update([0, 0], now=0.0) == []  # the first look only records
    assert watch.update([100, 50], now=5.0) == []
    assert watch.update([200, 50], now=20.0) == []  # still for 15 s only
    stalls = watch.update([300, 50], now=25.0)
    assert [(s.worker_idx, s.stalled_for) for s in stalls] == [(1, 20.0)]


def test_every_worker_waiting_together_is_a_slow_learner_not_a_stall():
    watch = StallWatch(patience_sec=20.0, report_interval_sec=60.0)
    watch.update([10, 10], now=0.0)
    assert watch.update([10, 10], now=100.0) == []
    # Worker 0 moves again: worker 1's patience counts from the last time everyone waited.
    assert watch.update([20, 10], now=110.0) == []
    assert [s.worker_idx for s in watch.update([30, 10], now=121.0)] == [1]


def test_a_stall_is_reported_once_per_interval_until_the_worker_moves():
    watch = StallWatch(patience_sec=10.0, report_interval_sec=30.0)
    watch.update([0, 0], now=0.0)
    reported = [t for t in range(1, 100) if watch.update([t * 10, 0], now=float(t))]
    assert reported == [10, 40, 70]
    watch.update([1000, 1], now=100.0)  # it moved: a new stall is reported anew
    assert watch.update([1010, 1], now=109.0) == []
    assert [s.stalled_for for s in watch.update([1020, 1], now=110.0)] == [10.0]


def test_a_restarted_worker_starts_its_patience_afresh():
    watch = StallWatch(patience_sec=10.0, report_interval_sec=30.0)
    watch.update([0, 0], now=0.0)
    assert watch.update([50, 0], now=10.0)
    watch.restarted(1, now=10.0)
    assert watch.update([60, 0], now=15.0) == []
    assert watch.update([70, 0], now=20.0)


def test_a_silent_loop_is_named_once_then_stops_the_run():
    learner = roles.learner(0)
    watch = SilenceWatch(patience_sec=20.0)
    assert watch.update({learner: 5}, now=0.0) == []
    assert watch.update({learner: 5}, now=19.0) == []
    (named,) = watch.update({learner: 5}, now=20.0)
    assert (named.role, named.report, named.stop) == (learner, True, False)
    assert watch.update({learner: 5}, now=30.0) == []  # named once
    (stop,) = watch.update({learner: 5}, now=SILENT_STOP_INTERVALS * 20.0)
    assert (stop.report, stop.stop) == (False, True)


def test_a_loop_that_turns_again_is_forgiven():
    inference = roles.inference_worker(0, 1)
    watch = SilenceWatch(patience_sec=20.0)
    watch.update({inference: 1}, now=0.0)
    assert watch.update({inference: 1}, now=25.0)
    assert watch.update({inference: 2}, now=26.0) == []
    assert watch.update({inference: 2}, now=45.0) == []
    assert watch.update({inference: 2}, now=46.0)[0].report, "silent again: named again"


def test_a_restarted_process_gets_its_start_up_time():
    inference = roles.inference_worker(0, 0)
    watch = SilenceWatch(patience_sec=20.0)
    watch.update({inference: 7}, now=0.0)
    watch.forget(inference)
    assert watch.update({inference: 7}, now=30.0) == [], "the count is new to the watch"
    assert watch.update({inference: 7}, now=50.0)


def test_a_run_that_neither_steps_nor_trains_is_stuck():
    watch = StuckWatch(patience_sec=60.0, started_at=0.0)
    assert watch.stuck_for(frames=100, train_steps=2, now=10.0) is None
    assert watch.stuck_for(frames=100, train_steps=2, now=69.0) is None
    assert watch.stuck_for(frames=100, train_steps=2, now=70.0) == pytest.approx(60.0)
    assert watch.stuck_for(frames=100, train_steps=3, now=71.0) is None, "a train step is progress"


def test_envs_that_never_stepped_are_named_once_never_stuck():
    watch = StuckWatch(patience_sec=60.0, started_at=0.0)
    assert not watch.never_stepped(frames=0, now=59.0)
    assert watch.never_stepped(frames=0, now=60.0)
    assert not watch.never_stepped(frames=0, now=200.0), "named once"
    assert watch.stuck_for(frames=0, train_steps=0, now=500.0) is None


def test_role_names_are_the_process_names_users_read():
    assert [r.name for r in (roles.rollout_worker(3), roles.inference_worker(1, 0), roles.learner(2))] == [
        "rollout_worker_3",
        "inference_p1_0",
        "learner_p2",
    ]
    assert roles.inference_worker(1, 0) == roles.Role(roles.Kind.INFERENCE, 1, 0), "roles are values"
