"""MuJoCo: the registered tasks, action clipping, defaults, and a train -> enjoy (video) smoke test."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("mujoco", reason='MuJoCo tests need mujoco: pip install "gymnasium[mujoco]"')

from training import train_until

from sample_factory.envs.env_utils import registered_env_names
from sf_examples.mujoco.mujoco_envs import (
    MUJOCO_ENVS,
    ClipActionToBounds,
    make_mujoco_env,
    register_mujoco_envs,
)
from sf_examples.mujoco.train_mujoco import parse_mujoco_args

pytestmark = pytest.mark.timeout(30)

REPO_ROOT = Path(__file__).resolve().parents[1]


class RecordingEnv(gym.Env):
    """Remembers the actions it receives."""

    def __init__(self, low, high):
        self.observation_space = gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self.action_space = gym.spaces.Box(np.asarray(low, np.float32), np.asarray(high, np.float32), dtype=np.float32)
        self.actions = []

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(2, np.float32), {}

    def step(self, action):
        self.actions.append(np.array(action))
        return np.zeros(2, np.float32), 0.0, False, False, {}


def test_every_task_is_registered_and_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    names = register_mujoco_envs()
    assert len(MUJOCO_ENVS) == 11 and len(names) == 11 + 4, "and sample-factory 2.x's four other names"
    assert set(names) <= set(registered_env_names())
    for name in [
        "mujoco_halfcheetah",
        "mujoco_hopper",
        "mujoco_walker2d",
        "mujoco_ant",
        "mujoco_humanoid",
        "mujoco_swimmer",
        "mujoco_reacher",
        "mujoco_inverted_pendulum",
        "mujoco_inverted_double_pendulum",
    ]:
        assert name in names
    for name, gym_id in MUJOCO_ENVS.items():
        env = make_mujoco_env(name)
        try:
            assert env.spec.id == gym_id
            assert isinstance(env.action_space, gym.spaces.Box) and env.action_space.is_bounded()
            obs, _ = env.reset(seed=0)
            assert obs.shape == env.observation_space.shape and obs.dtype == env.observation_space.dtype
            obs, reward, *_ = env.step(env.action_space.sample() * 10.0)
            assert env.observation_space.shape == obs.shape and np.isfinite(reward)
        finally:
            env.close()
    assert not (tmp_path / "MUJOCO_LOG.TXT").exists(), "MuJoCo warnings go to logging, not into the working directory"


def test_unknown_task_is_a_clear_error():
    with pytest.raises(ValueError, match="known: mujoco_halfcheetah"):
        make_mujoco_env("mujoco_cheetah")


def test_actions_are_clipped_to_the_bounds():
    inner = RecordingEnv(low=[-1.0, -0.4, 0.0], high=[1.0, 0.4, 2.0])
    env = ClipActionToBounds(inner)
    assert env.action_space == inner.action_space, "the policy still sees the real bounds"
    env.reset(seed=0)
    env.step(np.array([5.0, -3.0, 1.5], np.float32))
    np.testing.assert_array_equal(inner.actions[-1], np.array([1.0, -0.4, 1.5], np.float32))
    assert inner.actions[-1].dtype == np.float32


def test_humanoid_never_sees_actions_beyond_its_bounds():
    env = make_mujoco_env("mujoco_humanoid")
    try:
        env.reset(seed=0)
        seen = []
        original_step = env.env.step
        env.env.step = lambda a: (seen.append(np.array(a)), original_step(a))[1]
        env.step(np.full(env.action_space.shape, 3.0, np.float32))
        assert np.all(seen[0] <= env.action_space.high) and np.allclose(seen[0], 0.4)
    finally:
        env.close()


def test_training_defaults():
    cfg = parse_mujoco_args(["--env=mujoco_hopper"])
    assert cfg.normalize_input and cfg.value_bootstrap and not cfg.use_rnn
    assert cfg.encoder_mlp_layers == [64, 64] and cfg.rollout == 64
    assert cfg.gamma == 0.99 and cfg.learning_rate == pytest.approx(3e-4)
    assert cfg.env_frameskip == 1


def _rendering_problem() -> str | None:
    """None if an off-screen OpenGL backend renders here, else what went wrong (in a subprocess,
    so that a backend that crashes or hangs takes nothing down with it)."""
    probe = (
        "from sf_examples.mujoco.mujoco_envs import make_mujoco_env\n"
        "env = make_mujoco_env('mujoco_inverted_pendulum', render_mode='rgb_array')\n"
        "env.reset(seed=0)\n"
        "frame = env.render()\n"
        "assert frame is not None and frame.ndim == 3 and frame.max() > 0, frame\n"
        "env.close()\n"
    )
    try:
        proc = subprocess.run(
            [sys.executable, "-c", probe], check=False, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
        )
    except subprocess.TimeoutExpired:
        return "rendering hung for 60s"
    if proc.returncode != 0:
        return (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
    return None


@pytest.mark.timeout(150)
def test_train_then_enjoy_records_a_video(tmp_path):
    cfg = parse_mujoco_args(
        [
            "--env=mujoco_halfcheetah",
            "--experiment=cheetah_smoke",
            f"--train_dir={tmp_path}",
            "--serial_mode=True",
            "--device=cpu",
            "--num_workers=1",
            "--num_envs_per_worker=2",
            "--train_for_env_steps=4096",
            "--report_interval_sec=1",
            "--seed=1",
        ]
    )
    result = train_until(cfg)
    assert result["status"] == 0
    assert result["env_steps"] >= 4096
    assert result["policies"][0]["train_steps"] >= 1
    assert result["policies"][0]["num_episodes"] >= 2, "1000-step episodes (time limit) in each of the two envs"
    exp_dir = tmp_path / "cheetah_smoke"
    assert list((exp_dir / "checkpoint_p0").glob("checkpoint_*.pth"))

    problem = _rendering_problem()
    if problem is not None:
        pytest.skip(f"no off-screen OpenGL backend works here (tried MUJOCO_GL=egl): {problem}")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sf_examples.mujoco.enjoy_mujoco",
            "--env=mujoco_halfcheetah",
            "--experiment=cheetah_smoke",
            f"--train_dir={tmp_path}",
            "--device=cpu",
            "--no_render",
            "--save_video",
            "--video_frames=30",
            "--max_num_episodes=1",
        ],
        check=False,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert re.search(r"Mean return [-\d.]+ ± [\d.]+, mean length [\d.]+ ± [\d.]+ \(1 episode\)", proc.stdout), (
        proc.stdout
    )
    assert "mean length 1000.00" in proc.stdout, "the cheetah runs until the time limit"
    cv2 = pytest.importorskip("cv2", reason="reading the video needs opencv-python-headless")
    capture = cv2.VideoCapture(str(exp_dir / "replay.mp4"))
    assert capture.isOpened()
    frames = 0
    while True:
        ok, image = capture.read()
        if not ok:
            break
        frames += 1
        assert image.max() > 0, "a rendered frame is not black"
    capture.release()
    assert frames == 30
