"""Checkpoints on disk: written atomically, found newest-first, loaded without unpickling objects."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

from sample_factory.utils import experiment_folder as ef
from sample_factory.utils.experiment_folder import ExperimentFolder, atomic_write, checkpoint_name
from sample_factory.utils.sf2_checkpoint import from_sf2, is_sf2_checkpoint

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT_VERSION = 1


class CheckpointError(RuntimeError):
    """Checkpoints exist but none can be used: never silently start from scratch."""


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (disk full, permissions); the previous one is intact."""


def checkpoint_dir(experiment_dir: str | Path, policy_id: int) -> Path:
    return ExperimentFolder(experiment_dir).checkpoint_dir(policy_id)


def list_checkpoints(directory: str | Path, kind: str = "latest") -> list[Path]:
    """Checkpoints of a kind ("latest": regular ones, "best": best-by-metric) in a folder, oldest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    pattern = ef.BEST_CHECKPOINT_RE if kind == "best" else ef.CHECKPOINT_RE
    found = []
    for path in directory.iterdir():
        match = pattern.match(path.name)
        if match:
            found.append((int(match.group(1)), int(match.group(2)), path))
    return [p for _, _, p in sorted(found)]


def save_atomically(state: dict, path: str | Path):
    """torch.save through the atomic write (synced to disk before the rename): a crash leaves no half file."""
    path = Path(path)
    try:
        atomic_write(path, lambda f: torch.save(state, f), fsync=True)
    except (OSError, RuntimeError) as e:  # torch reports a full disk as a RuntimeError
        reason = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        errno = f" errno {e.errno}" if getattr(e, "errno", None) else ""
        raise CheckpointWriteError(f"could not write {path} ({type(e).__name__}{errno}: {reason})") from e


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
    path = Path(directory) / ef.best_checkpoint_name(train_step, env_steps, metric, value)
    save_atomically(state, path)
    for old in list_checkpoints(directory, "best"):
        if old != path:
            old.unlink(missing_ok=True)
    return path


def best_metric_value(directory: str | Path, metric: str) -> float | None:
    """The metric value a best checkpoint in `directory` was saved with (its name records it), so
    that a resumed run only replaces it with a better one; None if there is none for `metric`."""
    pattern = ef.best_metric_re(metric)
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
    milestone = checkpoint_path.parent / ef.MILESTONES_DIR / checkpoint_path.name
    save_atomically(torch.load(checkpoint_path, weights_only=True), milestone)


def league_dir(experiment_dir: str | Path) -> Path:
    return ExperimentFolder(experiment_dir).league_dir


def snapshot_env_steps(path: str | Path) -> int:
    """The env steps in a league snapshot's name (`policy_XX_<env steps>.pth`)."""
    match = ef.LEAGUE_SNAPSHOT_RE.match(Path(path).name)
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
        match = ef.LEAGUE_SNAPSHOT_RE.match(path.name)
        if match and int(match.group(1)) == policy_id:
            found.append((int(match.group(2)), path))
    return [p for _, p in sorted(found)]


def save_league_snapshot(state: dict, experiment_dir: str | Path, policy_id: int, env_steps: int, keep: int) -> Path:
    """A frozen copy of a policy; of the older ones the first (the policy at its start) is always kept."""
    path = ExperimentFolder(experiment_dir).league_snapshot_file(policy_id, env_steps)
    save_atomically({"format_version": CHECKPOINT_FORMAT_VERSION, **state}, path)
    snapshots = league_snapshots(experiment_dir, policy_id)
    for old in snapshots[1 : max(1, len(snapshots) - keep + 1)]:
        old.unlink(missing_ok=True)
    return path


def remove_stale_temporaries(directory: str | Path) -> list[Path]:
    """Deletes the temporary files of saves that a killed process never finished (none is in flight
    when a run starts); returns what was removed."""
    stale = ef.remove_stale_temporaries(directory)
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
    if not candidates and kind == "latest" and any(Path(directory).glob(f"checkpoint_*.pth{ef.CORRUPT_SUFFIX}")):
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
            corrupt = path.with_name(path.name + ef.CORRUPT_SUFFIX)
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
