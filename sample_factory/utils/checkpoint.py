"""Checkpoints on disk: written atomically, found newest-first, loaded without unpickling objects."""

from __future__ import annotations

import logging
import os
import re
import tempfile
from pathlib import Path

import torch

from sample_factory.utils.sf2_checkpoint import from_sf2, is_sf2_checkpoint

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT_VERSION = 1
_CHECKPOINT_RE = re.compile(r"^checkpoint_(\d+)_(\d+)\.pth$")
_BEST_RE = re.compile(r"^best_(\d+)_(\d+)_.*\.pth$")
_MILESTONE_DIR = "milestones"


class CheckpointError(RuntimeError):
    """Checkpoints exist but none can be used: never silently start from scratch."""


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (disk full, permissions); the previous one is intact."""


def checkpoint_dir(experiment_dir: str | Path, policy_id: int) -> Path:
    return Path(experiment_dir) / f"checkpoint_p{policy_id}"


def checkpoint_name(train_step: int, env_steps: int) -> str:
    return f"checkpoint_{train_step:09d}_{env_steps}.pth"


def list_checkpoints(directory: str | Path, kind: str = "latest") -> list[Path]:
    """Checkpoints of a kind ("latest": regular ones, "best": best-by-metric) in a folder, oldest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    pattern = _BEST_RE if kind == "best" else _CHECKPOINT_RE
    found = []
    for path in directory.iterdir():
        match = pattern.match(path.name)
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
    except BaseException as e:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
        if isinstance(e, (OSError, RuntimeError)):  # torch reports a full disk as a RuntimeError
            reason = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
            errno = f" errno {e.errno}" if getattr(e, "errno", None) else ""
            raise CheckpointWriteError(f"could not write {path} ({type(e).__name__}{errno}: {reason})") from e
        raise


def save_checkpoint(state: dict, directory: str | Path, train_step: int, env_steps: int, keep: int) -> Path:
    state = {"format_version": CHECKPOINT_FORMAT_VERSION, **state}
    path = Path(directory) / checkpoint_name(train_step, env_steps)
    save_atomically(state, path)
    for old in list_checkpoints(directory)[:-keep] if keep > 0 else []:
        old.unlink(missing_ok=True)
    return path


def save_best_checkpoint(
    state: dict, directory: str | Path, train_step: int, env_steps: int, metric: str, value: float
) -> Path:
    """Keeps one best checkpoint per policy, replacing the previous one."""
    state = {"format_version": CHECKPOINT_FORMAT_VERSION, **state}
    path = Path(directory) / f"best_{train_step:09d}_{env_steps}_{metric}_{value:.3f}.pth"
    save_atomically(state, path)
    for old in list_checkpoints(directory, "best"):
        if old != path:
            old.unlink(missing_ok=True)
    return path


def best_metric_value(directory: str | Path, metric: str) -> float | None:
    """The metric value a best checkpoint in `directory` was saved with (its name records it), so
    that a resumed run only replaces it with a better one; None if there is none for `metric`."""
    pattern = re.compile(rf"^best_\d+_\d+_{re.escape(metric)}_(.+)\.pth$")
    values = []
    for path in list_checkpoints(directory, "best"):
        match = pattern.match(path.name)
        if match:
            try:
                values.append(float(match.group(1)))
            except ValueError:
                log.warning("Cannot read the metric value in the name of %s; ignoring it", path)
    return max(values) if values else None


def save_milestone(checkpoint_path: Path):
    """A copy of a regular checkpoint that rotation never deletes."""
    milestone = checkpoint_path.parent / _MILESTONE_DIR / checkpoint_path.name
    milestone.parent.mkdir(parents=True, exist_ok=True)
    save_atomically(torch.load(checkpoint_path, weights_only=True), milestone)


_SNAPSHOT_RE = re.compile(r"^policy_(\d+)_(\d+)\.pth$")


def league_dir(experiment_dir: str | Path) -> Path:
    return Path(experiment_dir) / "league"


def snapshot_env_steps(path: str | Path) -> int:
    """The env steps in a league snapshot's name (`policy_XX_<env steps>.pth`)."""
    match = _SNAPSHOT_RE.match(Path(path).name)
    if not match:
        raise ValueError(f"{path}: not a league snapshot (policy_XX_<env steps>.pth)")
    return int(match.group(2))


