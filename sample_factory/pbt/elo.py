"""Elo ratings from game results, by maximum likelihood (Bradley-Terry), shared by the run's league
opponents and the league table command.

Bradley-Terry: player i beats j with probability s_i / (s_i + s_j); the strengths s that make the
results most likely are found by minorization-maximization (Hunter 2004), a draw counting as half a
win. One virtual draw per pair that met keeps a clean sweep finite. On the Elo scale, 400 log10 of
the strength ratio, anchored so that the first player that met anyone is rated ANCHOR_ELO.
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
    rated = [i for i in range(n) if any(games[i])]
    strength = [1.0] * n
    for _ in range(1000):
        new = list(strength)
        for i in rated:
            new[i] = score[i] / sum(games[i][j] / (strength[i] + strength[j]) for j in rated if games[i][j])
        mean = sum(new[i] for i in rated) / max(1, len(rated))
        new = [s / mean for s in new]
        converged = max((abs(math.log(new[i] / strength[i])) for i in rated), default=0.0) < 1e-9
        strength = new
        if converged:
            break
    anchor = strength[rated[0]] if rated else 1.0
    return {names[i]: ANCHOR_ELO + 400.0 * math.log10(strength[i] / anchor) for i in rated}
