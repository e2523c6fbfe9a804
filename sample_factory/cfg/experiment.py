"""Where an experiment lives on disk, and its saved config."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from sample_factory.utils.attr_dict import AttrDict
from sample_factory.utils.experiment_folder import CONFIG_FILE, ExperimentFolder, atomic_write_json  # noqa: F401

log = logging.getLogger(__name__)

# The keys of a cfg that are not flags. `parse_full_cfg` sets them; they describe this invocation,
# so a resumed run takes them from its own command line, never from the saved config.
# - cli_args: the flags typed on the command line, {name: value}. sample-factory 2.x's
#   parse_full_cfg sets it and users' scripts read it; typed flags override a saved config.
# - command_line: the arguments as typed, joined by spaces (2.x's too).
# - script_defaults: the flags whose default the script changed with parser.set_defaults;
#   --auto_tune leaves them as the script chose.
INVOCATION_KEYS = ("cli_args", "command_line", "script_defaults")


def experiment_dir(cfg) -> Path:
    return ExperimentFolder.from_cfg(cfg).path


def save_cfg(cfg, exp_dir: Path):
    atomic_write_json(ExperimentFolder(exp_dir).config_file, dict(cfg))


class SavedConfigError(ValueError):
    """The experiment's config.json cannot be read; the message names the file."""


def load_saved_cfg(exp_dir: Path) -> AttrDict | None:
    """The config.json as saved, which may lack flags (an earlier version's, or 2.x's): only
    `merge_with_saved_cfg` makes a cfg of it."""
    path = ExperimentFolder(exp_dir).config_file
    if not path.is_file():
        return None
    try:
        saved = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SavedConfigError(
            f"{path} is not a valid config file ({type(e).__name__}: {e}); restore it, delete it to resume"
            " with the flags typed now, or use --restart_behavior=restart"
        ) from None
    if not isinstance(saved, dict):
        raise SavedConfigError(f"{path} holds {type(saved).__name__}, not a config (a JSON object)")
    return AttrDict(saved)


# Saved configs of earlier versions hold these old defaults, which never did anything and are
# refused now when chosen: a resumed run that did not type them takes today's default instead.
_RETIRED_DEFAULTS = {"decorrelate_envs_on_one_worker": True, "env_gpu_observations": True}


def merge_with_saved_cfg(cfg) -> AttrDict:
    """A resumed (or evaluated) experiment keeps its saved config; only flags typed now override it.

    `cfg` is the full config parsed now. This is where a config saved by an earlier version or by
    sample-factory 2.x is filled in, once: every flag it lacks (added since, evaluation flags, an
    env family's) takes its value in `cfg`, the parser's default unless typed, so past this point
    every flag is there and the code reads it directly.
    """
    saved = load_saved_cfg(experiment_dir(cfg))
    if saved is None:
        return cfg
    typed = cfg.cli_args
    overrides = {k: v for k, v in typed.items() if saved.get(k) != v}
    merged = AttrDict({**cfg, **saved, **overrides})
    for key, old_default in _RETIRED_DEFAULTS.items():
        if key not in typed and saved.get(key) == old_default:
            merged[key] = cfg[key]
    for key in INVOCATION_KEYS:
        merged[key] = cfg[key]
    for key, value in overrides.items():
        if key in saved:
            log.info("Overriding saved %s=%r with %r", key, saved[key], value)
    return merged


# Flags that do not change what is trained: a resumed run may change them freely.
_RUN_ONLY_KEYS = {
    "cli_args",
    "command_line",
    "train_for_env_steps",
    "train_for_seconds",
    "restart_behavior",
    "experiment",
    "train_dir",
}


def cfg_hash(cfg) -> str:
    """Identifies the training setup stored with a checkpoint (reported when a resume changes it)."""
    relevant = {k: v for k, v in cfg.items() if k not in _RUN_ONLY_KEYS}
    return hashlib.sha1(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()[:12]
