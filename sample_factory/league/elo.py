"""Elo ratings from game results, by maximum likelihood (Bradley-Terry), shared by the run's league
opponents and the league table command.

Bradley-Terry: player i beats j with probability s_i / (s_i + s_j); the strengths s that make the
results most likely are found by minorization-maximization (Hunter 2004), a draw counting as half a
win. One virtual draw per pair that met keeps a clean sweep finite. On the Elo scale, 400 log10 of
the strength ratio; in each group of players linked by games, the first is rated ANCHOR_ELO.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

ANCHOR_ELO = 1000.0
PRIOR_GAMES = 1.0


def elo_ratings(names: Sequence[str], results: dict[tuple[str, str], Sequence[float]]) -> dict[str, float]:
    """`results[(a, b)] = (wins of a, draws, losses of a)`; pairs with an unknown name are ignored.

    Returns the rating of every player that met someone.
    """
    index = {name: i for i, name in enumerate(names)}
    n = len(names)
    score = [0.0] * n  # wins + half the draws, prior included
    games = [[0.0] * n for _ in range(n)]
    for (a_name, b_name), (wins, draws, losses) in results.items():
        if a_name not in index or b_name not in index or a_name == b_name:
            continue
        a, b = index[a_name], index[b_name]
        total = wins + draws + losses + PRIOR_GAMES
        games[a][b] += total
        games[b][a] += total
        score[a] += wins + 0.5 * (draws + PRIOR_GAMES)
        score[b] += losses + 0.5 * (draws + PRIOR_GAMES)
    ratings = {}
    for group in _connected_groups(games):
        strength = _strengths(group, games, score)
        anchor = strength[group[0]]
        ratings.update({names[i]: ANCHOR_ELO + 400.0 * math.log10(strength[i] / anchor) for i in group})
    return ratings


def _connected_groups(games: list[list[float]]) -> list[list[int]]:
    """Players linked by games, each group in index order; ratings compare only within a group,
    so each is anchored on its own (e.g. `--pairs=first`: each policy's snapshots)."""
    seen, groups = set(), []
    for start in range(len(games)):
        if start in seen or not any(games[start]):
            continue
        group, frontier = [], [start]
        seen.add(start)
        while frontier:
            i = frontier.pop()
            group.append(i)
            for j, g in enumerate(games[i]):
                if g and j not in seen:
                    seen.add(j)
                    frontier.append(j)
        groups.append(sorted(group))
    return groups


def _strengths(group: list[int], games: list[list[float]], score: list[float]) -> dict[int, float]:
    strength = {i: 1.0 for i in group}
    for _ in range(1000):
        new = {
            i: score[i] / sum(games[i][j] / (strength[i] + strength[j]) for j in group if games[i][j]) for i in group
        }
        mean = sum(new.values()) / len(new)
        new = {i: v / mean for i, v in new.items()}
        converged = max(abs(math.log(new[i] / strength[i])) for i in group) < 1e-9
        strength = new
        if converged:
            break
    return strength
