"""The command line as a user drives it: train, stop, resume with overrides, recover from bad checkpoints."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
import torch

from sample_factory.utils.checkpoint import list_checkpoints

pytestmark = pytest.mark.timeout(180)

TRAIN = [
    sys.executable,
    "-m",
    "sf_examples.train_gym_env",
    "--env=CartPole-v1",
    "--serial_mode=True",
    "--report_interval_sec=1",
]


def train(train_dir, *flags, experiment="cli", timeout=120):
    return subprocess.run(
        TRAIN + [f"--train_dir={train_dir}", f"--experiment={experiment}", *flags],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def newest_checkpoint_state(exp_dir):
    path = list_checkpoints(exp_dir / "checkpoint_p0")[-1]
    return torch.load(path, weights_only=True)["training_state"], path


def test_resume_continues_counters_and_applies_typed_overrides(tmp_path):
    first = train(tmp_path, "--train_for_env_steps=8000", "--num_epochs=2")
    assert first.returncode == 0, first.stdout + first.stderr
    state1, _ = newest_checkpoint_state(tmp_path / "cli")
    assert state1["env_steps"] >= 8000

    second = train(tmp_path, "--train_for_env_steps=16000", "--learning_rate=5e-4")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "resumed from" in second.stdout
    assert "Overriding saved learning_rate" in second.stdout
    state2, _ = newest_checkpoint_state(tmp_path / "cli")
    assert state2["env_steps"] >= 16000 and state2["train_step"] > state1["train_step"]
    assert state2["learning_rate"] == pytest.approx(5e-4)

    saved = json.loads((tmp_path / "cli" / "config.json").read_text())
    assert saved["learning_rate"] == pytest.approx(5e-4)
    assert saved["num_epochs"] == 2, "a flag not typed again keeps its saved value"


def test_corrupt_newest_checkpoint_falls_back_to_previous(tmp_path):
    assert train(tmp_path, "--train_for_env_steps=6000", "--save_every_sec=1").returncode == 0
    assert train(tmp_path, "--train_for_env_steps=12000").returncode == 0
    checkpoints = list_checkpoints(tmp_path / "cli" / "checkpoint_p0")
    assert len(checkpoints) == 2
    checkpoints[-1].write_bytes(b"this is not a checkpoint")

    (checkpoints[0].parent / ".checkpoint_000000009_9999.pth.abc.tmp").write_bytes(b"")  # a killed save

    result = train(tmp_path, "--train_for_env_steps=14000")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "could not be loaded" in result.stdout
    assert f"resumed from {checkpoints[0]}" in result.stdout
    folder = checkpoints[0].parent
    assert (folder / (checkpoints[-1].name + ".corrupt")).is_file(), "kept aside, out of the rotation"
    assert not list(folder.glob(".*.tmp")), "the killed save's temporary file is gone"
    again = train(tmp_path, "--train_for_env_steps=16000")
    assert again.returncode == 0 and "could not be loaded" not in again.stdout, "warned once, not at every restart"


def test_a_corrupt_config_file_is_a_one_line_error_naming_it(tmp_path):
    assert train(tmp_path, "--train_for_env_steps=2000").returncode == 0
    config = tmp_path / "cli" / "config.json"
    config.write_bytes(b"\xff\xfe not json")
    result = train(tmp_path, "--train_for_env_steps=4000")
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: {config} is not a valid config file") and "Traceback" not in result.stderr


def test_unreadable_checkpoints_are_an_error_not_a_fresh_start(tmp_path):
    assert train(tmp_path, "--train_for_env_steps=4000").returncode == 0
    for path in list_checkpoints(tmp_path / "cli" / "checkpoint_p0"):
        path.write_bytes(b"garbage")
    result = train(tmp_path, "--train_for_env_steps=8000")
    assert result.returncode == 1
    assert "can be loaded" in result.stderr and "Traceback" not in result.stderr
    again = train(tmp_path, "--train_for_env_steps=8000")
    assert again.returncode == 1 and "only unreadable checkpoints" in again.stderr, "never a silent fresh start"


def test_incompatible_checkpoint_is_a_clear_error(tmp_path):
    assert train(tmp_path, "--train_for_env_steps=4000").returncode == 0
    result = train(tmp_path, "--train_for_env_steps=8000", "--encoder_mlp_layers", "16")
    assert result.returncode == 1
    assert "saved for another model" in result.stderr and "Traceback" not in result.stderr


def test_restart_keeps_old_folder_and_starts_from_scratch(tmp_path):
    assert train(tmp_path, "--train_for_env_steps=4000").returncode == 0
    result = train(tmp_path, "--train_for_env_steps=2000", "--restart_behavior=restart")
    assert result.returncode == 0, result.stdout + result.stderr
    assert list(tmp_path.glob("cli_old_*")), "the previous experiment is kept"
    state, _ = newest_checkpoint_state(tmp_path / "cli")
    assert state["env_steps"] < 4000


def test_train_for_seconds_is_honoured_and_carries_over_resumes(tmp_path):
    started = time.monotonic()
    assert train(tmp_path, "--train_for_seconds=8").returncode == 0
    first_sec = time.monotonic() - started
    state, _ = newest_checkpoint_state(tmp_path / "cli")
    assert 8 <= state["train_seconds"] < 12

    started = time.monotonic()
    assert train(tmp_path, "--train_for_seconds=11").returncode == 0
    second_sec = time.monotonic() - started
    state, _ = newest_checkpoint_state(tmp_path / "cli")
    assert 11 <= state["train_seconds"] < 15
    assert second_sec < first_sec, "the second run only trains for the remaining seconds"


def test_a_resumed_run_never_replaces_a_better_best_checkpoint(tmp_path):
    best_flags = ["--save_best_after=0", "--save_best_every_sec=1"]
    assert train(tmp_path, "--train_for_env_steps=30000", *best_flags).returncode == 0
    (best,) = list_checkpoints(tmp_path / "cli" / "checkpoint_p0", "best")
    # Pretend the first run's best policy was far better than anything the next one will see.
    better = best.with_name(best.name.rsplit("_reward_", 1)[0] + "_reward_900.000.pth")
    best.rename(better)

    result = train(tmp_path, "--train_for_env_steps=50000", *best_flags)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "best reward so far 900.000" in result.stdout
    assert list_checkpoints(tmp_path / "cli" / "checkpoint_p0", "best") == [better]
