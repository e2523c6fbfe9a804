"""A custom encoder registered in the main process is used by the learner and the inference workers."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from training import train_until

from sample_factory.algo.utils.context import global_model_factory, reset_global_model_factory
from sample_factory.envs.create_env import obtain_env_info
from sample_factory.model.actor_critic import (
    ActorCritic,
    ActorCriticSharedWeights,
    create_actor_critic,
    default_make_actor_critic_func,
)
from sample_factory.model.encoder import Encoder
from sample_factory.utils.checkpoint import checkpoint_dir, load_latest_checkpoint
from sf_examples.train_gym_env import parse_gym_args

pytestmark = pytest.mark.timeout(120)


class TinyCustomEncoder(Encoder):
    def __init__(self, cfg, obs_space):
        super().__init__(cfg)
        size = obs_space["obs"].shape[0]
        self.custom_layer = nn.Sequential(nn.Linear(size, 16), nn.Tanh())

    def forward(self, obs_dict):
        return self.custom_layer(obs_dict["obs"])

    def get_out_size(self) -> int:
        return 16


def make_tiny_encoder(cfg, obs_space):
    return TinyCustomEncoder(cfg, obs_space)


@pytest.fixture
def custom_encoder():
    reset_global_model_factory()
    global_model_factory().register_encoder_factory(make_tiny_encoder)
    yield
    reset_global_model_factory()


def test_custom_encoder_reaches_worker_processes(tmp_path, custom_encoder):
    cfg = parse_gym_args(
        [
            "--env=CartPole-v1",
            f"--train_dir={tmp_path}",
            "--experiment=custom",
            "--serial_mode=False",
            "--train_for_env_steps=20000",
        ]
    )
    result = train_until(cfg)
    assert result["status"] == 0 and result["policies"][0]["train_steps"] > 0
    state, _ = load_latest_checkpoint(checkpoint_dir(tmp_path / "custom", 0))
    assert any("custom_layer" in key for key in state["model"]), "the learner built the default encoder"
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def test_custom_env_custom_model_example_trains(tmp_path):
    from sf_examples import train_custom_env_custom_model as example

    reset_global_model_factory()
    try:
        example.register_custom_components()
        cfg = example.parse_custom_args(
            [
                f"--train_dir={tmp_path}",
                "--experiment=example",
                "--serial_mode=True",
                "--train_for_env_steps=40000",
                "--seed=1",
            ]
        )
        # Without memory the expected return is 0; measured: the GRU model passes 0.9 after 4k-10k env steps
        # (seeds 1-8). Unseeded, the init came from whatever the earlier tests left in torch's RNG and
        # once, after the 2.x suite, did not learn in 40k steps: seeded, the test is the same every run.
        result = train_until(cfg, goal_reward=0.9, min_episodes=100)
    finally:
        reset_global_model_factory()
    assert result["status"] == 0
    # reports come every few seconds: on a loaded machine the last one may precede the goal
    mean = result["policies"][0]["mean_reward"]
    assert result["steps_to_goal"] is not None or mean >= 0.9, f"mean return {mean:.2f} < 0.9"
    state, _ = load_latest_checkpoint(checkpoint_dir(tmp_path / "example", 0))
    assert any(".block." in key for key in state["model"]), "the example's encoder was not used"


class TaggedActorCritic(ActorCriticSharedWeights):
    """The default model with one extra, recognizable parameter."""

    def __init__(self, model_factory, obs_space, action_space, cfg):
        super().__init__(model_factory, obs_space, action_space, cfg)
        self.custom_tag = nn.Parameter(torch.zeros(1))


def make_tagged_actor_critic(cfg, obs_space, action_space):
    """An actor-critic factory with sample-factory 2.x's signature."""
    return TaggedActorCritic(global_model_factory(), obs_space, action_space, cfg)


def make_tagged_actor_critic_legacy(model_factory, obs_space, action_space, cfg):
    """The signature an earlier version of this project called actor-critic factories with."""
    return TaggedActorCritic(model_factory, obs_space, action_space, cfg)


@pytest.mark.parametrize("factory", [make_tagged_actor_critic, make_tagged_actor_critic_legacy], ids=["2.x", "legacy"])
def test_actor_critic_factory_is_called_with_its_own_signature(factory):
    reset_global_model_factory()
    try:
        global_model_factory().register_actor_critic_factory(factory)
        cfg = parse_gym_args(["--env=CartPole-v1"])
        env_info = obtain_env_info(cfg)
        model = create_actor_critic(cfg, env_info.obs_space, env_info.action_space)
    finally:
        reset_global_model_factory()
    assert isinstance(model, TaggedActorCritic)
    assert isinstance(default_make_actor_critic_func(cfg, env_info.obs_space, env_info.action_space), ActorCritic)


def test_actor_critic_factory_reaches_worker_processes(tmp_path):
    reset_global_model_factory()
    try:
        global_model_factory().register_actor_critic_factory(make_tagged_actor_critic)
        cfg = parse_gym_args(
            [
                "--env=CartPole-v1",
                f"--train_dir={tmp_path}",
                "--experiment=tagged",
                "--serial_mode=False",
                "--train_for_env_steps=5000",
            ]
        )
        result = train_until(cfg)
    finally:
        reset_global_model_factory()
    assert result["status"] == 0 and result["policies"][0]["train_steps"] > 0
    state, _ = load_latest_checkpoint(checkpoint_dir(tmp_path / "tagged", 0))
    assert "custom_tag" in state["model"]
