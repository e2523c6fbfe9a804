"""Frozen league opponents in training (`--league_opponents=K`), on the runner's loop.

Policy ids num_policies .. num_policies + K - 1 act but never learn: each has an inference worker
and trajectory slots like a learning policy, but its trajectories go back to its slot pool at once
(rollout_worker.py) and its weights are a league snapshot that this component loads into its
shared policy state. The agent -> policy mapping seats them (`--league_opponent_prob`).

Whenever the set of snapshots changes (a learner saved one), every frozen opponent draws the
snapshot it plays next (`league/snapshots.py`, `--league_opponent_sampling`).

The games between a learning policy and a frozen opponent (scored by the rollout workers,
`league/games.py`) are the run's league record, kept in `league/training_games.json` (per
snapshot, per learning policy: wins, draws, losses), written atomically every few seconds, with
the Elo ratings it implies (`league/elo.py`; each learning policy as it is now, against the
snapshots it met); TensorBoard: `league/score_vs_snapshots` (points per game since the last
write) and `league/elo` of each learning policy.
"""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path

import torch

from sample_factory.algo import protocol
from sample_factory.league.elo import elo_ratings
from sample_factory.league.games import outcome
from sample_factory.league.snapshots import experiment_snapshots, snapshot_weights
from sample_factory.model.actor_critic import create_actor_critic
from sample_factory.signal_slot.loop import EventLoopObject, Timer
from sample_factory.utils.experiment_folder import ExperimentFolder, atomic_write_json

log = logging.getLogger(__name__)

REFRESH_SEC = 2.0
WRITE_SEC = 10.0


class LeagueOpponents(EventLoopObject):
    def __init__(self, event_loop, cfg, env_info, shared, experiment_dir, stats, seed: int | None = None):
        super().__init__(event_loop, "league_opponents")
        self.cfg = cfg
        self.shared = shared
        self.stats = stats
        self.folder = ExperimentFolder(experiment_dir)
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
        return self.folder.training_games_file

    def _read_games(self) -> dict:
        try:
            return json.loads(self.games_path.read_text()).get("games", {})
        except (OSError, ValueError, AttributeError):
            return {}

    def snapshots(self) -> list[Path]:
        return experiment_snapshots(self.folder.path, self.cfg.num_policies)

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

    def on_league_games(self, finished: protocol.LeagueGamesFinished):
        for policy_id, frozen_id, version, points in finished.games:
            name = self.version_names.get((frozen_id, version))
            if name is None:
                continue
            record = self.games.setdefault(name, {}).setdefault(str(policy_id), [0, 0, 0])
            record[outcome(points)] += 1
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
        atomic_write_json(self.games_path, {"games": self.games, "elo": elo, "playing": dict(self.playing)})
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