def league_snapshots(experiment_dir: str | Path, policy_id: int) -> list[Path]:
    """A policy's frozen snapshots (`league/policy_XX_<env steps>.pth`), oldest first."""
    directory = league_dir(experiment_dir)
    if not directory.is_dir():
        return []
    found = []
    for path in directory.iterdir():
        match = _SNAPSHOT_RE.match(path.name)
        if match and int(match.group(1)) == policy_id:
            found.append((int(match.group(2)), path))
    return [p for _, p in sorted(found)]


def save_league_snapshot(state: dict, experiment_dir: str | Path, policy_id: int, env_steps: int, keep: int) -> Path:
    """A frozen copy of a policy; of the older ones the first (the policy at its start) is always kept."""
    path = league_dir(experiment_dir) / f"policy_{policy_id:02d}_{env_steps:012d}.pth"
    save_atomically({"format_version": CHECKPOINT_FORMAT_VERSION, **state}, path)
    snapshots = league_snapshots(experiment_dir, policy_id)
    for old in snapshots[1 : max(1, len(snapshots) - keep + 1)]:
        old.unlink(missing_ok=True)
    return path


def remove_stale_temporaries(directory: str | Path) -> list[Path]:
    """Deletes the temporary files of saves that a killed process never finished (none is in flight
    when a run starts); returns what was removed."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    stale = [p for p in directory.glob(".*.tmp") if p.is_file()]
    for path in stale:
        path.unlink(missing_ok=True)
    if stale:
        log.info("Removed %d unfinished checkpoint file(s) from %s", len(stale), directory)
    return stale


def load_latest_checkpoint(
    directory: str | Path, device: torch.device | str = "cpu", kind: str = "latest"
) -> tuple[dict, Path] | None:
    """The newest checkpoint that loads; a corrupt newer one is skipped with a warning.

    None when there are no checkpoints; CheckpointError when there are some but none loads.
    """
    candidates = list_checkpoints(directory, kind)
    if not candidates and kind == "latest" and any(Path(directory).glob("checkpoint_*.pth.corrupt")):
        raise CheckpointError(
            f"{directory} holds only unreadable checkpoints (kept as *.corrupt); "
            "move them away to start from scratch, or use --restart_behavior=restart"
        )
    if kind == "best" and not candidates:
        log.warning("No best checkpoint in %s yet; using the latest one", directory)
        candidates = list_checkpoints(directory, "latest")
    for path in reversed(candidates):
        try:
            state = torch.load(path, map_location=device, weights_only=True)
        except Exception as e:  # noqa: BLE001 (any failure to read means: try the previous one)
            # Renamed out of the way: it is no longer the newest, nor counted by rotation.
            corrupt = path.with_name(path.name + ".corrupt")
            try:
                os.replace(path, corrupt)
            except OSError:
                corrupt = path
            log.warning(
                "Checkpoint %s could not be loaded (%s: %s); kept as %s, trying the previous one",
                path.name,
                type(e).__name__,
                str(e).splitlines()[0][:200] if str(e) else "",
                corrupt.name,
            )
            continue
        if is_sf2_checkpoint(state):
            log.info("Checkpoint %s was written by sample-factory 2.x: converted on load", path)
            state = from_sf2(state, CHECKPOINT_FORMAT_VERSION)
        if state.get("format_version") != CHECKPOINT_FORMAT_VERSION:
            log.warning(
                "Checkpoint %s has format %s, expected %s; skipped",
                path,
                state.get("format_version"),
                CHECKPOINT_FORMAT_VERSION,
            )
            continue
        return state, path
    if candidates:
        raise CheckpointError(
            f"none of the {len(candidates)} checkpoints in {directory} can be loaded; "
            "move them away to start from scratch, or use --restart_behavior=restart"
        )
    return None


def incompatibilities(checkpoint_model_state: dict, model: torch.nn.Module) -> list[str]:
    """How a checkpoint's model differs from `model` (other shapes, missing or extra tensors)."""
    expected = model.state_dict()
    problems = []
    for key, tensor in expected.items():
        if key not in checkpoint_model_state:
            problems.append(f"{key} missing")
        elif tuple(checkpoint_model_state[key].shape) != tuple(tensor.shape):
            problems.append(
                f"{key} has shape {tuple(checkpoint_model_state[key].shape)}, the model needs {tuple(tensor.shape)}"
            )
    problems.extend(f"{key} unexpected" for key in checkpoint_model_state if key not in expected)
    return problems
