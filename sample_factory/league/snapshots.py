"""The league's players: the frozen snapshots the learners save (`league/policy_XX_<env steps>.pth`,
every `--league_snapshot_every_env_steps`), and which one a frozen opponent plays next.

With `--league_opponent_sampling=win_rate` a snapshot is drawn with weight (1 - score)^2 + 0.05,
where score is the learning policies' share of points against it so far (a snapshot never played
counts as 1: each is tried), so the opponents the population still loses to come back most
(prioritized fictitious self-play, as in AlphaStar's league).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from sample_factory.utils.checkpoint import league_snapshots

UNPLAYED_WEIGHT = 1.0
FLOOR_WEIGHT = 0.05


def experiment_snapshots(experiment_dir: str | Path, num_policies: int) -> list[Path]:
    """Every policy's snapshots: policy 0's oldest first, then policy 1's, ..."""
    return [path for policy_id in range(num_policies) for path in league_snapshots(experiment_dir, policy_id)]


def snapshot_weights(snapshots: list[str], scores: Mapping[str, float | None], mode: str) -> list[float]:
    """Sampling weights of the snapshots; `scores[name]`: the learners' points per game against it."""
    if mode == "uniform":
        return [1.0] * len(snapshots)
    weights = []
    for name in snapshots:
        score = scores.get(name)
        weights.append(UNPLAYED_WEIGHT if score is None else (1.0 - score) ** 2 + FLOOR_WEIGHT)
    return weights
