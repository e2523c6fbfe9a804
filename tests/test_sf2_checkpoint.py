"""sample-factory 2.x checkpoints load, play and resume here, and ours convert to 2.x's layout.

The 2.x key layout below was read from sample-factory 2.1.1's own models (a conv + measurements
encoder with a GRU on 128x72 Doom-like observations, `--normalize_input=True`); the fixture
writes a checkpoint in that layout and the tests check it is understood here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from sample_factory.cfg.experiment import experiment_dir, save_cfg
from sample_factory.enjoy import enjoy
from sample_factory.envs.env_utils import register_env
from sample_factory.model.actor_critic import create_actor_critic
from sample_factory.utils.checkpoint import checkpoint_dir, checkpoint_name, load_latest_checkpoint, save_atomically
from sample_factory.utils.sf2_checkpoint import from_sf2, is_sf2_checkpoint, to_sf2
from sf_examples.train_gym_env import parse_gym_args

pytestmark = pytest.mark.timeout(120)
REPO_ROOT = Path(__file__).resolve().parents[1]

SF2_CONV_GRU_LAYOUT = {
    "obs_normalizer.running_mean_std.running_mean_std.measurements.running_mean": [8],
    "obs_normalizer.running_mean_std.running_mean_std.measurements.running_var": [8],
    "obs_normalizer.running_mean_std.running_mean_std.measurements.count": [1],
    "obs_normalizer.running_mean_std.running_mean_std.obs.running_mean": [3, 72, 128],
    "obs_normalizer.running_mean_std.running_mean_std.obs.running_var": [3, 72, 128],
    "obs_normalizer.running_mean_std.running_mean_std.obs.count": [1],
    "returns_normalizer.running_mean": [1],
    "returns_normalizer.running_var": [1],
    "returns_normalizer.count": [1],
    "encoder.encoders.measurements.mlp_head.0.weight": [512, 8],
    "encoder.encoders.measurements.mlp_head.0.bias": [512],
    "encoder.encoders.measurements.mlp_head.2.weight": [512, 512],
    "encoder.encoders.measurements.mlp_head.2.bias": [512],
    "encoder.encoders.obs.enc.conv_head.0.weight": [32, 3, 8, 8],
    "encoder.encoders.obs.enc.conv_head.0.bias": [32],
    "encoder.encoders.obs.enc.conv_head.2.weight": [64, 32, 4, 4],
    "encoder.encoders.obs.enc.conv_head.2.bias": [64],
    "encoder.encoders.obs.enc.conv_head.4.weight": [128, 64, 3, 3],
    "encoder.encoders.obs.enc.conv_head.4.bias": [128],
    "encoder.encoders.obs.enc.mlp_layers.0.weight": [512, 2304],
    "encoder.encoders.obs.enc.mlp_layers.0.bias": [512],
    "core.core.weight_ih_l0": [1536, 1024],
    "core.core.weight_hh_l0": [1536, 512],
    "core.core.bias_ih_l0": [1536],
    "core.core.bias_hh_l0": [1536],
    "critic_linear.weight": [1, 512],
    "critic_linear.bias": [1],
    "action_parameterization.distribution_linear.weight": [5, 512],
    "action_parameterization.distribution_linear.bias": [5],
}


class DoomLikeEnv(gym.Env):
    """Doom's observation layout (screen + measurements) with a trivial task, 30 steps an episode."""

    observation_space = gym.spaces.Dict(
        {
            "obs": gym.spaces.Box(0, 255, (3, 72, 128), np.uint8),
            "measurements": gym.spaces.Box(-1.0, 1.0, (8,), np.float32),
        }
    )
    action_space = gym.spaces.Discrete(5)

    def _obs(self):
        return {"obs": np.full((3, 72, 128), 8 * self.t, np.uint8), "measurements": np.zeros(8, np.float32)}

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        self.t += 1
        return self._obs(), float(action == 2), False, self.t >= 30, {}


def make_doom_like(full_env_name, cfg=None, env_config=None, render_mode=None):
    return DoomLikeEnv()


