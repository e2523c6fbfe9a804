"""The config an evaluation runs with, and the settings of its episodes derived from it.

`eval_cfg` merges the experiment's saved config with the flags typed now (an evaluation command's
config, parsed with `parse_sf_args(evaluation=True)`, so every eval flag exists) into a new config;
`EpisodeSettings` is what playing episodes needs, nothing of it a flag's raw value: evaluation
during training builds one from its own flags.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sample_factory.cfg.experiment import experiment_dir, merge_with_saved_cfg
from sample_factory.envs.create_env import EnvCreationError, env_config_for, make_env
from sample_factory.envs.env_utils import UnknownEnvError
from sample_factory.eval import EvalError
from sample_factory.utils.attr_dict import AttrDict
from sample_factory.utils.experiment_folder import ExperimentFolder
from sample_factory.utils.logging_setup import setup_logging

log = logging.getLogger(__name__)

NO_LIMIT = int(1e9)  # the default of --max_num_episodes and --max_num_frames


@dataclass(frozen=True)
class EpisodeSettings:
    max_episodes: int = NO_LIMIT  # stop once every agent has finished this many
    max_env_frames: int = NO_LIMIT  # stop after this many env frames (env steps x env_frameskip)
    env_frameskip: int = 1  # env frames per env step of the env played
    action_repeat: int = 1  # env steps per policy action (keeps the training rate at a smaller frameskip)
    deterministic: bool = False  # the most likely action instead of a sample
    seed: int | None = None  # torch's seed and the env's reset seed (None: random)
    record_episode_statistics: bool = False  # RecordEpisodeStatistics: a game is over when its info says so
    fps: int = 0  # frames shown per second when rendering to a window (0: as fast as possible)


def eval_cfg(cfg) -> tuple[AttrDict, EpisodeSettings]:
    """The saved config of an existing experiment with the flags typed now on top, and the settings
    of its episodes; raises EvalError. `cfg` is an eval config and is left unchanged.

    In the new config `env_frameskip` is the eval env's frameskip (`--eval_env_frameskip`); where
    that is smaller than the training frameskip each action is repeated to keep the training rate.
    """
    folder = ExperimentFolder(experiment_dir(cfg))
    if not folder.path.is_dir():
        raise EvalError(f"experiment folder {folder.path} does not exist (check --experiment and --train_dir)")
    if not folder.config_file.is_file():
        log.warning("%s has no %s; using the flags typed now as the whole config", folder.path, folder.config_file.name)
    cfg = AttrDict({**merge_with_saved_cfg(cfg)})
    if not 0 <= cfg.policy_index < cfg.num_policies:
        raise EvalError(
            f"--policy_index={cfg.policy_index} is out of range: the experiment has {cfg.num_policies} policies"
            f" (0..{cfg.num_policies - 1})"
        )
    eval_frameskip, action_repeat = _frameskips(cfg.env_frameskip, cfg.eval_env_frameskip)
    cfg.env_frameskip = eval_frameskip
    settings = EpisodeSettings(
        max_episodes=cfg.max_num_episodes,
        max_env_frames=cfg.max_num_frames,
        env_frameskip=eval_frameskip,
        action_repeat=action_repeat,
        deterministic=bool(cfg.eval_deterministic),
        seed=cfg.seed,
        record_episode_statistics=bool(cfg.use_record_episode_statistics),
        fps=cfg.fps,
    )
    return cfg, settings


def _frameskips(train_frameskip: int, eval_frameskip: int | None) -> tuple[int, int]:
    """(frameskip of the eval env, action repeat).

    With `--eval_env_frameskip` smaller than the training frameskip (smooth videos of envs that
    skip frames themselves), each action is repeated so the policy acts at its training rate.
    """
    train_frameskip = max(1, int(train_frameskip))
    if eval_frameskip is None:
        return train_frameskip, 1
    eval_frameskip = max(1, int(eval_frameskip))
    return eval_frameskip, max(1, train_frameskip // eval_frameskip)


def make_eval_env(cfg, render_mode: str | None = None):
    """One env of the experiment (env 0 of worker 0); raises UnknownEnvError or EnvCreationError."""
    try:
        return make_env(cfg, env_config_for(0, 0, 0), render_mode=render_mode)
    except UnknownEnvError:
        raise
    except Exception as e:
        raise EnvCreationError(f"could not create the env {cfg.env!r}: {type(e).__name__}: {e}") from e


def parse_eval_cli(argv=None, add_args=None) -> AttrDict:
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
