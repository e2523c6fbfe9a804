"""Where sampling runs: --auto_tune (on by default) sizes the layout from a measured env step,
keeping what the user chose, and --set_workers_cpu_affinity pins each rollout worker to a core."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import gymnasium as gym
import numpy as np
import pytest
import torch

from sample_factory.algo.sampling import auto_tune as auto_tune_module
from sample_factory.algo.sampling.auto_tune import MAX_ENVS_PER_SPLIT, auto_tune, choose_layout, cpu_has_native_bf16
from sample_factory.cfg.arguments import parse_full_cfg, parse_sf_args, user_chosen_flags
from sample_factory.cfg.derived import env_seed, envs_per_split, global_env_id
from sample_factory.envs.create_env import obtain_env_info
from sample_factory.envs.env_utils import register_env
from sample_factory.runner.builder import slot_layout
from sample_factory.train import run_rl
from sample_factory.utils.attr_dict import AttrDict

pytestmark = pytest.mark.timeout(120)

CFG = AttrDict(worker_num_splits=2, rollout=32, num_batches_per_epoch=1, batch_size=256)


def test_every_env_of_a_run_gets_its_own_seed_and_id():
    cfg = AttrDict(seed=5, num_workers=4, num_envs_per_worker=256, worker_num_splits=2)
    per_split = envs_per_split(cfg)
    places = [(w, s, i) for w in range(cfg.num_workers) for s in range(cfg.worker_num_splits) for i in range(per_split)]
    seeds = {env_seed(cfg, w, s, i) for w, s, i in places}
    ids = {global_env_id(cfg, w, s * per_split + i) for w, s, i in places}
    assert len(seeds) == len(places)
    assert ids == set(range(cfg.num_workers * cfg.num_envs_per_worker))
    assert env_seed(AttrDict(cfg, seed=None), 1, 1, 1) is None
    assert not seeds & {env_seed(AttrDict(cfg, seed=6), w, s, i) for w, s, i in places}


def test_slow_env_gets_few_envs_stepped_one_by_one():
    layout = choose_layout(CFG, num_agents=1, env_step_sec=500e-6, cores=2)  # a Doom step
    assert layout.num_workers == 2
    assert layout.num_envs_per_worker == 16  # 8 per split: ~4 ms of env work hides a round trip
    assert not layout.batched_sampling
    assert layout.batch_size == CFG.batch_size, "the SGD steps per frame stay those of the defaults"
    assert layout.batch_size * layout.num_batches_per_epoch == 2 * 16 * 32 // 2


def test_image_env_gets_inference_batches_of_at_least_eight_per_split():
    slow_step = 2e-3  # 2 envs per split by the step rule alone
    assert choose_layout(CFG, num_agents=1, env_step_sec=slow_step, cores=2).num_envs_per_worker == 4
    layout = choose_layout(CFG, num_agents=1, env_step_sec=slow_step, cores=2, image_obs=True)
    assert layout.num_envs_per_worker == 16


def test_image_env_keeps_its_batch_size_unless_the_pipeline_holds_less_than_two():
    """A conv learner pays per sample: a bigger batch buys little speed and costs updates per frame."""
    kept = choose_layout(CFG, num_agents=1, env_step_sec=500e-6, cores=2, image_obs=True)
    assert kept.batch_size == CFG.batch_size < 2 * kept.num_envs_per_worker * 32 // 2
    capped = choose_layout(AttrDict(CFG, batch_size=4096), num_agents=1, env_step_sec=500e-6, cores=2, image_obs=True)
    assert capped.batch_size == 2 * capped.num_envs_per_worker * 32 // 2


def test_image_env_with_cpu_inference_steps_one_split_per_worker():
    """Inference then shares the cores with the envs: a second split would hide nothing, only
    double the envs in flight (memory, policy lag)."""
    layout = choose_layout(CFG, num_agents=1, env_step_sec=500e-6, cores=2, image_obs=True, cpu_inference=True)
    assert (layout.worker_num_splits, layout.num_envs_per_worker, layout.batch_size) == (1, 8, 256)
    typed = choose_layout(
        CFG,
        num_agents=1,
        env_step_sec=500e-6,
        cores=2,
        keep=frozenset({"worker_num_splits"}),
        image_obs=True,
        cpu_inference=True,
    )
    assert (typed.worker_num_splits, typed.num_envs_per_worker) == (2, 16)
    assert choose_layout(CFG, num_agents=1, env_step_sec=500e-6, cores=2, cpu_inference=True).worker_num_splits == 2


@pytest.mark.parametrize("env_step_sec", [2e-3, 500e-6, 250e-6, 20e-6])
def test_image_env_with_cpu_inference_gets_the_same_envs_whatever_the_probe_measured(env_step_sec):
    """A ViZDoom step's probe reads 270-640 us from run to run: the layout must not flip with it."""
    layout = choose_layout(CFG, num_agents=1, env_step_sec=env_step_sec, cores=2, image_obs=True, cpu_inference=True)
    assert (layout.num_envs_per_worker, layout.worker_num_splits, layout.batched_sampling) == (8, 1, False)


IMAGE = gym.spaces.Box(0, 255, (3, 72, 128), dtype=np.uint8)
VECTOR = gym.spaces.Box(-1.0, 1.0, (4,), dtype=np.float32)


@pytest.mark.parametrize(
    ("obs_space", "device", "native_bf16", "typed", "expected"),
    [
        (IMAGE, "cpu", True, False, True),
        (IMAGE, "cpu", False, False, False),  # bfloat16 without native instructions is slower
        (IMAGE, "cpu", True, True, False),  # --model_bf16=False typed: kept
        (VECTOR, "cpu", True, False, False),  # faster, but CartPole then learned slower per frame
        (IMAGE, "cuda", True, False, False),  # only where the model runs on the CPU
    ],
)
def test_auto_tune_runs_image_models_in_bf16_on_cpus_with_native_bf16(
    monkeypatch, obs_space, device, native_bf16, typed, expected
):
    monkeypatch.setattr(auto_tune_module, "measure_env_step_sec", lambda cfg: 500e-6)
    monkeypatch.setattr(auto_tune_module, "cpu_has_native_bf16", lambda: native_bf16)
    monkeypatch.setattr(auto_tune_module, "policy_device", lambda cfg: torch.device(device))
    cfg = AttrDict(
        CFG,
        encoder_mlp_layers=[512, 512],
        use_rnn=False,
        num_workers=2,
        num_envs_per_worker=2,
        batched_sampling=False,
        model_bf16=False,
        auto_tune=True,
        cli_args={"model_bf16": False} if typed else {},
    )
    env_info = AttrDict(num_agents=1, obs_space=gym.spaces.Dict({"obs": obs_space}))
    tuned, chosen = auto_tune(cfg, env_info)
    assert cfg.model_bf16 is False, "the cfg given is left as it is"
    cfg = tuned
    assert cfg.model_bf16 is expected
    assert ("model_bf16" in chosen) is expected


def test_native_bf16_is_read_from_the_cpu_flags(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx512f avx512_bf16 avx512_vnni\n")
    assert cpu_has_native_bf16(str(cpuinfo))
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f\n")
    assert not cpu_has_native_bf16(str(cpuinfo))
    assert not cpu_has_native_bf16(str(tmp_path / "missing"))


def test_fast_env_is_vectorized_with_many_envs():
    layout = choose_layout(CFG, num_agents=1, env_step_sec=5e-6, cores=4)  # a CartPole step
    assert layout.num_envs_per_worker == 2 * MAX_ENVS_PER_SPLIT
    assert layout.batched_sampling
    assert layout.batch_size == CFG.batch_size
    assert layout.batch_size * layout.num_batches_per_epoch == 4 * layout.num_envs_per_worker * 32 // 2


def test_few_envs_per_split_are_stepped_one_by_one_whatever_chose_them():
    small = choose_layout(
        AttrDict(CFG, num_envs_per_worker=8),
        num_agents=1,
        env_step_sec=5e-6,
        cores=2,
        keep=frozenset({"num_envs_per_worker"}),
    )
    assert small.num_envs_per_worker == 8 and not small.batched_sampling, "4 envs per split: no vector env"


def test_multi_agent_env_is_never_vectorized():
    layout = choose_layout(CFG, num_agents=2, env_step_sec=5e-6, cores=2)
    assert not layout.batched_sampling
    assert layout.batch_size * layout.num_batches_per_epoch == 2 * layout.num_envs_per_worker * 2 * 32 // 2


def test_an_iteration_of_several_minibatches_is_half_of_what_is_in_flight():
    cfg = AttrDict(worker_num_splits=2, rollout=128, num_batches_per_epoch=4, batch_size=1024)
    layout = choose_layout(cfg, num_agents=1, env_step_sec=500e-6, cores=2, image_obs=True)  # an Atari step
    assert layout.num_envs_per_worker == 16
    assert layout.num_batches_per_epoch == 4, "image models keep their minibatches"
    assert layout.batch_size * 4 == 2 * 16 * 128 // 2
    typed = choose_layout(cfg, num_agents=1, env_step_sec=500e-6, cores=2, keep=frozenset({"num_batches_per_epoch"}))
    assert typed.num_batches_per_epoch == 4 and typed.batch_size == 1024


def test_auto_tune_run_reports_its_choice_and_keeps_the_scripts_defaults(tmp_path):
    """train_gym_env sets its layout with parser.set_defaults: kept, like the typed --num_workers."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sf_examples.train_gym_env",
            "--env=CartPole-v1",
            "--num_workers=1",
            "--train_for_env_steps=20000",
            f"--train_dir={tmp_path}",
            "--experiment=tuned",
        ],
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "auto_tune: an env step takes" in result.stdout
    assert (
        "kept as chosen: batch_size, num_batches_per_epoch, num_envs_per_worker, num_workers, worker_num_splits"
        in result.stdout
    )
    saved = json.loads((tmp_path / "tuned" / "config.json").read_text())
    assert (saved["num_workers"], saved["num_envs_per_worker"], saved["batch_size"]) == (1, 8, 512)
    assert saved["batched_sampling"] is False, "4 envs per split are stepped one by one"
    assert saved["auto_tune"] is False, "applied once; a resumed run keeps the layout"


def make_plain_cartpole(full_env_name, cfg=None, env_config=None, render_mode=None):
    return gym.make("CartPole-v1", render_mode=render_mode)


def test_a_user_script_gets_the_measured_layout_where_it_left_the_library_defaults():
    """Typed flags, a script's set_defaults and a cfg edited in code are the user's; the rest is tuned."""
    register_env("plain_cartpole", make_plain_cartpole)
    argv = ["--env=plain_cartpole", "--batch_size=512", "--device=cpu"]
    parser, _ = parse_sf_args(argv)
    parser.set_defaults(num_workers=1, rollout=16)
    cfg = parse_full_cfg(parser, argv)
    cfg.worker_num_splits = 1
    assert cfg.auto_tune is True, "on by default"
    cfg, chosen = auto_tune(cfg, obtain_env_info(cfg), keep=user_chosen_flags(cfg))
    assert (cfg.num_workers, cfg.worker_num_splits, cfg.batch_size, cfg.rollout) == (1, 1, 512, 16)
    assert {"num_envs_per_worker", "batched_sampling"} <= set(chosen)
    assert cfg.num_envs_per_worker == MAX_ENVS_PER_SPLIT and cfg.batched_sampling, "a CartPole step is microseconds"
    assert cfg.num_batches_per_epoch == MAX_ENVS_PER_SPLIT * 16 // 2 // 512


def test_auto_tune_false_keeps_the_plain_defaults(tmp_path):
    register_env("plain_cartpole", make_plain_cartpole)
    argv = ["--env=plain_cartpole", "--experiment=plain", f"--train_dir={tmp_path}", "--use_rnn=False", "--device=cpu"]
    argv += ["--serial_mode=True", "--train_for_env_steps=2000"]
    parser, _ = parse_sf_args(argv)
    defaults = parse_full_cfg(parser, argv)
    assert run_rl(parse_full_cfg(parser, argv + ["--auto_tune=False"])) == 0
    saved = json.loads((tmp_path / "plain" / "config.json").read_text())
    for name in (
        "num_workers",
        "num_envs_per_worker",
        "worker_num_splits",
        "batched_sampling",
        "batch_size",
        "model_bf16",
    ):
        assert saved[name] == defaults[name], name


PIN = """
import json, os, sys
from sample_factory.utils.attr_dict import AttrDict
from sample_factory.utils.device import pin_rollout_worker
cfg = AttrDict(set_workers_cpu_affinity=sys.argv[1] == "True", serial_mode=False, num_workers=int(sys.argv[3]))
before = sorted(os.sched_getaffinity(0))
core = pin_rollout_worker(cfg, int(sys.argv[2]))
print(json.dumps([before, core, sorted(os.sched_getaffinity(0))]))
"""


@pytest.mark.skipif(
    not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2, reason="needs CPU affinity and 2+ cores"
)
@pytest.mark.parametrize("worker_idx", [0, 1, 5])
def test_rollout_worker_is_pinned_to_one_core_round_robin(worker_idx):
    out = subprocess.run(
        [sys.executable, "-c", PIN, "True", str(worker_idx), "1"], capture_output=True, text=True, check=True
    )
    before, core, after = json.loads(out.stdout)
    assert core == before[worker_idx % len(before)]
    assert after == [core]


@pytest.mark.parametrize(("flag", "num_workers"), [("False", 1), ("True", 64)])
def test_no_pinning_when_switched_off_or_workers_fill_every_core(flag, num_workers):
    out = subprocess.run(
        [sys.executable, "-c", PIN, flag, "0", str(num_workers)], capture_output=True, text=True, check=True
    )
    before, core, after = json.loads(out.stdout)
    assert core is None and after == before


def test_typed_flags_stay_and_size_the_rest():
    cfg = AttrDict(CFG, num_workers=6, num_envs_per_worker=4, batched_sampling=False, batch_size=64)
    layout = choose_layout(
        cfg, num_agents=1, env_step_sec=5e-6, cores=2, keep=frozenset({"num_workers", "num_envs_per_worker"})
    )
    assert (layout.num_workers, layout.num_envs_per_worker) == (6, 4)
    assert layout.batch_size * layout.num_batches_per_epoch == 6 * 4 * 32 // 2, "the iteration follows the typed layout"
    assert layout.batch_size == 64


def test_trajectory_slots_bound_how_far_sampling_runs_ahead_of_the_learner():
    """One slot per agent being filled plus num_batches_to_accumulate iterations waiting: a
    learner that falls behind makes splits park instead of aging the experience (policy lag)."""
    cfg = AttrDict(
        num_workers=2,
        num_envs_per_worker=16,
        worker_num_splits=2,
        num_policies=1,
        league_opponents=0,
        rollout=32,
        batch_size=256,
        num_batches_per_epoch=1,
        num_batches_to_accumulate=2,
        async_rl=True,
    )
    env_info = AttrDict(num_agents=1)
    assert slot_layout(cfg, env_info).slots_per_policy == 32 + 2 * 8
    assert slot_layout(AttrDict(cfg, num_batches_to_accumulate=1), env_info).slots_per_policy == 40  # 32 + 8
    assert slot_layout(AttrDict(cfg, async_rl=False), env_info).slots_per_policy == 8  # one batch exactly


class SlowFirstStepCartPole(gym.Wrapper):
    """CartPole whose first step takes 2.5 s (an env stuck at its start, for a while)."""

    def __init__(self):
        super().__init__(gym.make("CartPole-v1"))
        self.stepped = False

    def step(self, action):
        if not self.stepped:
            self.stepped = True
            time.sleep(2.5)
        return self.env.step(action)


def make_slow_first_step_cartpole(full_env_name, cfg=None, env_config=None, render_mode=None):
    return SlowFirstStepCartPole()


def test_a_probe_that_hangs_is_named_with_where_it_is(monkeypatch, caplog):
    register_env("slow_first_step_cartpole", make_slow_first_step_cartpole)
    monkeypatch.setattr(auto_tune_module, "PROBE_HUNG_SEC", 1.0)
    argv = ["--env=slow_first_step_cartpole"]
    cfg = parse_full_cfg(parse_sf_args(argv)[0], argv)
    assert auto_tune_module.measure_env_step_sec(cfg) > 0, "a slow env is timed all the same"
    hung = [r.getMessage() for r in caplog.records if "has taken" in r.getMessage()]
    assert len(hung) == 1 and "slow_first_step_cartpole" in hung[0], hung
    assert "in step" in hung[0] and "time.sleep(2.5)" in hung[0], "the stack shows where the env is"

    caplog.clear()
    register_env("plain_cartpole", make_plain_cartpole)
    auto_tune_module.measure_env_step_sec(AttrDict(cfg, env="plain_cartpole"))
    time.sleep(1.5)
    assert not [r for r in caplog.records if "has taken" in r.getMessage()], "a quick probe is not named"
