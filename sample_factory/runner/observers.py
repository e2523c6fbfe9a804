"""The runner's own observers, on the `AlgoObserver` interface users have: best checkpoints and telemetry.

They see the run as any user observer does, through the runner's public attributes, and keep
their state to themselves; the runner registers them first, so a user's observers run after them.
"""

from __future__ import annotations

import logging
import os

import numpy as np

from sample_factory.algo import protocol
from sample_factory.runner.leak_watch import LeakWatch
from sample_factory.runner.observer import AlgoObserver
from sample_factory.signal_slot.loop import Timer
from sample_factory.utils.checkpoint import best_metric_value, checkpoint_dir

log = logging.getLogger(__name__)


class BestCheckpoints(AlgoObserver):
    """Every --save_best_every_sec: a policy whose --save_best_metric (mean over the last episodes,
    after --save_best_after env steps) beats its best so far is told to save a best checkpoint.
    The best so far of an earlier run of the experiment is read from its best checkpoint."""

    def __init__(self):
        self._best: list[float] = []

    def on_init(self, runner):
        cfg = runner.cfg
        self._best = [self._saved_best(runner, p) for p in range(cfg.num_policies)]

    def on_start(self, runner):
        Timer(
            runner.event_loop, max(1.0, float(runner.cfg.save_best_every_sec)), lambda: self._save_if_improved(runner)
        )

    @staticmethod
    def _saved_best(runner, policy_id: int) -> float:
        metric = runner.cfg.save_best_metric
        value = best_metric_value(checkpoint_dir(runner.experiment_dir, policy_id), metric)
        if value is None:
            return float("-inf")
        log.info("Policy %d: best %s so far %.3f (from an earlier run)", policy_id, metric, value)
        return value

    @staticmethod
    def metric_value(runner, policy_id: int) -> float | None:
        """The metric's mean over the last episodes; None before 10 (or --stats_avg) of them."""
        cfg, stats = runner.cfg, runner.stats
        if cfg.save_best_metric == "reward":
            values = stats.episode_rewards[policy_id]
        else:
            values = stats.extra_stats[policy_id].get(cfg.save_best_metric, ())
        if len(values) < min(10, cfg.stats_avg):
            return None
        return float(np.mean(values))

    def _save_if_improved(self, runner):
        cfg = runner.cfg
        if runner.stopping or cfg.sampler_only:
            return
        for policy_id in range(cfg.num_policies):
            if runner.stats.env_steps[policy_id] < cfg.save_best_after:
                continue
            value = self.metric_value(runner, policy_id)
            if value is not None and value > self._best[policy_id]:
                self._best[policy_id] = value
                runner.named_signal(protocol.save_best(policy_id)).emit(
                    protocol.SaveBest(policy_id, cfg.save_best_metric, value)
                )


class Telemetry(AlgoObserver):
    """At every report: each process's proportional set size (shared memory split fairly between its
    users) and open file descriptors, and /dev/shm use (machine-wide), in TensorBoard under perf/
    and watched for steady growth (LeakWatch)."""

    def __init__(self):
        self.leak_watch = LeakWatch()

    def on_start(self, runner):
        Timer(runner.event_loop, runner.cfg.report_interval_sec, lambda: self.sample(runner))

    def sample(self, runner):
        import psutil

        usage = {}
        for name, pid in [("runner", os.getpid())] + [(p.name, p.pid) for p in runner.processes]:
            try:
                process = psutil.Process(pid)
                usage[f"memory_mb_{name}"] = process.memory_full_info().pss / 2**20
                usage[f"fds_{name}"] = process.num_fds()
            except (psutil.Error, AttributeError):
                continue
        try:
            shm = os.statvfs("/dev/shm")
            usage["dev_shm_used_mb"] = (shm.f_blocks - shm.f_bfree) * shm.f_frsize / 2**20
        except OSError:
            pass
        runner.stats.write_scalars(0, "perf", usage)
        self.leak_watch.sample(usage)
