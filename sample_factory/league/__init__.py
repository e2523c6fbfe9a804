"""The league: snapshots of the learning policies, frozen opponents that play them in training, the
scoring of games, Elo ratings, and the match and league commands.

    snapshots.py   the experiment's snapshots and which one a frozen opponent plays next
    games.py       who won a game, and the league games of envs that just ended (the rollout worker's)
    elo.py         Elo ratings from game results (Bradley-Terry)
    opponents.py   LeagueOpponents, the frozen opponents of a training run (on the runner's loop)
    match.py       `python -m sample_factory.match`: a policy against one opponent
    ratings.py     `python -m sample_factory.league`: the win-rate matrix and Elo of every snapshot

Nothing is imported here: the rollout worker imports `league.games` without the commands' weight.
"""
