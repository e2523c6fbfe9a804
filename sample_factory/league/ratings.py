"""`python -m sample_factory.league`: the win-rate matrix and Elo ratings of a league of snapshots.

    python -m sample_factory.league --env=coin_race --experiment=selfplay --games_per_pair=20

The players are the experiment's league snapshots (`league/policy_XX_<env steps>.pth`, taken with
`--league_snapshot_every_env_steps`), of every policy. With `--pairs=all` every player meets every
other, with `--pairs=first` each meets only the first snapshot of its policy (the policy at the
start of training: cheap for long games such as Doom). A meeting is `--games_per_pair` games,
seats swapped every game, won as in `sample_factory.match` (`league/games.py`).

Results are kept per pair in `league/results.json`, so a later call plays only the pairs it has
not played (the snapshots taken since). From all results, Elo ratings by maximum likelihood
(Bradley-Terry; a draw is half a win; the first snapshot of policy 0 is rated 1000), written with
the matrix to `league/ratings.json` (`league/elo.py`) and to TensorBoard (`.summary/league`: `elo/pN` and
`win_rate_vs_first/pN` at each snapshot's env steps); `--plot=league.png` draws both against env
steps. Prints the table.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from sample_factory.cfg.experiment import SavedConfigError
from sample_factory.envs.create_env import EnvCreationError
from sample_factory.envs.env_utils import UnknownEnvError
from sample_factory.eval import EvalError
from sample_factory.eval.config import eval_cfg, parse_eval_cli
from sample_factory.eval.policy import LoadedPolicy, load_policy_file, policy_from_checkpoint
from sample_factory.league.elo import elo_ratings
from sample_factory.league.match import open_two_player_env, play_games
from sample_factory.utils.checkpoint import league_snapshots, snapshot_env_steps
from sample_factory.utils.device import policy_device
from sample_factory.utils.experiment_folder import ExperimentFolder, atomic_target, atomic_write_json
from sample_factory.utils.status import ExitStatus

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Player:
    path: Path
    policy_id: int
    env_steps: int

    @property
    def name(self) -> str:
        return f"p{self.policy_id}@{self.env_steps}"


def league_players(exp_dir: Path, num_policies: int) -> list[Player]:
    return [
        Player(path, policy_id, snapshot_env_steps(path))
        for policy_id in range(num_policies)
        for path in league_snapshots(exp_dir, policy_id)
    ]


def pairs_to_play(players: list[Player], mode: str) -> list[tuple[Player, Player]]:
    if mode == "first":
        firsts = {}
        for p in players:
            firsts.setdefault(p.policy_id, p)
        return [(p, firsts[p.policy_id]) for p in players if p != firsts[p.policy_id]]
    return [(a, b) for i, a in enumerate(players) for b in players[i + 1 :]]


def pair_key(a: Player, b: Player) -> str:
    return f"{a.path.name} vs {b.path.name}"


def league_elo(players: list[Player], results: dict[str, list[int]]) -> dict[str, float]:
    """Elo of every player that met someone, keyed by Player.name (`results` keyed by pair_key)."""
    by_file = {p.path.name: p.name for p in players}
    pairs = {tuple(key.split(" vs ")): record for key, record in results.items()}
    return {by_file[f]: elo for f, elo in elo_ratings(list(by_file), pairs).items()}


def win_rate(results: dict[str, list[int]], a: Player, b: Player) -> float | None:
    """a's share of the points against b (a draw is half), or None if they never met."""
    if (key := pair_key(a, b)) in results:
        wins, draws, losses = results[key]
    elif (key := pair_key(b, a)) in results:
        losses, draws, wins = results[key]
    else:
        return None
    games = wins + draws + losses
    return (wins + 0.5 * draws) / games if games else None


def load_results(path: Path) -> dict[str, list[int]]:
    if not path.is_file():
        return {}
    try:
        results = json.loads(path.read_text())
    except ValueError:
        log.warning("%s is unreadable: playing every pair again", path)
        return {}
    return {k: list(v) for k, v in results.items()}


class League:
    """Plays the pairs not played yet, one env and every player's model loaded once."""

    def __init__(self, cfg):
        self.cfg, self.settings = eval_cfg(cfg)
        self.folder = ExperimentFolder.from_cfg(self.cfg)
        self.exp_dir = self.folder.path
        self.players = league_players(self.exp_dir, self.cfg.num_policies)
        if len(self.players) < 2:
            raise EvalError(
                f"{self.exp_dir} has {len(self.players)} league snapshot(s); a league needs two:"
                " train with --league_snapshot_every_env_steps=N"
            )
        self.results = load_results(self.folder.league_results_file)
        self.device = policy_device(self.cfg)
        self._loaded: dict[Path, LoadedPolicy] = {}

    def _policy(self, player: Player, env) -> LoadedPolicy:
        if player.path not in self._loaded:
            state = load_policy_file(player.path, self.device)
            self._loaded[player.path] = policy_from_checkpoint(
                self.cfg, state, player.path, env.observation_space, env.action_space, self.device, player.policy_id
            )
        return self._loaded[player.path]

    def play(self, mode: str, games_per_pair: int) -> int:
        todo = [(a, b) for a, b in pairs_to_play(self.players, mode) if win_rate(self.results, a, b) is None]
        if not todo:
            return 0
        env, view = open_two_player_env(self.cfg)
        try:
            for i, (a, b) in enumerate(todo):
                wins, draws, losses = play_games(
                    self.settings, view, self._policy(a, env), self._policy(b, env), games_per_pair, quiet=True
                )
                self.results[pair_key(a, b)] = [wins, draws, losses]
                atomic_write_json(self.folder.league_results_file, self.results)  # a stopped call keeps its games
                log.info(
                    "%d/%d %s vs %s: %d wins, %d draws, %d losses",
                    i + 1,
                    len(todo),
                    a.name,
                    b.name,
                    wins,
                    draws,
                    losses,
                )
        finally:
            env.close()
        return len(todo)

    def ratings(self) -> dict:
        elo = league_elo(self.players, self.results)
        firsts = {}
        for p in self.players:
            firsts.setdefault(p.policy_id, p)
        return {
            "players": [
                {
                    "name": p.name,
                    "policy_id": p.policy_id,
                    "env_steps": p.env_steps,
                    "snapshot": p.path.name,
                    "elo": elo.get(p.name),
                    "win_rate_vs_first": win_rate(self.results, p, firsts[p.policy_id]),
                }
                for p in self.players
            ],
            "win_rate": {
                a.name: {b.name: win_rate(self.results, a, b) for b in self.players if b != a} for a in self.players
            },
        }


