"""Frozen league opponents in training (`--league_opponents=K`), on the runner's loop.

Policy ids num_policies .. num_policies + K - 1 act but never learn: each has an inference worker
and trajectory slots like a learning policy, but its trajectories go back to its slot pool at once
(rollout_worker.py) and its weights are a league snapshot that this component loads into its
shared policy state. The agent -> policy mapping seats them (`--league_opponent_prob`).

Whenever the set of snapshots changes (a learner saved one), every frozen opponent draws the
snapshot it plays next: uniformly, or (`--league_opponent_sampling=win_rate`) with weight
(1 - score)^2 + 0.05 where score is the learning policies' share of points against it so far
(a snapshot never played counts as 1: each is tried), so the opponents the population still
loses to come back most (prioritized fictitious self-play, as in AlphaStar's league).

The games between a learning policy and a frozen opponent are the run's league record, kept in
`league/training_games.json` (per snapshot, per learning policy: wins, draws, losses), written
atomically every few seconds, with the Elo ratings it implies (`pbt/elo.py`; each learning policy
as it is now, against the snapshots it met); TensorBoard: `league/score_vs_snapshots` (points per
game since the last write) and `league/elo` of each learning policy.
"""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path

import torch

from sample_factory.cfg.experiment import write_json_atomically
from sample_factory.model.actor_critic import create_actor_critic
from sample_factory.pbt.elo import elo_ratings
from sample_factory.signal_slot.signal_slot import EventLoopObject, Timer
from sample_factory.utils.checkpoint import league_dir, league_snapshots

log = logging.getLogger(__name__)

GAMES_FILE = "training_games.json"
REFRESH_SEC = 2.0
WRITE_SEC = 10.0
UNPLAYED_WEIGHT = 1.0
FLOOR_WEIGHT = 0.05


def snapshot_weights(snapshots: list[str], scores: dict[str, float | None], mode: str) -> list[float]:
    """Sampling weights of the snapshots; `scores[name]`: the learners' points per game against it."""
    if mode == "uniform":
        return [1.0] * len(snapshots)
    weights = []
    for name in snapshots:
        score = scores.get(name)
        weights.append(UNPLAYED_WEIGHT if score is None else (1.0 - score) ** 2 + FLOOR_WEIGHT)
    return weights


class LeagueOpponents(EventLoopObject):
    def __init__(self, event_loop, cfg, env_info, shared, experiment_dir, stats, seed: int | None = None):
        super().__init__(event_loop, "league_opponents")
        self.cfg = cfg
        self.shared = shared
        self.stats = stats
        self.experiment_dir = Path(experiment_dir)
        self.first_id = cfg.num_policies
        self.num_opponents = cfg.league_opponents
        self.rng = random.Random(seed)
        self.model = create_actor_critic(cfg, env_info.obs_space, env_info.action_space)
        self.known: list[Path] = []
        self.playing: dict[int, tuple[int, str]] = {}  # frozen id -> (weights version, snapshot name)
        self.version_names: dict[tuple[int, int], str] = {}  # (frozen id, version) -> snapshot name
        self._next_version = 1
        self.games = self._read_games()  # snapshot name -> policy id (str) -> [wins, draws, losses]
        self._recent = [[0.0, 0] for _ in range(cfg.num_policies)]  # points, games since the last write
        self._dirty = False
        Timer(event_loop, REFRESH_SEC, self._refresh)
        Timer(event_loop, WRITE_SEC, self._write)

    @property
    def games_path(self) -> Path:
        return league_dir(self.experiment_dir) / GAMES_FILE

    def _read_games(self) -> dict:
        try:
            return json.loads(self.games_path.read_text()).get("games", {})
        except (OSError, ValueError, AttributeError):
            return {}

    def snapshots(self) -> list[Path]:
        return [path for p in range(self.cfg.num_policies) for path in league_snapshots(self.experiment_dir, p)]

    def score_against(self, name: str) -> float | None:
        records = self.games.get(name, {}).values()
        games = sum(sum(r) for r in records)
        return sum(w + 0.5 * d for w, d, _ in records) / games if games else None

    def _refresh(self):
        snapshots = self.snapshots()
        if snapshots == self.known or not snapshots:
            return
        self.known = snapshots
        names = [p.name for p in snapshots]
        weights = snapshot_weights(names, {n: self.score_against(n) for n in names}, self.cfg.league_opponent_sampling)
        for frozen_id in range(self.first_id, self.first_id + self.num_opponents):
            path = self.rng.choices(snapshots, weights=weights)[0]
            if self.playing.get(frozen_id, (0, None))[1] == path.name:
                continue
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
                self.model.load_state_dict(state["model"])
            except Exception as e:  # deleted by rotation meanwhile, or unreadable: the next change retries
                log.warning("Frozen opponent %d: could not load %s (%s: %s)", frozen_id, path.name, type(e).__name__, e)
                continue
            version = self._next_version
            self._next_version += 1
            self.shared.policy_states[frozen_id].publish(self.model, version)
            self.playing[frozen_id] = (version, path.name)
            self.version_names[(frozen_id, version)] = path.name
            log.info("Frozen opponent %d plays %s", frozen_id, path.name)

    def on_league_games(self, games: list):
        for policy_id, frozen_id, version, points in games:
            name = self.version_names.get((frozen_id, version))
            if name is None:
                continue
            record = self.games.setdefault(name, {}).setdefault(str(policy_id), [0, 0, 0])
            record[0 if points == 1.0 else 1 if points == 0.5 else 2] += 1
            self._recent[policy_id][0] += points
            self._recent[policy_id][1] += 1
            self._dirty = True

    def ratings(self) -> dict[str, float]:
        """Elo of the snapshots and of each learning policy as it is now (`policy_N`)."""
        learners = [f"policy_{p}" for p in range(self.cfg.num_policies)]
        names = sorted(self.games) + learners
        pairs = {
            (f"policy_{p}", snapshot): record
            for snapshot, by_policy in self.games.items()
            for p, record in by_policy.items()
        }
        return elo_ratings(names, pairs)

    def _write(self):
        if not self._dirty:
            return
        self._dirty = False
        elo = self.ratings()
        write_json_atomically(self.games_path, {"games": self.games, "elo": elo, "playing": dict(self.playing)})
        for policy_id, (points, games) in enumerate(self._recent):
            writer = self.stats.summary_writer(policy_id)
            step = self.stats.env_steps[policy_id]
            if games:
                writer.add_scalar("league/score_vs_snapshots", points / games, step)
            if f"policy_{policy_id}" in elo:
                writer.add_scalar("league/elo", elo[f"policy_{policy_id}"], step)
        self._recent = [[0.0, 0] for _ in range(self.cfg.num_policies)]

    def on_stop(self):
        self._write()
