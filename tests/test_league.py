"""The league: who meets whom, win rates both ways, Elo by maximum likelihood, and who won a game."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sample_factory.league.games import pair_games, score_league_games, seat_scores
from sample_factory.league.ratings import Player, format_table, league_elo, pair_key, pairs_to_play, win_rate


def players(*specs) -> list[Player]:
    return [Player(Path(f"policy_{p:02d}_{s:012d}.pth"), p, s) for p, s in specs]


def test_all_pairs_meet_once_and_first_pairs_meet_their_policys_first_snapshot():
    league = players((0, 0), (0, 100), (0, 200), (1, 0), (1, 100))
    assert len(pairs_to_play(league, "all")) == 10
    first = pairs_to_play(league, "first")
    assert [(a.name, b.name) for a, b in first] == [("p0@100", "p0@0"), ("p0@200", "p0@0"), ("p1@100", "p1@0")]


def test_win_rate_reads_a_pair_from_either_side_and_a_draw_is_half():
    a, b, c = players((0, 0), (0, 1), (0, 2))
    results = {pair_key(a, b): [6, 2, 2]}
    assert win_rate(results, a, b) == pytest.approx(0.7)
    assert win_rate(results, b, a) == pytest.approx(0.3)
    assert win_rate(results, a, c) is None


def test_elo_orders_players_by_strength_anchored_at_the_first():
    a, b, c = players((0, 0), (0, 1), (0, 2))
    results = {pair_key(a, b): [2, 0, 8], pair_key(b, c): [2, 0, 8], pair_key(a, c): [0, 0, 10]}
    elo = league_elo([a, b, c], results)
    assert elo[a.name] == pytest.approx(1000.0)
    assert elo[a.name] < elo[b.name] < elo[c.name]
    # Equal records give equal ratings; a clean sweep stays finite (the prior's virtual draw).
    even = league_elo([a, b], {pair_key(a, b): [5, 0, 5]})
    assert even[b.name] == pytest.approx(1000.0, abs=1e-6)
    sweep = league_elo([a, b], {pair_key(a, b): [0, 0, 20]})
    assert 1300 < sweep[b.name] < 2000
    # Bradley-Terry: with p = 0.8 expected, the gap is 400 * log10(4) = 241 Elo.
    exact = league_elo([a, b], {pair_key(a, b): [2000, 0, 8000]})
    assert exact[b.name] - exact[a.name] == pytest.approx(240.8, abs=1.0)


def test_results_of_deleted_snapshots_are_ignored_and_unplayed_players_unrated():
    a, b, c = players((0, 0), (0, 1), (0, 2))
    results = {pair_key(a, b): [3, 0, 7], "policy_00_000000000099.pth vs " + a.path.name: [9, 0, 1]}
    elo = league_elo([a, b, c], results)
    assert set(elo) == {a.name, b.name}


def test_table_has_every_player_and_its_row_against_each_column():
    a, b = players((0, 0), (0, 1))
    ratings = {
        "players": [
            {"name": a.name, "elo": 1000.0, "win_rate_vs_first": None},
            {"name": b.name, "elo": 1100.0, "win_rate_vs_first": 0.75},
        ],
        "win_rate": {a.name: {b.name: 0.25}, b.name: {a.name: 0.75}},
    }
    lines = format_table(ratings).splitlines()
    assert lines[0].split() == ["Elo", "vs", "first", a.name, b.name]
    assert lines[1].split() == [a.name, "1000", "-", "25%"]
    assert lines[2].split() == [b.name, "1100", "75%", "75%"]


def test_players_never_linked_by_games_are_rated_each_against_their_own_first():
    a0, a1, b0, b1 = players((0, 0), (0, 1), (1, 0), (1, 1))
    results = {pair_key(a1, a0): [3, 0, 1], pair_key(b1, b0): [3, 0, 1]}
    elo = league_elo([a0, a1, b0, b1], results)
    assert elo[a0.name] == pytest.approx(1000.0) and elo[b0.name] == pytest.approx(1000.0)
    assert elo[a1.name] == pytest.approx(elo[b1.name]) and elo[a1.name] > 1000.0


def test_league_games_score_every_learner_against_every_frozen_seat_of_an_env_that_ended():
    # Two 4-seat envs: seats 0-3 (learners 0 and 1, frozen 2 and 3), seats 4-7 (one learner, three frozen).
    policy_of_agent = np.array([0, 1, 2, 3, 0, 2, 2, 3])
    scores = {0: 5.0, 1: 1.0, 2: 3.0, 3: 1.0, 4: 2.0, 5: 2.0, 6: 9.0, 7: 0.0}
    games = pair_games(policy_of_agent, scores, agents_per_env=4, num_learning=2)
    assert games == [
        (0, 2, 1.0),
        (0, 3, 1.0),
        (1, 2, 0.0),
        (1, 3, 0.5),  # fmt: skip
        (0, 2, 0.5),
        (0, 2, 0.0),
        (0, 3, 1.0),
    ]
    duel = pair_games(np.array([0, 1, 1, 0]), {0: 1.0, 1: 0.0, 2: 4.0, 3: 4.0}, 2, num_learning=1)
    assert duel == [(0, 1, 1.0), (0, 1, 0.5)], "a duel is one game per env"
    assert pair_games(np.array([0, 0]), {0: 1.0, 1: 2.0}, 2, num_learning=1) == [], "self-play is no league game"


def test_a_game_is_scored_by_true_objective_only_where_every_seat_reports_one():
    assert seat_scores([{"true_objective": 3}, {"true_objective": 5}], [9.0, 1.0]) == [3.0, 5.0]
    assert seat_scores([{"true_objective": 3}, {}], [9.0, 1.0]) == [9.0, 1.0], "one seat without: the returns"


def test_league_games_are_scored_only_in_envs_where_every_seat_ended():
    # Two duels: env 0 (agents 0, 1) ended for both seats, env 1 (agents 2, 3) only for agent 2.
    policy_of_agent = np.array([0, 1, 0, 1])
    infos = {0: {"true_objective": 2.0}, 1: {"true_objective": 1.0}, 2: {"true_objective": 0.0}}
    returns = np.array([-5.0, 5.0, 0.0, 0.0])
    games = score_league_games(policy_of_agent, np.array([0, 1, 2]), infos, returns, 2, num_learning=1)
    assert games == [(0, 1, 1.0)], "the true objective decides, not the return; env 1 is still playing"
    no_objective = score_league_games(policy_of_agent, np.array([0, 1]), {0: None}, returns, 2, num_learning=1)
    assert no_objective == [(0, 1, 0.0)], "without a true objective the returns decide"
    assert score_league_games(np.array([0]), np.array([0]), {}, np.zeros(1), 1, num_learning=1) == []
