"""Self-play: the coin-race game's rules, league snapshots, the match command, and a policy trained
by self-play that beats its own snapshot from the start of training."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from sample_factory.algo.utils.agent_policy_mapping import (
    AgentPolicyMapping,
    agent_policy_mapping_class,
    set_agent_policy_mapping,
)
from sample_factory.league.snapshots import snapshot_weights
from sample_factory.train import make_runner
from sample_factory.utils.checkpoint import league_snapshots, save_league_snapshot
from sf_examples.selfplay.coin_race import MAX_STEPS, CoinRaceEnv
from sf_examples.selfplay.train_coin_race import parse_coin_race_args

pytestmark = pytest.mark.timeout(300)


# --- the game ----------------------------------------------------------------------------------


def placed(players, coin) -> CoinRaceEnv:
    env = CoinRaceEnv()
    env.reset(seed=0)
    env.players[:] = players
    env.coin[:] = coin
    return env


def test_the_first_to_reach_the_coin_wins_and_the_game_is_zero_sum():
    env = placed([[0, 0], [6, 6]], [0, 1])
    obs, rewards, terminated, truncated, infos = env.step([1, 0])  # player 0 steps up onto the coin
    assert rewards == [1.0, -1.0] and terminated == [True, True] and truncated == [False, False]
    assert [info["true_objective"] for info in infos] == [1.0, 0.0]
    assert all(env.observation_space.contains(o) for o in obs), "the next game's first observations"


def test_a_player_cannot_step_onto_the_other_and_reaching_the_coin_together_is_a_draw():
    env = placed([[0, 0], [0, 1]], [6, 6])
    env.step([1, 0])  # player 0 walks into player 1: blocked
    assert env.players.tolist() == [[0, 0], [0, 1]]
    env = placed([[1, 0], [1, 2]], [1, 1])
    _, rewards, terminated, _, infos = env.step([1, 2])  # both step onto the coin
    assert rewards == [0.0, 0.0] and terminated[0] and infos[0]["true_objective"] == 0.5


def test_nobody_at_the_coin_in_time_is_a_truncated_draw():
    env = placed([[0, 0], [6, 6]], [3, 3])
    for _ in range(MAX_STEPS):
        _, rewards, terminated, truncated, _ = env.step([0, 0])
    assert rewards == [0.0, 0.0] and truncated == [True, True] and terminated == [False, False]


def test_each_player_sees_itself_first():
    env = placed([[1, 2], [5, 4]], [3, 3])
    obs = env._observe()
    scale = 1.0 / (env.size - 1)
    assert np.allclose(obs[0][:4], np.array([1, 2, 5, 4]) * scale)
    assert np.allclose(obs[1][:4], np.array([5, 4, 1, 2]) * scale)


# --- league snapshots and the match command ----------------------------------------------------


def test_league_keeps_the_first_snapshot_and_the_newest(tmp_path):
    for steps in range(0, 600, 100):
        save_league_snapshot({"model": {}}, tmp_path, 0, steps, keep=3)
    save_league_snapshot({"model": {}}, tmp_path, 1, 7, keep=3)
    names = [p.name for p in league_snapshots(tmp_path, 0)]
    assert names == ["policy_00_000000000000.pth", "policy_00_000000000400.pth", "policy_00_000000000500.pth"]
    assert len(league_snapshots(tmp_path, 1)) == 1


def match(tmp_path, experiment, *flags):
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "sample_factory.match",
            "--env=coin_race",
            f"--experiment={experiment}",
            f"--train_dir={tmp_path}",
            "--device=cpu",
            "--seed=0",
            *flags,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def league_cmd(train_dir, experiment, *flags):
    return subprocess.run(
        [sys.executable, "-m", "sample_factory.league", "--env=coin_race", f"--experiment={experiment}"]
        + [f"--train_dir={train_dir}", "--device=cpu", *flags],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_policy_trained_by_self_play_beats_its_snapshot_from_the_start(tmp_path):
    cfg = parse_coin_race_args(
        [f"--train_dir={tmp_path}", "--experiment=selfplay", "--device=cpu", "--seed=1", "--train_for_env_steps=300000"]
    )
    _, runner = make_runner(cfg)
    assert runner.run() == 0
    first = league_snapshots(tmp_path / "selfplay", 0)[0]
    assert torch.load(first, weights_only=True)["training_state"]["env_steps"] == 0

    result = match(tmp_path, "selfplay", "--opponent=first", "--max_num_episodes=200")
    assert result.returncode == 0, result.stderr
    found = re.search(r"(\d+) wins, (\d+) draws, (\d+) losses in 200 games", result.stdout)
    assert found, result.stdout
    wins, _, _ = map(int, found.groups())
    assert wins >= 0.6 * 200, result.stdout

    # The league of its snapshots: each meets the first; the newest is rated above it.
    league = league_cmd(tmp_path, "selfplay", "--pairs=first", "--games_per_pair=40")
    assert league.returncode == 0, league.stderr
    ratings = json.loads((tmp_path / "selfplay" / "league" / "ratings.json").read_text())
    first_player, *later, newest = ratings["players"]
    assert later and newest["win_rate_vs_first"] >= 0.6 and newest["elo"] > first_player["elo"] == 1000.0
    assert newest["name"] in league.stdout and f"{len(later) + 1} pair(s) played now" in league.stdout
    assert any((tmp_path / "selfplay" / ".summary" / "league").glob("events.out.tfevents.*"))
    again = league_cmd(tmp_path, "selfplay", "--pairs=first", "--games_per_pair=40")
    assert again.returncode == 0 and "0 pair(s) played now" in again.stdout


def test_match_without_snapshots_is_a_one_line_error(tmp_path):
    cfg = parse_coin_race_args(
        [
            f"--train_dir={tmp_path}",
            "--experiment=nosnap",
            "--device=cpu",
            "--train_for_env_steps=5000",
            "--league_snapshot_every_env_steps=0",
            "--serial_mode=True",
        ]
    )
    _, runner = make_runner(cfg)
    assert runner.run() == 0
    result = match(tmp_path, "nosnap")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: policy 0 of {tmp_path / 'nosnap'} has no league snapshots: train it with"
        " --league_snapshot_every_env_steps=N, or give --opponent=<checkpoint path>"
    ]


# --- the agent -> policy mapping ---------------------------------------------------------------


class SeatPerPolicy(AgentPolicyMapping):
    """Agent 0 of every env is policy 0, agent 1 is policy 1."""

    def policies_for_env(self, env_id, episode, env_steps):
        return [0, 1]


def test_a_custom_mapping_decides_which_policy_plays_which_seat(tmp_path):
    cfg = parse_coin_race_args(
        [
            f"--train_dir={tmp_path}",
            "--experiment=seats",
            "--device=cpu",
            "--num_policies=2",
            "--train_for_env_steps=20000",
            "--league_snapshot_every_env_steps=0",
            "--serial_mode=True",
        ]
    )
    set_agent_policy_mapping(SeatPerPolicy)
    try:
        _, runner = make_runner(cfg)
        seen = []
        runner.register_episodic_stats_handler(lambda r, ep, p: seen.append((p, ep["true_objective"])))
        assert runner.run() == 0
    finally:
        set_agent_policy_mapping(AgentPolicyMapping)
    assert agent_policy_mapping_class() is AgentPolicyMapping
    per_policy = {p: [o for q, o in seen if q == p] for p in (0, 1)}
    assert len(per_policy[0]) == len(per_policy[1]) > 50, "every game has one agent of each policy"
    # zero-sum: what one seat wins the other loses, game by game, so the two means add up to 1
    assert np.mean(per_policy[0]) + np.mean(per_policy[1]) == pytest.approx(1.0, abs=0.02)
    with pytest.raises(TypeError):
        set_agent_policy_mapping(object)


def test_the_default_mapping_redraws_after_steps_per_draw_and_keeps_an_env_to_one_policy_unless_mixed():
    from types import SimpleNamespace

    def flags(mix: bool):
        return SimpleNamespace(
            num_policies=4, pbt_mix_policies_in_one_env=mix, league_opponents=0, league_opponent_prob=0.0
        )

    env_info = SimpleNamespace(num_agents=2)
    whole_env = AgentPolicyMapping(flags(False), env_info, 0)
    draws = [tuple(whole_env.policies_for_env(env_id, 0, 0)) for env_id in range(200)]
    assert all(a == b for a, b in draws), "without mixing both agents of an env play one policy"
    assert {a for a, _ in draws} == {0, 1, 2, 3}

    mixed = AgentPolicyMapping(flags(True), env_info, 0)
    assert any(a != b for a, b in (mixed.policies_for_env(e, 0, 0) for e in range(200)))
    first = list(mixed.policies_for_env(999, 0, 0))
    held = [list(mixed.policies_for_env(999, episode, steps)) for episode, steps in enumerate(range(100, 1000, 100))]
    assert all(h == first for h in held), "held until steps_per_draw env steps have passed"
    redrawn = {tuple(mixed.policies_for_env(999, 10 + i, 1000 * (i + 1))) for i in range(50)}
    assert len(redrawn) > 1, "drawn anew once steps_per_draw steps have passed"


def test_the_default_mapping_seats_a_frozen_opponent_with_its_probability():
    from types import SimpleNamespace

    def mapping(prob):
        cfg = SimpleNamespace(
            num_policies=2, pbt_mix_policies_in_one_env=True, league_opponents=3, league_opponent_prob=prob
        )
        return AgentPolicyMapping(cfg, SimpleNamespace(num_agents=2), 0)

    always_mapping, never_mapping, sometimes_mapping = mapping(1.0), mapping(0.0), mapping(0.3)
    always = [list(always_mapping.policies_for_env(e, 0, 0)) for e in range(300)]
    assert all(sum(p >= 2 for p in pair) == 1 for pair in always), "one frozen seat per env, the other learns"
    assert {p for pair in always for p in pair if p >= 2} == {2, 3, 4}
    assert {pair.index(max(pair)) for pair in always} == {0, 1}, "either seat"
    never = [list(never_mapping.policies_for_env(e, 0, 0)) for e in range(300)]
    assert all(p < 2 for pair in never for p in pair)
    sometimes = [max(sometimes_mapping.policies_for_env(e, 0, 0)) >= 2 for e in range(1000)]
    assert 0.22 < np.mean(sometimes) < 0.38


def test_frozen_opponents_come_back_by_how_badly_the_population_does_against_them():
    names = ["a", "b", "c"]
    assert snapshot_weights(names, {"a": 1.0, "b": 0.0}, "uniform") == [1.0, 1.0, 1.0]
    assert snapshot_weights(names, {"a": 1.0, "b": 0.0}, "win_rate") == pytest.approx([0.05, 1.05, 1.0])


def test_training_against_frozen_snapshots_keeps_their_score_and_trains_only_the_learner(tmp_path):
    cfg = parse_coin_race_args(
        [
            f"--train_dir={tmp_path}",
            "--experiment=frozen",
            "--device=cpu",
            "--seed=1",
            "--train_for_env_steps=150000",
            "--league_snapshot_every_env_steps=25000",
            "--league_opponents=2",
            "--league_opponent_prob=0.5",
        ]
    )
    _, runner = make_runner(cfg)
    assert runner.run() == 0
    assert len(runner.learners) == 1 and len(runner.inference_workers) == 3  # the opponents only act
    record = json.loads((tmp_path / "frozen" / "league" / "training_games.json").read_text())
    games = {snapshot: sum(by_policy["0"]) for snapshot, by_policy in record["games"].items()}
    assert len(games) >= 3 and sum(games.values()) > 300, games
    first = "policy_00_000000000000.pth"
    wins, draws, losses = record["games"][first]["0"]
    assert (wins + 0.5 * draws) / (wins + draws + losses) > 0.6, record["games"][first]
    assert record["elo"][first] < record["elo"]["policy_0"]
    assert runner.stats.summary["policies"][0]["num_episodes"] > 0 and len(runner.stats.summary["policies"]) == 1


def test_a_frozen_opponent_gets_one_slot_per_agent_not_a_learners_share(tmp_path):
    """Its trajectories go back to its pool as soon as they end: it never needs the learner's queue of batches."""
    cfg = parse_coin_race_args(
        [f"--train_dir={tmp_path}", "--experiment=slots", "--league_snapshot_every_env_steps=25000",
         "--league_opponents=2", "--num_workers=2", "--num_envs_per_worker=4"]
    )  # fmt: skip
    _, runner = make_runner(cfg)
    try:
        layout = runner.layout
        assert layout.slots_per_opponent == layout.total_agents < layout.slots_per_policy
        assert layout.pool_sizes(runner.cfg) == [layout.slots_per_policy, layout.total_agents, layout.total_agents]
        assert runner.shared.buffers.num_slots == layout.slots_per_policy + 2 * layout.total_agents
    finally:
        runner._shutdown()


def test_the_opponent_flags_belong_to_match_alone(tmp_path):
    """enjoy and the league command would parse and ignore them: they refuse them instead."""
    for module in ("sample_factory.enjoy", "sample_factory.league"):
        result = subprocess.run(
            [sys.executable, "-m", module, "--env=coin_race", f"--train_dir={tmp_path}", "--opponent=latest"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 2 and "unrecognized arguments: --opponent=latest" in result.stderr, result.stderr