def format_table(ratings: dict) -> str:
    names = [p["name"] for p in ratings["players"]]
    width = max(8, *(len(n) for n in names)) + 2
    header = "".join(f"{n:>{width}}" for n in ["", "Elo", "vs first", *names])
    lines = [header]
    for p in ratings["players"]:
        cells = [p["name"], _num(p["elo"], "{:.0f}"), _num(p["win_rate_vs_first"], "{:.0%}")]
        cells += ["" if b == p["name"] else _num(ratings["win_rate"][p["name"]][b], "{:.0%}") for b in names]
        lines.append("".join(f"{c:>{width}}" for c in cells))
    return "\n".join(lines) + "\n(row's share of the points against the column; a draw is half)"


def _num(value, fmt: str) -> str:
    return "-" if value is None else fmt.format(value)


def write_summaries(folder: ExperimentFolder, ratings: dict):
    """TensorBoard scalars under .summary/league, rewritten whole (older snapshots may be gone)."""
    from tensorboardX import SummaryWriter

    directory = folder.league_summaries_dir
    shutil.rmtree(directory, ignore_errors=True)
    writer = SummaryWriter(str(directory))
    for p in sorted(ratings["players"], key=lambda p: p["env_steps"]):
        if p["elo"] is not None:
            writer.add_scalar(f"elo/p{p['policy_id']}", p["elo"], p["env_steps"])
        if p["win_rate_vs_first"] is not None:
            writer.add_scalar(f"win_rate_vs_first/p{p['policy_id']}", p["win_rate_vs_first"], p["env_steps"])
    writer.close()


def plot_league(ratings: dict, out_path: Path, title: str) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax_elo, ax_win = fig.subplots(1, 2, sharex=True)
    for policy_id in sorted({p["policy_id"] for p in ratings["players"]}):
        mine = sorted((p for p in ratings["players"] if p["policy_id"] == policy_id), key=lambda p: p["env_steps"])
        rated = [p for p in mine if p["elo"] is not None]
        ax_elo.plot([p["env_steps"] for p in rated], [p["elo"] for p in rated], marker="o", label=f"policy {policy_id}")
        met = [p for p in mine if p["win_rate_vs_first"] is not None]
        ax_win.plot([p["env_steps"] for p in met], [p["win_rate_vs_first"] for p in met], marker="o")
    ax_elo.set_title("Elo of each snapshot")
    ax_win.set_title("Win rate against the policy's first snapshot")
    ax_win.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax_win.set_ylim(-0.03, 1.03)  # markers at 0 and 1 drawn whole
    for ax in (ax_elo, ax_win):
        ax.set_xlabel("env steps")
        ax.grid(alpha=0.3)
    ax_elo.legend(loc="best", fontsize="small")
    fig.suptitle(title)
    out_path = Path(out_path)
    with atomic_target(out_path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return out_path


def add_league_args(parser):
    g = parser.add_argument_group("league table")
    g.add_argument(
        "--pairs",
        type=str,
        default="all",
        choices=["all", "first"],
        help="Every snapshot meets every other (all) or only its policy's first (first)",
    )
    g.add_argument("--games_per_pair", type=int, default=20, help="Games of one meeting")
    g.add_argument("--plot", type=str, default=None, help="Draw Elo and win rates to this PNG")


def main(argv=None) -> int:
    cfg = parse_eval_cli(argv, add_league_args)
    if cfg.games_per_pair < 1:
        print(f"error: --games_per_pair={cfg.games_per_pair}: at least 1", file=sys.stderr)
        return ExitStatus.BAD_INPUT
    try:
        league = League(cfg)
        played = league.play(cfg.pairs, cfg.games_per_pair)
        ratings = league.ratings()
        atomic_write_json(league.folder.ratings_file, ratings)
        write_summaries(league.folder, ratings)
        plot = plot_league(ratings, cfg.plot, cfg.experiment) if cfg.plot else None
    except (EvalError, UnknownEnvError, EnvCreationError, SavedConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        return ExitStatus.FAILURE
    except ImportError as e:
        print(f"error: {e.name or e} is needed for --plot: pip install matplotlib", file=sys.stderr)
        return ExitStatus.BAD_INPUT
    print(f"{len(league.players)} snapshots, {played} pair(s) played now, {len(league.results)} in all")
    print(format_table(ratings))
    if plot:
        print(plot)
    return ExitStatus.SUCCESS


if __name__ == "__main__":
    sys.exit(main())
