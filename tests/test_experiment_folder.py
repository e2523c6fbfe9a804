"""The experiment folder's names (a user's on-disk layout) and the one atomic write."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from sample_factory.utils.attr_dict import AttrDict
from sample_factory.utils.experiment_folder import (
    BEST_CHECKPOINT_RE,
    CHECKPOINT_RE,
    LEAGUE_SNAPSHOT_RE,
    ExperimentFolder,
    atomic_target,
    atomic_write,
    atomic_write_json,
    atomic_write_text,
    best_metric_re,
    remove_stale_temporaries,
    temporary_path,
)


def test_every_name_is_the_layout_users_have_on_disk():
    folder = ExperimentFolder("/runs/exp")
    expected = {
        folder.path: "/runs/exp",
        folder.config_file: "/runs/exp/config.json",
        folder.log_file: "/runs/exp/sf_log.txt",
        folder.env_info_cache: "/runs/exp/env_info.pkl",
        folder.progress_file: "/runs/exp/progress.csv",
        folder.summary_file: "/runs/exp/summary.json",
        folder.summaries_dir: "/runs/exp/.summary",
        folder.policy_summaries_dir(3): "/runs/exp/.summary/3",
        folder.league_summaries_dir: "/runs/exp/.summary/league",
        folder.model_card: "/runs/exp/README.md",
        folder.default_video: "/runs/exp/replay.mp4",
        folder.default_onnx(2): "/runs/exp/policy_p2.onnx",
        folder.checkpoint_dir(0): "/runs/exp/checkpoint_p0",
        folder.checkpoint_dir(12): "/runs/exp/checkpoint_p12",
        folder.checkpoint_file(1, 42, 123456): "/runs/exp/checkpoint_p1/checkpoint_000000042_123456.pth",
        folder.best_checkpoint_file(
            0, 7, 5000, "reward", 3.14159
        ): "/runs/exp/checkpoint_p0/best_000000007_5000_reward_3.142.pth",
        folder.milestones_dir(1): "/runs/exp/checkpoint_p1/milestones",
        folder.policy_params_file(3): "/runs/exp/policy_03_cfg.json",
        folder.reward_shaping_file(3): "/runs/exp/policy_03_reward_shaping.json",
        folder.pbt_history_file(11): "/runs/exp/policy_11_pbt.json",
        folder.pbt_dir: "/runs/exp/pbt",
        folder.pbt_transfer_file(1, 0): "/runs/exp/pbt/p01_to_p00.pth",
        folder.league_dir: "/runs/exp/league",
        folder.league_snapshot_file(2, 1000): "/runs/exp/league/policy_02_000000001000.pth",
        folder.training_games_file: "/runs/exp/league/training_games.json",
        folder.league_results_file: "/runs/exp/league/results.json",
        folder.ratings_file: "/runs/exp/league/ratings.json",
    }
    for got, want in expected.items():
        assert got == Path(want)


def test_the_folder_of_train_dir_and_experiment():
    assert ExperimentFolder.at("train_dir", "doom").path == Path("train_dir/doom")
    assert ExperimentFolder.from_cfg(AttrDict(train_dir="/t", experiment="e")) == ExperimentFolder("/t/e")
    assert os.fspath(ExperimentFolder("/t/e")) == "/t/e"
    assert Path(ExperimentFolder("/t/e")) / "x" == Path("/t/e/x")


def test_names_and_patterns_agree():
    folder = ExperimentFolder("/e")
    assert CHECKPOINT_RE.match(folder.checkpoint_file(0, 5, 77).name).groups() == ("000000005", "77")
    best = folder.best_checkpoint_file(0, 5, 77, "true_objective", -1.5).name
    assert BEST_CHECKPOINT_RE.match(best) and not CHECKPOINT_RE.match(best)
    assert best_metric_re("true_objective").match(best).group(1) == "-1.500"
    assert not best_metric_re("reward").match(best)
    assert LEAGUE_SNAPSHOT_RE.match(folder.league_snapshot_file(1, 99).name).groups() == ("01", "000000000099")


def test_checkpoint_dirs_are_found_by_policy_id(tmp_path):
    folder = ExperimentFolder(tmp_path / "exp")
    assert folder.checkpoint_dirs() == []
    for p in (10, 2, 0):
        folder.checkpoint_dir(p).mkdir(parents=True)
    (folder.path / "checkpoint_p_not_a_dir").write_text("")
    assert [d.name for d in folder.checkpoint_dirs()] == ["checkpoint_p0", "checkpoint_p2", "checkpoint_p10"]


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp") or ".tmp." in p.name)


def test_an_atomic_write_creates_the_folder_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "new" / "deeper" / "data.bin"
    assert atomic_write(path, b"\x00\x01") == path
    assert path.read_bytes() == b"\x00\x01"
    atomic_write(path, lambda f: f.write(b"second"), fsync=True)
    assert path.read_bytes() == b"second"
    atomic_write_text(path.with_name("t.txt"), "héllo")
    assert path.with_name("t.txt").read_text(encoding="utf-8") == "héllo"
    atomic_write_json(path.with_name("j.json"), {"b": 1, "a": Path("/x")})
    assert path.with_name("j.json").read_text() == '{\n  "a": "/x",\n  "b": 1\n}'
    atomic_write_json(path.with_name("k.json"), {"b": 1, "a": 2}, sort_keys=False)
    assert list(json.loads(path.with_name("k.json").read_text())) == ["b", "a"]
    assert leftovers(path.parent) == []


def test_a_failed_write_keeps_the_old_content_and_removes_its_temporary(tmp_path):
    path = tmp_path / "config.json"
    atomic_write_text(path, "old")

    def half_then_fail(f):
        f.write(b"half")
        raise RuntimeError("[enforce fail at inline_container.cc] No space left on device")

    with pytest.raises(RuntimeError, match="No space left"):
        atomic_write(path, half_then_fail)
    assert path.read_text() == "old"
    with pytest.raises(TypeError):
        atomic_write(path, "text, not bytes")  # a write that fails inside the file object
    assert path.read_text() == "old"
    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, lambda f: (_ for _ in ()).throw(KeyboardInterrupt))
    assert path.read_text() == "old"
    assert leftovers(tmp_path) == []


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux) for a real ENOSPC")
def test_a_full_disk_propagates_as_enospc_and_keeps_the_old_file(tmp_path):
    """The temporary file is a link to /dev/full: the kernel refuses the bytes, as a full disk does."""
    path = tmp_path / "summary.json"
    path.write_text("old")
    temporary_path(path).symlink_to("/dev/full")
    with pytest.raises(OSError) as raised:
        atomic_write_json(path, {"env_steps": 1})
    assert raised.value.errno == errno.ENOSPC
    assert path.read_text() == "old"
    assert leftovers(tmp_path) == [], "the link is gone with the failed write"
    atomic_write_json(path, {"env_steps": 1})  # room again: the next write goes through
    assert json.loads(path.read_text()) == {"env_steps": 1}


def test_concurrent_writers_each_get_a_temporary_of_their_own(tmp_path):
    path = tmp_path / "map.wad"
    seen = []
    with atomic_target(path, unique=True) as first, atomic_target(path, unique=True) as second:
        seen += [first.name, second.name]
        first.write_bytes(b"one")
        second.write_bytes(b"two")
    assert first != second and all(n.startswith(".map.wad.") and n.endswith(".tmp") for n in seen)
    assert path.read_bytes() == b"one", "the last to finish wins, whole"
    with pytest.raises(OSError):
        atomic_write(path, lambda f: (_ for _ in ()).throw(OSError(28, "No space left on device")), unique=True)
    assert path.read_bytes() == b"one" and leftovers(tmp_path) == []


def test_a_folder_that_cannot_be_made_propagates(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(OSError):
        atomic_write(tmp_path / "file" / "x.json", b"{}")


def test_a_writer_that_wants_a_file_name(tmp_path):
    video = tmp_path / "replay.mp4"
    with atomic_target(video, keep_suffix=True) as tmp:
        assert tmp == tmp_path / "replay.tmp.mp4"
        tmp.write_bytes(b"frames")
        assert not video.exists()
    assert video.read_bytes() == b"frames"
    with pytest.raises(ValueError), atomic_target(video, fsync=True) as tmp:
        assert tmp == tmp_path / "replay.mp4.tmp"
        tmp.write_bytes(b"half")
        raise ValueError("the encoder failed")
    assert video.read_bytes() == b"frames"
    with pytest.raises(ValueError), atomic_target(tmp_path / "never.png"):
        raise ValueError("nothing was written")  # no temporary file to remove: no second error
    assert leftovers(tmp_path) == [] and not (tmp_path / "never.png").exists()


def test_stale_temporaries_of_killed_writes_are_removed(tmp_path):
    assert remove_stale_temporaries(tmp_path / "missing") == []
    keep = [tmp_path / "checkpoint_000000001_10.pth", tmp_path / "notes.txt"]
    stale = [tmp_path / "checkpoint_000000002_20.pth.tmp", tmp_path / ".checkpoint_000000003_30.pth.k2j4.tmp"]
    for p in keep + stale:
        p.write_bytes(b"x")
    (tmp_path / "dangling.tmp").symlink_to(tmp_path / "nowhere")
    removed = remove_stale_temporaries(tmp_path)
    assert sorted(p.name for p in removed) == sorted([p.name for p in stale] + ["dangling.tmp"])
    assert all(p.exists() for p in keep) and leftovers(tmp_path) == []
