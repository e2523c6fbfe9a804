"""Who won a game, the same rule in training (games against frozen opponents) and in the match and
league commands.

A seat's score is the env's `true_objective` at the end of the game (Doom: frags) when every seat
of the env reports one, else its return. The higher score wins; equal scores are a draw. A win is
1 point, a draw 0.5, a loss 0. Records are `[wins, draws, losses]`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

WIN, DRAW, LOSS = 0, 1, 2  # indices into a [wins, draws, losses] record


def seat_scores(infos: Sequence[Mapping], returns: Sequence[float]) -> list[float]:
    """The scores of one env's seats at the end of a game, from their last infos and their returns."""
    if all("true_objective" in info for info in infos):
        return [float(info["true_objective"]) for info in infos]
    return [float(r) for r in returns]


def points(mine: float, theirs: float) -> float:
    return 1.0 if mine > theirs else 0.5 if mine == theirs else 0.0


def outcome(points_scored: float) -> int:
    """WIN, DRAW or LOSS: where a game's points go in a record."""
    return WIN if points_scored == 1.0 else DRAW if points_scored == 0.5 else LOSS


def pair_games(
    policy_of_agent: np.ndarray, scores: Mapping[int, float], agents_per_env: int, num_learning: int
) -> list[tuple[int, int, float]]:
    """(learning policy, frozen opponent, points) for each pair of a learning seat and a frozen seat in an env
    whose game just ended (every seat of the env in `scores`): a duel is one game; a free-for-all of N seats
    one per such pair. Policies below `num_learning` learn; the others are frozen opponents."""
    games = []
    for env_first in sorted({a - a % agents_per_env for a in scores}):
        seats = range(env_first, env_first + agents_per_env)
        policies = {a: int(policy_of_agent[a]) for a in seats}
        for mine in (a for a in seats if policies[a] < num_learning):
            for theirs in (a for a in seats if policies[a] >= num_learning):
                games.append((policies[mine], policies[theirs], points(scores[mine], scores[theirs])))
    return games


def score_league_games(
    policy_of_agent: np.ndarray,
    ended: Sequence[int],
    episode_infos: Mapping[int, Mapping | None],
    episode_return: np.ndarray,
    agents_per_env: int,
    num_learning: int,
) -> list[tuple[int, int, float]]:
    """The league games among the agents whose episodes just `ended`: (learning policy, frozen opponent,
    points), scored in each env where every seat ended (a multi-agent env ends its game for all seats).

    `episode_infos[agent]`: the agent's last info (may be missing); `episode_return[agent]`: its return.
    """
    if agents_per_env < 2 or not len(ended):
        return []
    ended_set = {int(a) for a in ended}
    scores = {}
    for env_first in sorted({a - a % agents_per_env for a in ended_set}):
        seats = range(env_first, env_first + agents_per_env)
        if not all(a in ended_set for a in seats):
            continue
        infos = [episode_infos.get(a) or {} for a in seats]
        scores.update(zip(seats, seat_scores(infos, [episode_return[a] for a in seats])))
    return pair_games(policy_of_agent, scores, agents_per_env, num_learning)
