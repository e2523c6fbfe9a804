"""Hugging Face Hub: the model card, load_from_hub through the client's own offline cache
(HF_HUB_OFFLINE=1 and HF_HUB_CACHE: nothing here reaches the hub), and push errors as one line."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from training import train_until

from sample_factory.enjoy import enjoy
from sf_examples.train_gym_env import parse_gym_args

pytest.importorskip("huggingface_hub", reason="the hub needs huggingface_hub: pip install huggingface_hub")

pytestmark = pytest.mark.timeout(120)
REPO_ROOT = Path(__file__).resolve().parents[1]
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    train_dir = tmp_path_factory.mktemp("train")
    cfg = parse_gym_args(
        ["--env=CartPole-v1", "--experiment=cartpole", f"--train_dir={train_dir}", "--serial_mode=True",
         "--train_for_env_steps=5000", "--seed=1"]
    )  # fmt: skip
    assert train_until(cfg)["status"] == 0
    return train_dir / "cartpole"


def put_in_hub_cache(cache: Path, repo_id: str, folder: Path):
    """The layout huggingface_hub itself leaves after a download: refs/main -> snapshots/<commit>/."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    shutil.copytree(folder, repo / "snapshots" / COMMIT)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)


def run(module: str, *args, env=None):
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=90,
        check=False, env=env,
    )  # fmt: skip


def offline_env(cache: Path) -> dict:
    import os

    return {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache)}


def test_model_card_has_the_hub_metadata(trained):
    from sample_factory.huggingface.huggingface_utils import generate_model_card

    card = generate_model_card(trained, "APPO", "CartPole-v1", "user/cartpole", rewards=[100.0, 200.0]).read_text()
    assert card.startswith("---\nlibrary_name: sample-factory")
    assert "value: 150.00 +/- 50.00" in card and "load_from_hub -r user/cartpole" in card


def test_load_from_hub_then_enjoy_plays_it(trained, tmp_path):
    cache = tmp_path / "hub_cache"
    put_in_hub_cache(cache, "user/cartpole_model", trained)
    train_dir = tmp_path / "downloaded"
    result = run("sample_factory.huggingface.load_from_hub", "-r", "user/cartpole_model", "-d", str(train_dir),
                 env=offline_env(cache))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads((train_dir / "cartpole_model" / "config.json").read_text())["env"] == "CartPole-v1"
    argv = ["--env=CartPole-v1", "--experiment=cartpole_model", f"--train_dir={train_dir}", "--no_render",
            "--max_num_episodes=2"]  # fmt: skip
    status, mean_return = enjoy(parse_gym_args(argv, evaluation=True))
    assert status == 0 and mean_return > 0


def test_hub_failures_are_one_line_errors(trained, tmp_path, capsys):
    offline = offline_env(tmp_path / "empty_cache")
    missing = run("sample_factory.huggingface.load_from_hub", "-r", "user/nothing", "-d", str(tmp_path), env=offline)
    assert missing.returncode == 1 and missing.stderr.startswith("error: could not load user/nothing")
    push = run("sample_factory.huggingface.push_to_hub", "-r", "user/cartpole", "-d", str(trained), env=offline)
    assert (
        push.returncode == 1 and push.stderr.startswith("error: could not push") and len(push.stderr.splitlines()) == 1
    )
    assert (trained / "README.md").is_file(), "the model card is written before the upload"

    argv = ["--env=CartPole-v1", "--experiment=cartpole", f"--train_dir={trained.parent}", "--no_render",
            "--push_to_hub=True"]  # fmt: skip
    status, _ = enjoy(parse_gym_args(argv, evaluation=True))
    assert status == 1 and "--push_to_hub needs --hf_repository" in capsys.readouterr().err
