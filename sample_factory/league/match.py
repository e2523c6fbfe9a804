"""`python -m sample_factory.match`: a trained policy against a frozen opponent in a two-player game.

    python -m sample_factory.match --env=coin_race --experiment=selfplay --opponent=first --max_num_episodes=200

The experiment's newest checkpoint of `--policy_index` plays `--max_num_episodes` games against
`--opponent`: a league snapshot of `--opponent_policy_index` (`first`, the policy at the start of
training, or `latest`), or the path of any checkpoint of the same model. The two swap seats every
game. A game is won by the player with the higher `true_objective` at its end (Doom: frags), or
the higher return where the env reports none; a draw when equal.
Prints one line, the wins, draws and losses; the exit status is 0, or 1 with a one-line error.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sample_factory.cfg.experiment import SavedConfigError, experiment_dir
from sample_factory.envs.create_env import EnvCreationError, MultiAgentView, numpy_action
from sample_factory.envs.env_utils import UnknownEnvError
from sample_factory.eval import EvalError
from sample_factory.eval.config import NO_LIMIT, EpisodeSettings, eval_cfg, make_eval_env, parse_eval_cli
from sample_factory.eval.policy import (
    LoadedPolicy,
    load_checkpoint_for_eval,
    load_policy_file,
    policy_actions,
    policy_from_checkpoint,
)
from sample_factory.league.games import outcome, points, seat_scores
from sample_factory.utils.checkpoint import league_snapshots
from sample_factory.utils.device import policy_device
from sample_factory.utils.status import ExitStatus

log = logging.getLogger(__name__)


@dataclass
class MatchResult:
    wins: int
    draws: int
    losses: int
    policy_env_steps: int | None
    opponent: Path

    @property
    def games(self) -> int:
        return self.wins + self.draws + self.losses

    @property
    def win_rate(self) -> float:
        return self.wins / max(1, self.games)


DEFAULT_GAMES = 100  # when --max_num_episodes is left at its "no limit" default


def opponent_path(cfg) -> Path:
    """The checkpoint `--opponent` names (a config parsed with `add_match_args`)."""
    choice = cfg.opponent
    if choice in ("first", "latest"):
        policy_id = cfg.opponent_policy_index
        snapshots = league_snapshots(experiment_dir(cfg), policy_id)
        if not snapshots:
            raise EvalError(
                f"policy {policy_id} of {experiment_dir(cfg)} has no league snapshots: train it with"
                " --league_snapshot_every_env_steps=N, or give --opponent=<checkpoint path>"
            )
        return snapshots[0] if choice == "first" else snapshots[-1]
    path = Path(choice).expanduser()
    if not path.is_file():
        raise EvalError(f"--opponent={choice}: neither first, latest nor an existing checkpoint file")
    return path


def open_two_player_env(cfg) -> tuple[object, MultiAgentView]:
    """The env and its per-agent view; raises EnvCreationError, or EvalError (closing the env)
    when it is not a two-player game."""
    env = make_eval_env(cfg)
    view = MultiAgentView(env)
    if view.num_agents != 2:
        env.close()
        raise EvalError(f"{cfg.env} has {view.num_agents} agent(s); a match needs a two-player env")
    return env, view


def play_match(cfg) -> MatchResult:
    """Raises EvalError (and UnknownEnvError, EnvCreationError, SavedConfigError) with one-line messages."""
    cfg, settings = eval_cfg(cfg)
    device = policy_device(cfg)
    state, path = load_checkpoint_for_eval(cfg, device)
    opponent_file = opponent_path(cfg)
    opponent_state = load_policy_file(opponent_file, device, f"the opponent {opponent_file}")
    env, view = open_two_player_env(cfg)
    try:
        spaces = env.observation_space, env.action_space
        policy = policy_from_checkpoint(cfg, state, path, *spaces, device, cfg.policy_index)
        opponent = policy_from_checkpoint(
            cfg, opponent_state, opponent_file, *spaces, device, cfg.opponent_policy_index
        )
        games = settings.max_episodes if settings.max_episodes < NO_LIMIT else DEFAULT_GAMES
        wins, draws, losses = play_games(settings, view, policy, opponent, games)
    finally:
        env.close()
    return MatchResult(wins, draws, losses, policy.env_steps, opponent_file)


@torch.no_grad()
def play_games(
    settings: EpisodeSettings,
    view: MultiAgentView,
    policy: LoadedPolicy,
    opponent: LoadedPolicy,
    games: int,
    quiet=False,
) -> tuple[int, int, int]:
    """(wins, draws, losses) of `policy` in `games` games (league/games.py says who won), seats
    swapped every game; `settings` gives the seed and whether actions are deterministic."""
    deterministic = settings.deterministic
    if settings.seed is not None:
        torch.manual_seed(settings.seed)
    obs_list, _ = view.reset(seed=settings.seed)
    players = [policy, opponent]
    rnn = [torch.zeros(1, p.rnn_state_size, device=p.device) for p in players]
    results = [0, 0, 0]  # wins, draws, losses of `policy`
    returns = np.zeros(2)
    for game in range(games):
        seat = game % 2  # where `policy` sits this game
        seats = [players[seat], players[1 - seat]]  # seats[agent] plays agent
        while True:
            actions = []
            for agent in (0, 1):
                player = 0 if agent == seat else 1
                action, rnn[player] = policy_actions(seats[agent], [obs_list[agent]], rnn[player], deterministic)
                actions.append(numpy_action(seats[agent].action_space, action[0]))
            obs_list, rewards, terminated, truncated, infos = view.step(actions)
            returns += np.asarray(rewards, np.float64)
            if any(terminated) or any(truncated):
                break
        scores = seat_scores(infos, returns)
        mine, theirs = scores[seat], scores[1 - seat]
        results[outcome(points(mine, theirs))] += 1
        if not quiet:
            log.info("Game %d: %.2f to %.2f (%d wins, %d draws, %d losses)", game + 1, mine, theirs, *results)
        returns[:] = 0.0
        rnn = [torch.zeros_like(r) for r in rnn]
    return results[0], results[1], results[2]


def add_match_args(parser):
    g = parser.add_argument_group("match")
    g.add_argument(
        "--opponent",
        type=str,
        default="first",
        help="The opponent: a league snapshot of --opponent_policy_index ('first': at the start of training,"
        " 'latest': the newest) or a checkpoint file's path",
    )
    g.add_argument("--opponent_policy_index", type=int, default=0, help="Whose snapshots --opponent picks from")


def main(argv=None) -> int:
    cfg = parse_eval_cli(argv, add_match_args)
    try:
        result = play_match(cfg)
    except (EvalError, UnknownEnvError, EnvCreationError, SavedConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        return ExitStatus.FAILURE
    trained = f" ({result.policy_env_steps} env steps)" if result.policy_env_steps is not None else ""
    print(
        f"policy {cfg.policy_index}{trained} vs {result.opponent.name}: {result.wins} wins,"
        f" {result.draws} draws, {result.losses} losses in {result.games} games (win rate {result.win_rate:.0%})",
        flush=True,
    )
    return ExitStatus.SUCCESS


if __name__ == "__main__":
    sys.exit(main())
