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
from sample_factory.enjoy import (
    EvalError,
    LoadedPolicy,
    _policy_actions,
    eval_cfg,
    load_checkpoint_for_eval,
    policy_from_checkpoint,
)
from sample_factory.envs.create_env import (
    EnvCreationError,
    MultiAgentView,
    env_config_for,
    make_env,
    numpy_action,
)
from sample_factory.envs.env_utils import UnknownEnvError
from sample_factory.utils.checkpoint import league_snapshots
from sample_factory.utils.device import policy_device
from sample_factory.utils.logging_setup import setup_logging

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


def opponent_path(cfg) -> Path:
    choice = cfg.get("opponent") or "first"
    if choice in ("first", "latest"):
        policy_id = cfg.get("opponent_policy_index", 0) or 0
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
    try:
        env = make_env(cfg, env_config_for(0, 0, 0))
    except UnknownEnvError:
        raise
    except Exception as e:
        raise EnvCreationError(f"could not create the env {cfg.env!r}: {type(e).__name__}: {e}") from e
    view = MultiAgentView(env)
    if view.num_agents != 2:
        env.close()
        raise EvalError(f"{cfg.env} has {view.num_agents} agent(s); a match needs a two-player env")
    return env, view


def parse_eval_cli(argv=None, add_args=None):
    """Logging, then the config of an evaluation command: the eval flags, the env family's, and
    those `add_args(parser)` adds (a command's own)."""
    from sample_factory.cfg.arguments import parse_full_cfg, parse_sf_args
    from sample_factory.envs.env_families import setup_env_family

    setup_logging()
    parser, partial_cfg = parse_sf_args(argv, evaluation=True)
    if add_args is not None:
        add_args(parser)
    setup_env_family(parser, partial_cfg)
    return parse_full_cfg(parser, argv)


def play_match(cfg) -> MatchResult:
    """Raises EvalError (and UnknownEnvError, EnvCreationError, SavedConfigError) with one-line messages."""
    cfg = eval_cfg(cfg)
    device = policy_device(cfg)
    state, path = load_checkpoint_for_eval(cfg, device)
    opponent_file = opponent_path(cfg)
    try:
        opponent_state = torch.load(opponent_file, map_location=device, weights_only=True)
    except Exception as e:
        raise EvalError(f"could not load the opponent {opponent_file}: {type(e).__name__}: {e}") from None
    env, view = open_two_player_env(cfg)
    try:
        policy = policy_from_checkpoint(cfg, state, path, env.observation_space, env.action_space, device)
        opponent = policy_from_checkpoint(
            cfg, opponent_state, opponent_file, env.observation_space, env.action_space, device
        )
        wins, draws, losses = play_games(cfg, view, policy, opponent)
    finally:
        env.close()
    return MatchResult(wins, draws, losses, policy.env_steps, opponent_file)


@torch.no_grad()
def play_games(
    cfg, view: MultiAgentView, policy: LoadedPolicy, opponent: LoadedPolicy, games: int | None = None, quiet=False
) -> tuple[int, int, int]:
    """(wins, draws, losses) of `policy` in `games` games (default: --max_num_episodes, else 100)."""
    if games is None:
        games = cfg.get("max_num_episodes", 100)
        games = 100 if games is None or games >= int(1e9) else games  # enjoy's "no limit" default
    deterministic = bool(cfg.get("eval_deterministic"))
    if cfg.get("seed") is not None:
        torch.manual_seed(cfg.seed)
    obs_list, _ = view.reset(seed=cfg.get("seed"))
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
                action, rnn[player] = _policy_actions(seats[agent], [obs_list[agent]], rnn[player], deterministic)
                actions.append(numpy_action(seats[agent].action_space, action[0]))
            obs_list, rewards, terminated, truncated, infos = view.step(actions)
            returns += np.asarray(rewards, np.float64)
            if any(terminated) or any(truncated):
                break
        # the env's own score where it reports one (Doom: frags), not the shaped return
        scores = [info.get("true_objective") for info in infos]
        if any(score is None for score in scores):
            scores = returns
        mine, theirs = scores[seat], scores[1 - seat]
        results[0 if mine > theirs else 1 if mine == theirs else 2] += 1
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
        return 1
    trained = f" ({result.policy_env_steps} env steps)" if result.policy_env_steps is not None else ""
    print(
        f"policy {cfg.get('policy_index', 0) or 0}{trained} vs {result.opponent.name}: {result.wins} wins,"
        f" {result.draws} draws, {result.losses} losses in {result.games} games (win rate {result.win_rate:.0%})",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
