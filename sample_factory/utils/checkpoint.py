"""Checkpoints on disk: written atomically, found newest-first, loaded without unpickling objects."""

from __future__ import annotations

import logging
import os
import re
import tempfile
from pathlib import Path

import torch

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT_VERSION = 1
_CHECKPOINT_RE = re.compile(r"^checkpoint_(\d+)_(\d+)\.pth$")


def checkpoint_dir(experiment_dir: str | Path, policy_id: int) -> Path:
    return Path(experiment_dir) / f"checkpoint_p{policy_id}"


def checkpoint_name(train_step: int, env_steps: int) -> str:
    return f"checkpoint_{train_step:09d}_{env_steps}.pth"


def list_checkpoints(directory: str | Path) -> list[Path]:
    """Checkpoints in a folder, oldest first (by train step)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = []
    for path in directory.iterdir():
        match = _CHECKPOINT_RE.match(path.name)
        if match:
            found.append((int(match.group(1)), int(match.group(2)), path))
    return [p for _, _, p in sorted(found)]


def save_atomically(state: dict, path: str | Path):
    """Writes to a temporary file in the same folder, then renames: a crash leaves no half file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
        raise


def save_checkpoint(state: dict, directory: str | Path, train_step: int, env_steps: int, keep: int) -> Path:
    state = {"format_version": CHECKPOINT_FORMAT_VERSION, **state}
    path = Path(directory) / checkpoint_name(train_step, env_steps)
    save_atomically(state, path)
    for old in list_checkpoints(directory)[:-keep] if keep > 0 else []:
        old.unlink(missing_ok=True)
    return path


def load_latest_checkpoint(directory: str | Path, device: torch.device | str = "cpu") -> tuple[dict, Path] | None:
    """The newest checkpoint that loads; a corrupt newer one is skipped with a warning."""
    for path in reversed(list_checkpoints(directory)):
        try:
            state = torch.load(path, map_location=device, weights_only=True)
        except Exception as e:  # noqa: BLE001 (any failure to read means: try the previous one)
            log.warning("Checkpoint %s could not be loaded (%s); trying the previous one", path, e)
            continue
        if state.get("format_version") != CHECKPOINT_FORMAT_VERSION:
            log.warning("Checkpoint %s has format %s, expected %s; skipped", path, state.get("format_version"), CHECKPOINT_FORMAT_VERSION)
            continue
        return state, path
    return None