def doom_like_argv(train_dir, experiment="sf2_conv"):
    return [
        "--env=doom_like",
        f"--experiment={experiment}",
        f"--train_dir={train_dir}",
        "--use_rnn=True",
        "--normalize_input=True",
        "--normalize_input_keys",
        "obs",
        "measurements",
        "--encoder_conv_mlp_layers",
        "512",
        "--encoder_mlp_layers",
        "512",
        "512",
        "--device=cpu",
    ]


@pytest.fixture
def sf2_experiment(tmp_path):
    """An experiment folder holding a checkpoint in 2.x's layout (a 2.x run's file, written here)."""
    register_env("doom_like", make_doom_like)
    cfg = parse_gym_args(doom_like_argv(tmp_path))
    env = DoomLikeEnv()
    torch.manual_seed(0)
    model = create_actor_critic(cfg, env.observation_space, env.action_space)
    model.obs_normalizer(
        {"obs": torch.randint(0, 255, (16, 3, 72, 128)), "measurements": torch.randn(16, 8)}, update_stats=True
    )
    ours = {"model": model.state_dict(), "training_state": {"train_step": 60, "env_steps": 61440}}
    sf2_state = to_sf2(ours)
    exp_dir = experiment_dir(cfg)
    save_cfg(cfg, exp_dir)
    save_atomically(sf2_state, checkpoint_dir(exp_dir, 0) / checkpoint_name(60, 61440))
    return tmp_path, model, sf2_state


def test_our_model_converts_to_2x_layout_exactly(sf2_experiment):
    _, _, sf2_state = sf2_experiment
    assert is_sf2_checkpoint(sf2_state)
    assert {k: list(v.shape) for k, v in sf2_state["model"].items()} == SF2_CONV_GRU_LAYOUT
    assert (sf2_state["train_step"], sf2_state["env_steps"]) == (60, 61440)


def test_a_2x_checkpoint_loads_with_every_tensor_in_place(sf2_experiment):
    train_dir, model, _ = sf2_experiment
    state, _ = load_latest_checkpoint(checkpoint_dir(train_dir / "sf2_conv", 0))
    assert state["training_state"]["env_steps"] == 61440
    for key, tensor in model.state_dict().items():
        torch.testing.assert_close(state["model"][key], tensor, msg=key)
    assert from_sf2(to_sf2(state), 1)["model"].keys() == state["model"].keys()


def test_a_2x_checkpoint_plays_and_resumes(sf2_experiment):
    train_dir, _, _ = sf2_experiment
    argv = doom_like_argv(train_dir)
    status, mean_return = enjoy(parse_gym_args(argv + ["--no_render", "--max_num_episodes=1"], evaluation=True))
    assert status == 0 and mean_return is not None

    from training import train_until

    result = train_until(
        parse_gym_args(argv + ["--serial_mode=True", "--train_for_env_steps=62000", "--batch_size=64"])
    )
    assert result["status"] == 0
    assert result["env_steps"] >= 61440, "resumed from the 2.x checkpoint's env steps"
    assert result["env_steps_this_run"] < result["env_steps"]


def test_the_convert_command_goes_both_ways(sf2_experiment, tmp_path):
    train_dir, model, _ = sf2_experiment
    src = train_dir / "sf2_conv"
    ours_dir, back_dir = tmp_path / "ours", tmp_path / "back"

    def convert(to, a, b):
        return subprocess.run(
            [sys.executable, "-m", "sample_factory.convert_checkpoint", f"--to={to}", str(a), str(b)],
            cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    assert convert("sf", src, ours_dir).returncode == 0
    converted = torch.load(next((ours_dir / "checkpoint_p0").glob("*.pth")), weights_only=True)
    assert not is_sf2_checkpoint(converted) and converted["model"].keys() == model.state_dict().keys()
    assert convert("sf2", ours_dir, back_dir).returncode == 0
    back = torch.load(next((back_dir / "checkpoint_p0").glob("*.pth")), weights_only=True)
    assert set(back["model"]) == set(SF2_CONV_GRU_LAYOUT)
    missing = convert("sf", tmp_path / "nowhere", tmp_path / "x")
    assert missing.returncode == 2 and missing.stderr.startswith("error:")
