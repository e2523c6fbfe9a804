"""sample-factory 2.x scripts, written as its users write them, run here unchanged: every documented
import path, the 2.x contracts (positional env factories, channels-first images to user encoders,
observers, return values) and the Hugging Face course's VizDoom cells."""

from __future__ import annotations

import functools
import importlib

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

pytestmark = pytest.mark.timeout(180)

# (module, names): the 2.x surface of ../shared/API.md and ISSUE 14.
DOCUMENTED_2X_SURFACE = [
    ("sample_factory.cfg.arguments", ["parse_sf_args", "parse_full_cfg", "load_from_checkpoint", "maybe_load_from_checkpoint"]),
    ("sample_factory.train", ["run_rl", "make_runner"]),
    ("sample_factory.enjoy", ["enjoy"]),
    ("sample_factory.envs.env_utils", ["register_env", "RewardShapingInterface", "TrainingInfoInterface", "find_wrapper_interface"]),
    ("sample_factory.envs.create_env", ["create_env"]),
    ("sample_factory.envs.env_wrappers", ["ResizeWrapper", "RewardScalingWrapper", "TimeLimitWrapper", "PixelFormatChwWrapper",
                                          "NoopResetEnv", "MaxAndSkipEnv", "EpisodicLifeEnv", "FireResetEnv", "ClipRewardEnv",
                                          "NumpyObsWrapper", "EpisodeCounterWrapper", "has_image_observations"]),
    ("sample_factory.algo.utils.context", ["global_model_factory", "global_env_registry"]),
    ("sample_factory.algo.utils.torch_utils", ["calc_num_elements", "to_torch_dtype", "to_scalar", "synchronize"]),
    ("sample_factory.algo.utils.misc", ["ExperimentStatus", "EPS"]),
    ("sample_factory.algo.utils.action_distributions", ["get_action_distribution", "calc_num_action_parameters",
                                                         "is_continuous_action_space"]),
    ("sample_factory.envs.pettingzoo_envs", ["PettingZooParallelEnv"]),
    ("sample_factory.huggingface.huggingface_utils", ["generate_model_card", "push_to_hf", "load_from_hf"]),
    ("sample_factory.huggingface.push_to_hub", ["main"]),
    ("sample_factory.huggingface.load_from_hub", ["main"]),
    ("sample_factory.algo.utils.tensor_dict", ["TensorDict", "cat_tensordicts", "clone_tensordict", "to_numpy"]),
    ("sample_factory.algo.utils.env_info", ["EnvInfo", "extract_env_info", "obtain_env_info_in_a_separate_process"]),
    ("sample_factory.algo.utils.gymnasium_utils", ["patch_non_gymnasium_env", "convert_space"]),
    ("sample_factory.algo.utils.rl_utils", []),
    ("sample_factory.algo.utils.running_mean_std", ["RunningMeanStd"]),
    ("sample_factory.algo.runners.runner", ["AlgoObserver", "Runner"]),
    ("sample_factory.algo.runners.runner_serial", ["SerialRunner"]),
    ("sample_factory.algo.runners.runner_parallel", ["ParallelRunner"]),
    ("sample_factory.model.encoder", ["Encoder", "MlpEncoder", "ConvEncoder", "ResnetEncoder", "make_img_encoder",
                                      "default_make_encoder_func"]),
    ("sample_factory.model.core", ["ModelCore", "ModelCoreRNN", "default_make_core_func"]),
    ("sample_factory.model.decoder", ["Decoder", "MlpDecoder", "default_make_decoder_func"]),
    ("sample_factory.model.actor_critic", ["ActorCritic", "ActorCriticSharedWeights", "ActorCriticSeparateWeights",
                                           "create_actor_critic", "default_make_actor_critic_func"]),
    ("sample_factory.model.model_factory", ["ModelFactory"]),
    ("sample_factory.model.model_utils", ["nonlinearity", "create_mlp"]),
    ("sample_factory.model.action_parameterization", ["ActionsParameterization", "ActionParameterizationDefault",
                                                      "ActionParameterizationContinuousNonAdaptiveStddev"]),
    ("sample_factory.utils.utils", ["log", "experiment_dir", "str2bool", "ensure_dir_exists", "summaries_dir", "cfg_file"]),
    ("sample_factory.utils.typing", ["Config", "Env", "PolicyID", "ObsSpace", "ActionSpace", "StatusCode"]),
    ("sample_factory.utils.timing", ["Timing"]),
    ("sample_factory.utils.dicts", ["iterate_recursively", "list_of_dicts_to_dict_of_lists", "get_first_present"]),
    ("sample_factory.utils.gpu_utils", ["get_available_gpus", "gpus_for_process", "set_gpus_for_process"]),
    ("sample_factory.utils.attr_dict", ["AttrDict"]),
    ("sf_examples.vizdoom.doom.doom_params", ["add_doom_env_args", "doom_override_defaults"]),
    ("sf_examples.vizdoom.doom.doom_utils", ["DOOM_ENVS", "make_doom_env_from_spec", "doom_env_by_name"]),
    ("sf_examples.vizdoom.doom.doom_model", ["make_vizdoom_encoder"]),
    ("sf_examples.vizdoom.train_vizdoom", ["parse_vizdoom_cfg", "register_vizdoom_components", "register_vizdoom_envs",
                                           "register_vizdoom_models"]),
    ("sf_examples.atari.atari_utils", ["ATARI_ENVS", "AtariSpec", "atari_env_by_name", "make_atari_env"]),
    ("sf_examples.atari.train_atari", ["parse_atari_args", "register_atari_components"]),
    ("sf_examples.mujoco.mujoco_utils", ["MUJOCO_ENVS", "MujocoSpec", "mujoco_env_by_name", "make_mujoco_env"]),
    ("sf_examples.mujoco.train_mujoco", ["parse_mujoco_cfg", "register_mujoco_components"]),
    ("sf_examples.train_custom_env_custom_model", ["parse_custom_args", "register_custom_components"]),
    ("sf_examples.train_custom_multi_env", ["parse_custom_args", "register_custom_components", "make_custom_multi_env_func"]),
    ("sf_examples.enjoy_custom_env_custom_model", ["main"]),
]  # fmt: skip


@pytest.mark.parametrize(("module", "names"), DOCUMENTED_2X_SURFACE, ids=[m for m, _ in DOCUMENTED_2X_SURFACE])
def test_every_documented_2x_module_and_name_imports(module, names):
    imported = importlib.import_module(module)
    missing = [name for name in names if not hasattr(imported, name)]
    assert not missing, f"{module} lacks {missing}"


def test_2x_helpers_behave_as_in_2x(tmp_path):
    from sample_factory.algo.utils.misc import ExperimentStatus
    from sample_factory.algo.utils.tensor_dict import TensorDict, cat_tensordicts
    from sample_factory.algo.utils.torch_utils import calc_num_elements
    from sample_factory.utils.attr_dict import AttrDict
    from sample_factory.utils.utils import experiment_dir, str2bool

    assert (ExperimentStatus.SUCCESS, ExperimentStatus.FAILURE, ExperimentStatus.INTERRUPTED) == (0, 1, 2)
    assert str2bool("True") is True and str2bool("0") is False
    path = experiment_dir(AttrDict(train_dir=str(tmp_path), experiment="exp"))
    assert isinstance(path, str) and (tmp_path / "exp").is_dir()
    assert calc_num_elements(nn.Conv2d(3, 8, 3), (3, 10, 10)) == 8 * 8 * 8
    batch = TensorDict(obs=TensorDict(obs=torch.arange(8.0).reshape(4, 2)), rewards=torch.arange(4.0))
    half = batch[:2]
    assert half["obs"]["obs"].shape == (2, 2) and torch.equal(half["rewards"], torch.tensor([0.0, 1.0]))
    batch[2:] = half
    assert torch.equal(batch["rewards"], torch.tensor([0.0, 1.0, 0.0, 1.0]))
    assert cat_tensordicts([half, half])["obs"]["obs"].shape == (4, 2)


def test_an_old_gym_env_is_patched_to_the_gymnasium_api():
    from sample_factory.algo.utils.gymnasium_utils import patch_non_gymnasium_env

    class OldGymEnv:  # gym < 0.26: reset() -> obs, step() -> (obs, reward, done, info)
        observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        action_space = gym.spaces.Discrete(2)

        def reset(self):
            self.t = 0
            return np.zeros(2, np.float32)

        def step(self, action):
            self.t += 1
            return np.zeros(2, np.float32), 1.0, self.t >= 3, {"TimeLimit.truncated": self.t >= 3}

    env = patch_non_gymnasium_env(OldGymEnv())
    obs, info = env.reset(seed=1)
    assert obs.shape == (2,) and info == {}
    results = [env.step(0) for _ in range(3)]
    assert [len(r) for r in results] == [5, 5, 5]
    assert results[-1][2:4] == (False, True), "a time limit is a truncation, not a termination"


def test_find_wrapper_interface_finds_the_wrapper_that_implements_it():
    from sample_factory.envs.env_utils import RewardShapingInterface, find_wrapper_interface

    class Shaping(gym.Wrapper, RewardShapingInterface):
        def get_default_reward_shaping(self):
            return {"a": 1.0}

        def set_reward_shaping(self, reward_shaping, agent_idx):
            self.shaping = reward_shaping

    env = gym.wrappers.TimeLimit(Shaping(gym.make("CartPole-v1")), 10)
    found = find_wrapper_interface(env, RewardShapingInterface)
    assert isinstance(found, Shaping) and found.get_default_reward_shaping() == {"a": 1.0}
    assert find_wrapper_interface(gym.make("CartPole-v1"), RewardShapingInterface) is None


# --- user scripts -------------------------------------------------------------------------------


def make_cartpole_2x(full_env_name, cfg=None, _env_config=None, render_mode=None):
    """A factory as 2.1.1's own examples write it: the third parameter is named `_env_config`."""
    return gym.make("CartPole-v1", render_mode=render_mode)


def cartpole_2x_cfg(tmp_path, *flags):
    from sample_factory.cfg.arguments import parse_full_cfg, parse_sf_args
    from sample_factory.envs.env_utils import register_env

    register_env("cartpole_2x", make_cartpole_2x)
    argv = ["--env=cartpole_2x", "--experiment=sf2", f"--train_dir={tmp_path}", "--device=cpu", *flags]
    parser, _ = parse_sf_args(argv)
    return parse_full_cfg(parser, argv)


class RecordingObserver:
    """An AlgoObserver subclass is what 2.x users register; the hooks it saw are kept in order."""

    def __new__(cls):
        from sample_factory.algo.runners.runner import AlgoObserver

        class Recorder(AlgoObserver):
            def __init__(self):
                self.calls = []

            def on_init(self, runner):
                self.calls.append("on_init")

            def on_connect_components(self, runner):
                self.calls.append("on_connect_components")

            def on_start(self, runner):
                self.calls.append("on_start")

            def on_training_step(self, runner, training_iteration_since_resume):
                self.calls.append(("on_training_step", training_iteration_since_resume))

            def extra_summaries(self, runner, policy_id, env_steps, writer):
                writer.add_scalar("observer/env_steps", env_steps, env_steps)
                self.calls.append("extra_summaries")

            def on_stop(self, runner):
                self.calls.append("on_stop")

        return Recorder()


@pytest.mark.parametrize("serial", [True, False], ids=["SerialRunner", "ParallelRunner"])
def test_2x_runner_classes_are_built_from_the_config_alone_and_train(tmp_path, serial):
    """2.x scripts build `SerialRunner(cfg)` / `ParallelRunner(cfg)` themselves; make_runner picks the same class."""
    from sample_factory.algo.runners.runner_parallel import ParallelRunner
    from sample_factory.algo.runners.runner_serial import SerialRunner
    from sample_factory.train import make_runner

    cls = SerialRunner if serial else ParallelRunner
    cfg = cartpole_2x_cfg(tmp_path, f"--serial_mode={not serial}", "--train_for_env_steps=3000", "--auto_tune=False")
    runner = cls(cfg)
    assert runner.cfg.serial_mode is serial, "the class decides the mode, as in 2.x"
    assert runner.init() == 0 and runner.run() == 0
    assert runner.stats.total_env_steps >= 3000
    assert (tmp_path / "sf2" / "checkpoint_p0").is_dir()
    _, picked = make_runner(cartpole_2x_cfg(tmp_path / "b", f"--serial_mode={serial}"))
    assert isinstance(picked, cls)


def test_the_2x_runner_pattern_with_an_observer_and_a_2x_env_factory(tmp_path):
    from sample_factory.algo.utils.misc import ExperimentStatus
    from sample_factory.train import make_runner

    cfg = cartpole_2x_cfg(tmp_path, "--serial_mode=True", "--train_for_env_steps=6000", "--report_interval_sec=0.5")
    cfg, runner = make_runner(cfg)
    observer = RecordingObserver()
    runner.register_observer(observer)
    episodes = []
    runner.register_episodic_stats_handler(
        lambda r, episode, policy_id: episodes.append((policy_id, episode["reward"]))
    )
    status = runner.init()
    assert status == ExperimentStatus.SUCCESS
    status = runner.run()
    assert status == ExperimentStatus.SUCCESS
    names = [c if isinstance(c, str) else c[0] for c in observer.calls]
    assert names[:3] == ["on_init", "on_connect_components", "on_start"] and names[-1] == "on_stop"
    steps = [c[1] for c in observer.calls if isinstance(c, tuple)]
    assert steps and steps == list(range(1, len(steps) + 1)), "every training iteration, counted"
    assert "extra_summaries" in names
    assert episodes and all(policy_id == 0 for policy_id, _ in episodes)
    tfevents = list((tmp_path / "sf2" / ".summary" / "0").glob("events.out.tfevents.*"))
    assert tfevents and any(b"observer/env_steps" in f.read_bytes() for f in tfevents)


def test_an_observer_that_raises_stops_the_run_with_a_failure(tmp_path, caplog):
    from sample_factory.algo.runners.runner import AlgoObserver
    from sample_factory.train import make_runner

    class Broken(AlgoObserver):
        def on_training_step(self, runner, training_iteration_since_resume):
            raise RuntimeError("observer bug")

    cfg = cartpole_2x_cfg(tmp_path, "--serial_mode=True", "--train_for_env_steps=1000000")
    _, runner = make_runner(cfg)
    runner.register_observer(Broken())
    assert runner.run() == 1
    assert "Observer Broken failed in on_training_step" in caplog.text
    assert runner.stats.total_env_steps < 100_000, "the run stopped at the first failing step"


class TinyImageEnv(gym.Env):
    """8x8 RGB frames, channels first as the library expects; reward for action 1 on bright frames."""

    observation_space = gym.spaces.Box(0, 255, (3, 8, 8), np.uint8)
    action_space = gym.spaces.Discrete(2)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._frame(), {}

    def _frame(self):
        self.bright = bool(self.np_random.integers(2))
        return np.full((3, 8, 8), 200 if self.bright else 20, np.uint8)

    def step(self, action):
        reward = 1.0 if int(action) == int(self.bright) else 0.0
        self.t += 1
        return self._frame(), reward, False, self.t >= 16, {}


class ViewingEncoder(nn.Module):
    """A 2.x-style user encoder: flattens its image with `.view()`, which needs contiguous NCHW."""

    def __new__(cls, cfg, obs_space):
        from sample_factory.model.encoder import Encoder

        class Impl(Encoder):
            def __init__(self):
                super().__init__(cfg)
                self.linear = nn.Linear(3 * 8 * 8, 16)

            def forward(self, obs_dict):
                x = obs_dict["obs"]
                assert x.shape[1:] == (3, 8, 8), f"channels first, got {tuple(x.shape)}"
                return torch.relu(self.linear(x.view(x.size(0), -1)))

            def get_out_size(self):
                return 16

        return Impl()


def test_a_user_encoder_gets_contiguous_channels_first_images_in_cpu_training(tmp_path):
    from training import train_until

    from sample_factory.algo.utils.context import global_model_factory, reset_global_model_factory
    from sample_factory.envs.env_utils import register_env
    from sf_examples.train_gym_env import parse_gym_args

    register_env("tiny_image", lambda name, cfg=None, env_config=None, render_mode=None: TinyImageEnv())
    reset_global_model_factory()
    try:
        global_model_factory().register_encoder_factory(ViewingEncoder)
        cfg = parse_gym_args(
            ["--env=tiny_image", f"--train_dir={tmp_path}", "--experiment=img", "--serial_mode=True",
             "--train_for_env_steps=6000", "--device=cpu", "--obs_scale=255"]
        )  # fmt: skip
        result = train_until(cfg)
    finally:
        reset_global_model_factory()
    assert result["status"] == 0 and result["policies"][0]["train_steps"] > 0


def test_symmetric_kl_exploration_loss_trains_and_matches_its_definition(tmp_path):
    from training import train_until

    from sample_factory.model.action_distributions import CategoricalActionDistribution

    logits = torch.randn(5, 4)
    mask = torch.tensor([[1, 1, 1, 1]] * 4 + [[1, 0, 1, 0]])
    dist = CategoricalActionDistribution(logits, mask)
    for row in range(5):
        allowed = mask[row].bool()
        p = torch.softmax(logits[row][allowed], dim=0)
        u = torch.full_like(p, 1.0 / len(p))
        expected = (u * (u / p).log()).sum() + (p * (p / u).log()).sum()
        torch.testing.assert_close(dist.symmetric_kl_with_uniform_prior()[row], expected)

    cfg = cartpole_2x_cfg(
        tmp_path, "--serial_mode=True", "--train_for_env_steps=200000", "--exploration_loss=symmetric_kl"
    )
    result = train_until(cfg, goal_reward=100.0)
    assert result["steps_to_goal"] is not None, f"mean return {result['policies'][0]['mean_reward']:.1f} < 100"
    assert "symmetric_kl" in result["runner"].stats.learner_stats[0]


def test_symmetric_kl_with_continuous_actions_is_a_one_line_error(tmp_path, capsys):
    from sample_factory.train import run_rl
    from sf_examples.train_gym_env import parse_gym_args

    argv = ["--env=Pendulum-v1", f"--train_dir={tmp_path}", "--exploration_loss=symmetric_kl"]
    assert run_rl(parse_gym_args(argv)) == 2
    assert "symmetric_kl needs discrete actions" in capsys.readouterr().err


# --- the Hugging Face course: VizDoom health gathering ------------------------------------------


def test_the_course_cells_train_and_evaluate_health_gathering_supreme(tmp_path, monkeypatch):
    """The course's code cells as its notebook has them; only the budget and worker counts are
    small enough for 2 cores. Its enjoy cell must report a reward on 2.x's scale (a few points
    for a barely trained agent, where this project's old scenario reported hundreds)."""
    monkeypatch.chdir(tmp_path)
    from sample_factory.algo.utils.context import global_model_factory, reset_global_model_factory
    from sample_factory.cfg.arguments import parse_full_cfg, parse_sf_args
    from sample_factory.envs.env_utils import register_env
    from sample_factory.train import run_rl
    from sf_examples.vizdoom.doom.doom_model import make_vizdoom_encoder
    from sf_examples.vizdoom.doom.doom_params import add_doom_env_args, doom_override_defaults
    from sf_examples.vizdoom.doom.doom_utils import DOOM_ENVS, make_doom_env_from_spec

    def register_vizdoom_envs():
        for env_spec in DOOM_ENVS:
            make_env_func = functools.partial(make_doom_env_from_spec, env_spec)
            register_env(env_spec.name, make_env_func)

    def register_vizdoom_models():
        global_model_factory().register_encoder_factory(make_vizdoom_encoder)

    def register_vizdoom_components():
        register_vizdoom_envs()
        register_vizdoom_models()

    def parse_vizdoom_cfg(argv=None, evaluation=False):
        parser, _ = parse_sf_args(argv=argv, evaluation=evaluation)
        add_doom_env_args(parser)
        doom_override_defaults(parser)
        final_cfg = parse_full_cfg(parser, argv)
        return final_cfg

    reset_global_model_factory()
    try:
        register_vizdoom_components()
        env = "doom_health_gathering_supreme"
        cfg = parse_vizdoom_cfg(
            argv=[f"--env={env}", "--num_workers=2", "--num_envs_per_worker=2", "--train_for_env_steps=8000",
                  f"--train_dir={tmp_path}", "--device=cpu"]
        )  # fmt: skip
        status = run_rl(cfg)
        assert status == 0

        from sample_factory.enjoy import enjoy

        cfg = parse_vizdoom_cfg(
            argv=[f"--env={env}", "--num_workers=1", "--save_video", "--no_render", "--max_num_episodes=2",
                  f"--train_dir={tmp_path}", "--device=cpu"],
            evaluation=True,
        )  # fmt: skip
        status, mean_reward = enjoy(cfg)
    finally:
        reset_global_model_factory()
    assert status == 0
    assert 0.0 < mean_reward < 30.0, f"{mean_reward}: 0.01 per tic alive, 2100 tics at most, plus medkits"
    assert list((tmp_path / "default_experiment").glob("*.mp4")), "the video the course's next cell shows"


def test_an_env_factory_that_cannot_reach_worker_processes_is_a_one_line_error(tmp_path, capsys):
    from sample_factory.envs.env_utils import register_env
    from sample_factory.train import run_rl
    from sf_examples.train_gym_env import parse_gym_args

    register_env("lambda_env", lambda name, cfg=None, env_config=None, render_mode=None: gym.make("CartPole-v1"))
    cfg = parse_gym_args(["--env=lambda_env", f"--train_dir={tmp_path}", "--serial_mode=False"])
    assert run_rl(cfg) == 2
    err = capsys.readouterr().err
    assert "cannot be sent to worker processes" in err and "--serial_mode=True" in err
    assert len(err.strip().splitlines()) == 1


def test_the_custom_multi_env_example_trains_and_its_custom_flag_acts(tmp_path):
    from training import train_until

    from sf_examples import train_custom_multi_env as example

    example.register_custom_components()
    cfg = example.parse_custom_args(
        [f"--train_dir={tmp_path}", "--experiment=multi", "--serial_mode=True", "--train_for_env_steps=4000",
         "--custom_env_num_agents=3"]
    )  # fmt: skip
    result = train_until(cfg)
    assert result["status"] == 0 and result["policies"][0]["num_episodes"] > 0
    assert result["runner"].env_info.num_agents == 3


@pytest.mark.parametrize(
    ("sf2_name", "task"), [("mujoco_walker", "Walker2d"), ("mujoco_doublependulum", "InvertedDoublePendulum")]
)
def test_2x_mujoco_names_and_the_v4_tasks_2x_trained_on(sf2_name, task):
    pytest.importorskip("mujoco")
    from sf_examples.mujoco.mujoco_envs import make_mujoco_env
    from sf_examples.mujoco.train_mujoco import parse_mujoco_args

    for version in ("v5", "v4"):
        env = make_mujoco_env(sf2_name, parse_mujoco_args([f"--env={sf2_name}", f"--mujoco_env_version={version}"]))
        try:
            assert env.unwrapped.spec.id == f"{task}-{version}"
        finally:
            env.close()


def test_2x_atari_names_play_the_same_game():
    pytest.importorskip("ale_py")
    from sf_examples.atari.atari_envs import game_of, sf2_atari_aliases

    aliases = sf2_atari_aliases()
    assert game_of("atari_spaceinvaders") == game_of("atari_space_invaders") == "space_invaders"
    assert aliases["atari_montezuma"] == "montezuma_revenge" and aliases["atari_kongfumaster"] == "kung_fu_master"


def test_the_examples_defaults_hooks_take_2x_arguments():
    """2.x's Atari and MuJoCo hooks are called as (env, parser); the one-argument form works too."""
    from sample_factory.cfg.arguments import parse_sf_args
    from sf_examples.atari.atari_params import atari_override_defaults
    from sf_examples.mujoco.mujoco_params import add_mujoco_env_args, mujoco_override_defaults

    for hook, key in [
        (atari_override_defaults, "encoder_conv_architecture"),
        (mujoco_override_defaults, "nonlinearity"),
    ]:
        two, _ = parse_sf_args(["--env=x"])
        one, _ = parse_sf_args(["--env=x"])
        hook("x", two)
        hook(one)
        assert two.get_default(key) == one.get_default(key) != parse_sf_args(["--env=x"])[0].get_default(key)
    parser, _ = parse_sf_args(["--env=x"])
    add_mujoco_env_args("mujoco_walker", parser)
    assert parser.get_default("mujoco_env_version") == "v5"


# sample-factory 2.x's doom_utils.DOOM_ENVS, in its order
SF2_DOOM_ENV_NAMES = (
    "doom_basic", "doom_two_colors_easy", "doom_two_colors_hard", "doom_dm", "doom_dwango5",
    "doom_my_way_home_flat_actions", "doom_defend_the_center_flat_actions", "doom_my_way_home",
    "doom_deadly_corridor", "doom_defend_the_center", "doom_defend_the_line", "doom_health_gathering",
    "doom_health_gathering_supreme", "doom_battle", "doom_battle2", "doom_duel_bots", "doom_deathmatch_bots",
    "doom_duel", "doom_deathmatch_full", "doom_benchmark",
)  # fmt: skip


def test_every_2x_doom_env_name_is_in_doom_envs_and_makes_an_env():
    """No engine starts here (that is tests/test_vizdoom.py's job): the names, specs and spaces."""
    from sf_examples.vizdoom.doom.doom_utils import DOOM_ENVS, doom_env_by_name, make_doom_env_from_spec
    from sf_examples.vizdoom.train_vizdoom import parse_vizdoom_cfg

    names = [spec.name for spec in DOOM_ENVS]
    assert len(names) == len(set(names))
    assert set(SF2_DOOM_ENV_NAMES) <= set(names), sorted(set(SF2_DOOM_ENV_NAMES) - set(names))
    for name in SF2_DOOM_ENV_NAMES:
        spec = doom_env_by_name(name)
        env = make_doom_env_from_spec(spec, name, parse_vizdoom_cfg([f"--env={name}"]), None)
        try:
            assert env.action_space is not None and "obs" in env.observation_space.spaces
        finally:
            env.close()
