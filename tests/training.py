"""Helpers for tests that train for real: run until a goal return or a step budget."""

from __future__ import annotations

import time

from sample_factory.train import make_runner


def train_until(cfg, goal_reward: float | None = None, min_episodes: int = 20) -> dict:
    """Trains in-process; stops early when the mean return of the last episodes reaches the goal.

    Returns the runner's final summary plus `steps_to_goal` and `sec_to_goal` (None if not reached).
    """
    _, runner = make_runner(cfg)
    reached = {}

    def stop_at_goal(r):
        stats = r.stats
        if goal_reward is None or len(stats.episode_rewards[0]) < min_episodes:
            return False
        if all(stats.mean_reward(p) >= goal_reward for p in range(cfg.num_policies)):
            reached.setdefault("steps", stats.total_env_steps)
            reached.setdefault("sec", time.monotonic() - r._train_started)
            return True
        return False

    runner.report_callbacks.append(stop_at_goal)
    status = runner.run()
    summary = dict(runner.stats.summary)
    summary.update(status=status, steps_to_goal=reached.get("steps"), sec_to_goal=reached.get("sec"), runner=runner)
    return summary
