"""Evaluation: enjoy (CLI, video, errors, multi-agent, RNN) and the ONNX export against the torch policy."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from training import train_until

from sample_factory.cfg.experiment import experiment_dir, save_cfg
from sample_factory.enjoy import enjoy
from sample_factory.envs.create_env import obtain_env_info
from sample_factory.envs.env_utils import register_env
from sample_factory.eval.config import eval_cfg
from sample_factory.eval.policy import load_policy_for_eval
from sample_factory.model.actor_critic import create_actor_critic
from sample_factory.utils.checkpoint import checkpoint_dir, save_checkpoint
from sf_examples.multi_agent_example import make_pointing_game
from sf_examples.train_gym_env import parse_gym_args

pytestmark = pytest.mark.timeout(60)

REPO_ROOT = Path(__file__).resolve().parents[1]
EPISODE_RE = re.compile(r"Episode (\d+)(?: agent (\d+))?: return ([-\d.]+), length (\d+)")


@pytest.fixture(scope="module")
def cartpole_experiment(tmp_path_factory) -> Path:
    """A CartPole policy trained for a few seconds in-process (serial mode); returns its train_dir."""
    train_dir = tmp_path_factory.mktemp("train")
    cfg = parse_gym_args(
        [
            "--env=CartPole-v1",
            "--experiment=cartpole",
            f"--train_dir={train_dir}",
            "--train_for_env_steps=20000",
            "--serial_mode=True",
            "--seed=1",
        ]
    )
    result = train_until(cfg)
    assert result["status"] == 0
    return train_dir


def untrained_experiment(train_dir: Path, env: str, name: str, extra_args: list[str]) -> list[str]:
    """An experiment folder with a config and a checkpoint of freshly initialized weights (no training).

    Returns the base argv that addresses it.
    """
    argv = [f"--env={env}", f"--experiment={name}", f"--train_dir={train_dir}", "--seed=3", *extra_args]
    cfg = parse_gym_args(argv)
    env_info = obtain_env_info(cfg)
    model = create_actor_critic(cfg, env_info.obs_space, env_info.action_space)
    exp_dir = experiment_dir(cfg)
    save_cfg(cfg, exp_dir)
    save_checkpoint({"model": model.state_dict()}, checkpoint_dir(exp_dir, 0), train_step=1, env_steps=0, keep=2)
    return argv


def run_cli(module: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", module, *args], check=False, cwd=REPO_ROOT, capture_output=True, text=True, timeout=50
    )


def episodes_in(text: str) -> list[tuple[int, int | None, float, int]]:
    return [(int(n), int(a) if a else None, float(r), int(length)) for n, a, r, length in EPISODE_RE.findall(text)]


def logged(caplog) -> str:
    return "\n".join(record.getMessage() for record in caplog.records)


# --- enjoy ---------------------------------------------------------------------------------------


def test_enjoy_cli_prints_mean_return(cartpole_experiment):
    proc = run_cli(
        "sf_examples.enjoy_gym_env",
        "--env=CartPole-v1",
        "--experiment=cartpole",
        f"--train_dir={cartpole_experiment}",
        "--no_render",
        "--max_num_episodes=3",
    )
    assert proc.returncode == 0, proc.stderr
    episodes = episodes_in(proc.stdout)
    assert [n for n, *_ in episodes] == [1, 2, 3], proc.stdout
    match = re.search(r"Mean return ([-\d.]+) ± ([\d.]+), mean length ([\d.]+) ± ([\d.]+) \(3 episodes\)", proc.stdout)
    assert match, proc.stdout
    assert float(match.group(1)) == pytest.approx(np.mean([r for *_, r, _ in episodes]), abs=0.01)
    assert "Traceback" not in proc.stderr


def test_enjoy_missing_experiment_is_one_line_error(tmp_path):
    proc = run_cli(
        "sf_examples.enjoy_gym_env", "--env=CartPole-v1", "--experiment=nope", f"--train_dir={tmp_path}", "--no_render"
    )
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "does not exist" in lines[0], proc.stderr


def test_enjoy_without_checkpoint_is_one_line_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    cfg = parse_gym_args(
        ["--env=CartPole-v1", "--experiment=empty", f"--train_dir={tmp_path}", "--no_render"], evaluation=True
    )
    assert enjoy(cfg)[0] == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: no checkpoint"), err


def test_enjoy_policy_index_out_of_range(cartpole_experiment, capsys):
    argv = [
        "--env=CartPole-v1",
        "--experiment=cartpole",
        f"--train_dir={cartpole_experiment}",
        "--no_render",
        "--policy_index=3",
    ]
    assert enjoy(parse_gym_args(argv, evaluation=True))[0] == 1
    assert "--policy_index=3" in capsys.readouterr().err


def test_enjoy_checkpoint_that_does_not_fit_the_model(cartpole_experiment, capsys):
    argv = ["--env=CartPole-v1", "--experiment=cartpole", f"--train_dir={cartpole_experiment}", "--no_render"]
    assert enjoy(parse_gym_args(argv + ["--encoder_mlp_layers", "32"], evaluation=True))[0] == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not fit the model" in err[0] and "shape" in err[0], err


def _video_frames(path: Path) -> tuple[int, int, int]:
    """(frames actually decodable, width, height)."""
    cv2 = pytest.importorskip("cv2")
    capture = cv2.VideoCapture(str(path))
    assert capture.isOpened()
    count = 0
    width, height = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    while True:
        ok, _ = capture.read()
        if not ok:
            break
        count += 1
    capture.release()
    return count, width, height


def _needs_rendering():
    pytest.importorskip("cv2", reason="--save_video needs opencv-python-headless")
    pytest.importorskip("pygame", reason="CartPole's rgb_array rendering needs pygame (gymnasium[classic-control])")


def test_save_video_trained_policy(cartpole_experiment, caplog):
    _needs_rendering()
    argv = [
        "--env=CartPole-v1",
        "--experiment=cartpole",
        f"--train_dir={cartpole_experiment}",
        "--save_video",
        "--video_frames=50",
        "--max_num_episodes=1",
        "--video_name=trained.mp4",
    ]
    caplog.set_level("INFO")
    assert enjoy(parse_gym_args(argv, evaluation=True))[0] == 0
    episodes = episodes_in(logged(caplog))
    assert len(episodes) == 1
    video = cartpole_experiment / "cartpole" / "trained.mp4"
    assert video.is_file()
    assert _video_frames(video) == (min(50, episodes[0][3]), 600, 400)
    assert not list(video.parent.glob("*.tmp*")), "the temporary video file is gone"


def test_save_video_short_episode_recurrent_policy(tmp_path, caplog):
    """An untrained GRU policy falls within a few dozen steps: the video holds the whole episode."""
    _needs_rendering()
    argv = untrained_experiment(tmp_path, "CartPole-v1", "gru", ["--use_rnn=True", "--rnn_size=16"])
    caplog.set_level("INFO")
    cfg = parse_gym_args(argv + ["--save_video", "--video_frames=1000", "--max_num_episodes=1"], evaluation=True)
    assert enjoy(cfg)[0] == 0
    (episode,) = episodes_in(logged(caplog))
    assert episode[3] < 1000
    assert _video_frames(tmp_path / "gru" / "replay.mp4") == (episode[3], 600, 400)


def test_enjoy_multi_agent_env(tmp_path, caplog):
    register_env("pointing_game", make_pointing_game)
    argv = untrained_experiment(tmp_path, "pointing_game", "ma", [])
    caplog.set_level("INFO")
    cfg = parse_gym_args(argv + ["--no_render", "--max_num_episodes=2", "--eval_deterministic=True"], evaluation=True)
    assert enjoy(cfg)[0] == 0
    episodes = episodes_in(logged(caplog))
    assert sorted((n, agent) for n, agent, _, _ in episodes) == [(1, 0), (1, 1), (2, 0), (2, 1)]
    assert all(length == 20 for *_, length in episodes)


def test_max_num_frames_counts_frameskip(tmp_path, caplog):
    """Frames are env steps x frameskip: 80 frames at frameskip 4 are 20 steps, one 20-step episode."""
    register_env("pointing_game", make_pointing_game)
    argv = untrained_experiment(tmp_path, "pointing_game", "ma", [])
    caplog.set_level("INFO")
    cfg = parse_gym_args(argv + ["--no_render", "--max_num_frames=80", "--env_frameskip=4"], evaluation=True)
    assert enjoy(cfg)[0] == 0
    assert sorted((n, agent) for n, agent, _, _ in episodes_in(logged(caplog))) == [(1, 0), (1, 1)]


def test_enjoy_plays_on_its_own_config_and_leaves_the_callers_unchanged(tmp_path):
    """The eval config is a new one: a smaller --eval_env_frameskip repeats each action to keep the training rate."""
    register_env("pointing_game", make_pointing_game)
    argv = untrained_experiment(tmp_path, "pointing_game", "ma", ["--env_frameskip=4"])
    cfg = parse_gym_args(argv + ["--no_render", "--max_num_episodes=1", "--eval_env_frameskip=2"], evaluation=True)
    before = dict(cfg)
    played, settings = eval_cfg(cfg)
    assert (played.env_frameskip, settings.env_frameskip, settings.action_repeat) == (2, 2, 2)
    assert "eval_action_repeat" not in played, "the action repeat is a setting of the episodes, not a flag"
    assert enjoy(cfg)[0] == 0
    assert dict(cfg) == before


def test_rnn_state_is_carried_and_zeroed_at_episode_ends(tmp_path, monkeypatch):
    from sample_factory.model.actor_critic import ActorCriticSharedWeights

    register_env("pointing_game", make_pointing_game)
    argv = untrained_experiment(tmp_path, "pointing_game", "ma_gru", ["--use_rnn=True", "--rnn_size=8"])
    seen = []
    original = ActorCriticSharedWeights.forward_core

    def recording_forward_core(self, head_output, rnn_states):
        seen.append(rnn_states.clone())
        return original(self, head_output, rnn_states)

    monkeypatch.setattr(ActorCriticSharedWeights, "forward_core", recording_forward_core)
    cfg = parse_gym_args(argv + ["--no_render", "--max_num_episodes=2"], evaluation=True)
    assert enjoy(cfg)[0] == 0
    assert len(seen) == 40  # two 20-step episodes, both agents in one forward pass per step
    assert all(states.shape == (2, 8) for states in seen)
    for step, states in enumerate(seen):
        if step % 20 == 0:
            assert torch.all(states == 0), f"step {step} starts an episode: zero state expected"
        else:
            assert torch.all(states.abs().sum(dim=1) > 0), f"step {step}: the state must be carried"


# --- ONNX ----------------------------------------------------------------------------------------


def _compare_onnx_with_torch(cfg, onnx_path: Path, batch: int = 7):
    ort = pytest.importorskip("onnxruntime")
    policy = load_policy_for_eval(cfg)
    model = policy.model
    model.use_reference_ops()  # the export is the float32 graph, also of a policy trained with --model_bf16
    generator = torch.Generator().manual_seed(0)
    inputs = {}
    for key, space in policy.obs_space.spaces.items():
        shape = (batch,) + tuple(space.shape)
        if key == "action_mask":
            mask = (torch.rand(shape, generator=generator) > 0.3).float()
            mask[:, 0] = 1.0
            inputs[key] = mask
        else:
            inputs[key] = 2.0 * torch.randn(shape, generator=generator)
    rnn_states = 0.5 * torch.randn(batch, policy.rnn_state_size, generator=generator)

    with torch.no_grad():
        normalized = model.normalize_obs(inputs)
        core, new_rnn_states = model.forward_core(model.forward_head(normalized), rnn_states)
        expected = model.forward_tail(
            core, values_only=False, sample_actions=True, action_mask=normalized.get("action_mask"), deterministic=True
        )
        expected_values = model.denormalize_values(expected["values"])

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    feed = {key: value.numpy().astype(np.float32) for key, value in inputs.items()}
    if policy.rnn_state_size > 0:
        feed["rnn_states"] = rnn_states.numpy()
    assert {i.name for i in session.get_inputs()} == set(feed)
    names = [o.name for o in session.get_outputs()]
    outputs = dict(zip(names, session.run(None, feed)))

    np.testing.assert_allclose(outputs["values"], expected_values.numpy(), atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(outputs["action_logits"], expected["action_logits"].numpy(), atol=1e-4, rtol=1e-4)
    np.testing.assert_array_equal(outputs["actions"], expected["actions"].numpy())
    if policy.rnn_state_size > 0:
        np.testing.assert_allclose(outputs["new_rnn_states"], new_rnn_states.numpy(), atol=1e-4, rtol=1e-4)
    else:
        assert "new_rnn_states" not in outputs


@pytest.fixture
def onnx_packages():
    pytest.importorskip("onnx", reason="the ONNX export needs the onnx package")
    pytest.importorskip("onnxscript", reason="torch's ONNX exporter needs onnxscript")
    pytest.importorskip("onnxruntime", reason="checking the exported model needs onnxruntime")


def test_export_onnx_matches_torch_policy(cartpole_experiment, tmp_path, onnx_packages):
    from sample_factory.export_onnx import export_onnx

    argv = ["--env=CartPole-v1", "--experiment=cartpole", f"--train_dir={cartpole_experiment}"]
    cfg = parse_gym_args(argv, evaluation=True)
    path = tmp_path / "policy.onnx"
    assert export_onnx(cfg, path) == 0
    assert path.is_file()
    _compare_onnx_with_torch(cfg, path)


def test_export_onnx_recurrent_with_action_mask(tmp_path, onnx_packages):
    """A GRU policy on the multi-agent env: rnn_states in and out, the action mask as an input."""
    from sample_factory.export_onnx import export_onnx

    register_env("pointing_game", make_pointing_game)
    argv = untrained_experiment(tmp_path, "pointing_game", "ma_gru", ["--use_rnn=True", "--rnn_size=8"])
    cfg = parse_gym_args(argv, evaluation=True)
    path = tmp_path / "policy.onnx"
    assert export_onnx(cfg, path) == 0
    _compare_onnx_with_torch(cfg, path)


def test_export_onnx_missing_experiment(tmp_path, capsys):
    from sample_factory.export_onnx import export_onnx

    cfg = parse_gym_args(["--env=CartPole-v1", "--experiment=nope", f"--train_dir={tmp_path}"], evaluation=True)
    assert export_onnx(cfg, tmp_path / "p.onnx") == 1
    assert capsys.readouterr().err.startswith("error: experiment folder")
    assert not (tmp_path / "p.onnx").exists()
