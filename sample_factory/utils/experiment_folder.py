"""Every file and folder of an experiment (`<train_dir>/<experiment>`), named in one place, and
the one atomic write that every persistent file of the project goes through.

The layout (sample-factory 2.x's names, where 2.x has the file):

    config.json                        the run's config
    sf_log.txt                         the log (--log_to_file)
    env_info.pkl                       the env's spaces (--use_env_info_cache)
    progress.csv, summary.json         one row per report; how the run ended
    .summary/<policy>/                 TensorBoard (.summary/league: the league table's)
    checkpoint_p<policy>/              checkpoint_<train step, 9 digits>_<env steps>.pth,
                                       best_<train step>_<env steps>_<metric>_<value>.pth,
                                       milestones/, <name>.corrupt (one that did not load)
    policy_XX_cfg.json                 a policy's hyper-parameters (populations)
    policy_XX_reward_shaping.json      its reward shaping
    policy_XX_pbt.json                 its history of PBT updates
    pbt/pXX_to_pYY.pth                 weights on their way from one policy to another
    league/                            policy_XX_<env steps, 12 digits>.pth snapshots,
                                       training_games.json, results.json, ratings.json
    replay.mp4, policy_p<policy>.onnx  what enjoy and export_onnx write by default
    README.md                          the model card pushed to the Hugging Face Hub

A write is atomic: the content goes to `<name>.tmp` in the same folder, which then replaces the
file, so a reader or a crash sees the old file or the new one, never half of one. The temporary
name is fixed (one writer per file at a time): a write killed midway leaves it behind, the next
write of that file overwrites it, and `remove_stale_temporaries` clears a folder of them. Where
several processes may write the same file at once, `unique=True` gives each write a temporary
name of its own (`.<name>.<random>.tmp`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

CONFIG_FILE = "config.json"
LOG_FILE = "sf_log.txt"
ENV_INFO_CACHE = "env_info.pkl"
PROGRESS_FILE = "progress.csv"
SUMMARY_FILE = "summary.json"
SUMMARIES_DIR = ".summary"
CHECKPOINT_DIR_PREFIX = "checkpoint_p"
MILESTONES_DIR = "milestones"
CORRUPT_SUFFIX = ".corrupt"
PBT_DIR = "pbt"
LEAGUE_DIR = "league"
LEAGUE_SUMMARIES = "league"  # .summary/league
TRAINING_GAMES_FILE = "training_games.json"
LEAGUE_RESULTS_FILE = "results.json"
RATINGS_FILE = "ratings.json"
DEFAULT_VIDEO_NAME = "replay.mp4"
MODEL_CARD = "README.md"
TEMPORARY_SUFFIX = ".tmp"

CHECKPOINT_RE = re.compile(r"^checkpoint_(\d+)_(\d+)\.pth$")
BEST_CHECKPOINT_RE = re.compile(r"^best_(\d+)_(\d+)_.*\.pth$")
LEAGUE_SNAPSHOT_RE = re.compile(r"^policy_(\d+)_(\d+)\.pth$")


def checkpoint_name(train_step: int, env_steps: int) -> str:
    return f"checkpoint_{train_step:09d}_{env_steps}.pth"


def best_checkpoint_name(train_step: int, env_steps: int, metric: str, value: float) -> str:
    return f"best_{train_step:09d}_{env_steps}_{metric}_{value:.3f}.pth"


def best_metric_re(metric: str) -> re.Pattern:
    """Matches the best checkpoints saved for `metric`; group 1 is the value."""
    return re.compile(rf"^best_\d+_\d+_{re.escape(metric)}_(.+)\.pth$")


def league_snapshot_name(policy_id: int, env_steps: int) -> str:
    return f"policy_{policy_id:02d}_{env_steps:012d}.pth"


class ExperimentFolder:
    """The paths of one experiment's files; nothing is created until something is written."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    @classmethod
    def at(cls, train_dir: str | os.PathLike, experiment: str) -> ExperimentFolder:
        """`<train_dir>/<experiment>`, the folder of `--train_dir` and `--experiment`."""
        return cls(Path(train_dir) / experiment)

    @classmethod
    def from_cfg(cls, cfg) -> ExperimentFolder:
        return cls.at(cfg.train_dir, cfg.experiment)

    def __fspath__(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:
        return f"ExperimentFolder({str(self.path)!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, ExperimentFolder) and other.path == self.path

    def __hash__(self) -> int:
        return hash(self.path)

    # --- the run as a whole --------------------------------------------------------------------

    @property
    def config_file(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def log_file(self) -> Path:
        return self.path / LOG_FILE

    @property
    def env_info_cache(self) -> Path:
        return self.path / ENV_INFO_CACHE

    @property
    def progress_file(self) -> Path:
        return self.path / PROGRESS_FILE

    @property
    def summary_file(self) -> Path:
        return self.path / SUMMARY_FILE

    @property
    def summaries_dir(self) -> Path:
        return self.path / SUMMARIES_DIR

    def policy_summaries_dir(self, policy_id: int) -> Path:
        return self.summaries_dir / str(policy_id)

    @property
    def league_summaries_dir(self) -> Path:
        return self.summaries_dir / LEAGUE_SUMMARIES

    @property
    def model_card(self) -> Path:
        return self.path / MODEL_CARD

    @property
    def default_video(self) -> Path:
        return self.path / DEFAULT_VIDEO_NAME

    def default_onnx(self, policy_id: int) -> Path:
        return self.path / f"policy_p{policy_id}.onnx"

    # --- checkpoints ---------------------------------------------------------------------------

    def checkpoint_dir(self, policy_id: int) -> Path:
        return self.path / f"{CHECKPOINT_DIR_PREFIX}{policy_id}"

    def checkpoint_dirs(self) -> list[Path]:
        """Every `checkpoint_p*` folder there is, by policy id."""
        if not self.path.is_dir():
            return []
        found = [p for p in self.path.glob(f"{CHECKPOINT_DIR_PREFIX}*") if p.is_dir()]
        return sorted(found, key=lambda p: (len(p.name), p.name))

    def checkpoint_file(self, policy_id: int, train_step: int, env_steps: int) -> Path:
        return self.checkpoint_dir(policy_id) / checkpoint_name(train_step, env_steps)

    def best_checkpoint_file(self, policy_id: int, train_step: int, env_steps: int, metric: str, value: float) -> Path:
        return self.checkpoint_dir(policy_id) / best_checkpoint_name(train_step, env_steps, metric, value)

    def milestones_dir(self, policy_id: int) -> Path:
        return self.checkpoint_dir(policy_id) / MILESTONES_DIR

    # --- populations ---------------------------------------------------------------------------

    def policy_params_file(self, policy_id: int) -> Path:
        return self.path / f"policy_{policy_id:02d}_cfg.json"

    def reward_shaping_file(self, policy_id: int) -> Path:
        return self.path / f"policy_{policy_id:02d}_reward_shaping.json"

    def pbt_history_file(self, policy_id: int) -> Path:
        return self.path / f"policy_{policy_id:02d}_pbt.json"

    @property
    def pbt_dir(self) -> Path:
        return self.path / PBT_DIR

    def pbt_transfer_file(self, source_policy: int, target_policy: int) -> Path:
        return self.pbt_dir / f"p{source_policy:02d}_to_p{target_policy:02d}.pth"

    # --- the league ----------------------------------------------------------------------------

    @property
    def league_dir(self) -> Path:
        return self.path / LEAGUE_DIR

    def league_snapshot_file(self, policy_id: int, env_steps: int) -> Path:
        return self.league_dir / league_snapshot_name(policy_id, env_steps)

    @property
    def training_games_file(self) -> Path:
        return self.league_dir / TRAINING_GAMES_FILE

    @property
    def league_results_file(self) -> Path:
        return self.league_dir / LEAGUE_RESULTS_FILE

    @property
    def ratings_file(self) -> Path:
        return self.league_dir / RATINGS_FILE


# --- the one atomic write --------------------------------------------------------------------


def temporary_path(path: str | os.PathLike, keep_suffix: bool = False) -> Path:
    """Where `path` is written before it replaces the file: `<name>.tmp` beside it, or with
    `keep_suffix` `<stem>.tmp<suffix>` for writers that pick the format from the suffix (video, ONNX)."""
    path = Path(path)
    if keep_suffix and path.suffix:
        return path.with_name(f"{path.stem}{TEMPORARY_SUFFIX}{path.suffix}")
    return path.with_name(path.name + TEMPORARY_SUFFIX)


@contextlib.contextmanager
def atomic_target(
    path: str | os.PathLike, keep_suffix: bool = False, fsync: bool = False, unique: bool = False
) -> Iterator[Path]:
    """A temporary path for a writer that wants a file name (matplotlib, OpenCV, ONNX); when the
    block ends without an error it replaces `path`, else it is removed and the error propagates."""
    path = Path(path)
    tmp = temporary_path(path, keep_suffix)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if unique:
            fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMPORARY_SUFFIX)
            os.close(fd)
            tmp = Path(name)
        yield tmp
        if fsync:
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise


def atomic_write(
    path: str | os.PathLike,
    content: bytes | Callable[[IO[bytes]], object],
    fsync: bool = False,
    unique: bool = False,
) -> Path:
    """Writes `content` (bytes, or a function that writes to the binary file it is given) to `path`
    atomically; `fsync` makes the data durable before the rename (checkpoints). Any failure (a full
    disk: OSError ENOSPC, or whatever the write function raises) propagates after the temporary
    file is removed; the previous file is untouched."""
    with atomic_target(path, unique=unique) as tmp, open(tmp, "wb") as f:
        if callable(content):
            content(f)
        else:
            f.write(content)
        f.flush()  # a full disk fails here at the latest, inside the block, not at close
        if fsync:
            os.fsync(f.fileno())
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str, fsync: bool = False) -> Path:
    return atomic_write(path, text.encode("utf-8"), fsync)


def atomic_write_json(path: str | os.PathLike, obj, sort_keys: bool = True, fsync: bool = False) -> Path:
    """`obj` as indented JSON (values JSON cannot hold are written as their str)."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=sort_keys, default=str), fsync)


def remove_stale_temporaries(directory: str | os.PathLike) -> list[Path]:
    """Deletes the temporary files that killed writes left in `directory` (call it when no write
    is in flight, e.g. when a run starts); returns what was removed. Earlier versions named them
    `.<name>.<random>.tmp`; those go too."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    stale = [p for p in directory.glob(f"*{TEMPORARY_SUFFIX}") if p.is_file() or p.is_symlink()]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale
