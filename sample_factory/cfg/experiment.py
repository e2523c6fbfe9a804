"""Where an experiment lives on disk, and its saved config."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

from sample_factory.utils.attr_dict import AttrDict

log = logging.getLogger(__name__)

CONFIG_FILE = "config.json"


def experiment_dir(cfg) -> Path:
    return Path(cfg.train_dir) / cfg.experiment


def write_json_atomically(path: Path, obj):
    """A temporary file in the same folder, then a rename: a crash leaves the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str))
    os.replace(tmp, path)


def save_cfg(cfg, exp_dir: Path):
    write_json_atomically(exp_dir / CONFIG_FILE, dict(cfg))


class SavedConfigError(ValueError):
    """The experiment's config.json cannot be read; the message names the file."""


def load_saved_cfg(exp_dir: Path) -> AttrDict | None:
    path = exp_dir / CONFIG_FILE
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

    Flags the saved config does not know (evaluation flags, flags added since) come from `cfg`.
    """
    saved = load_saved_cfg(experiment_dir(cfg))
    if saved is None:
        return cfg
    typed = cfg.get("cli_args", {})
    overrides = {k: v for k, v in typed.items() if saved.get(k) != v}
    merged = AttrDict({**cfg, **saved, **overrides})
    for key, old_default in _RETIRED_DEFAULTS.items():
        if key in cfg and key not in typed and saved.get(key) == old_default:
            merged[key] = cfg[key]
    merged.cli_args = typed
    merged.command_line = cfg.get("command_line", saved.get("command_line"))
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
