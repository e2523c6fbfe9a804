"""The benchmark command runs its three phases and reports FPS ratios, memory, start-up and CPU use."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.timeout(180)


def run_benchmark_json(*flags: str) -> dict:
    """A short CartPole benchmark with `flags`; its --json results."""
    command = [sys.executable, "-m", "sample_factory.benchmark", "--env=CartPole-v1", "--benchmark_warmup_sec=1"]
    command += ["--benchmark_window_sec=1", "--json", *flags]
    result = subprocess.run(command, capture_output=True, text=True, timeout=170)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout)


def test_benchmark_json_has_every_measurement():
    results = run_benchmark_json("--benchmark_sec=4", "--num_epochs=1")
    assert results["raw"]["fps"] > 0
    for phase in ("overhead", "sampler", "training"):
        r = results[phase]
        assert r["fps"] > 0 and r["windows"] >= 2
        assert 0 < r["ratio_to_raw"] < 2
        assert r["peak_pss_mib"] > 50
        assert 0 < r["startup_to_first_step_sec"] < 60
        assert any(name.startswith("rollout_worker") for name in r["cpu_percent_by_process"])
    assert results["sampler"]["fps"] > results["training"]["fps"] * 0.5
    cost = results["framework_cost"]
    assert cost["env_step_us"] > 0 and cost["framework_us"] > 0
    assert 0 < cost["messages_per_frame"] < 2, "a message per split step and per trajectory, not per env"
    assert set(results["projected_fps"]) == {"16", "64"}  # JSON keys
    assert results["projected_fps"]["64"] == pytest.approx(4 * results["projected_fps"]["16"])
    learner = "runner and learner"  # one policy: its learner lives in the runner's process
    assert (
        results["training"]["cpu_percent_by_process"][learner] > results["sampler"]["cpu_percent_by_process"][learner]
    )


USER_BENCHMARK = """
import sys, gymnasium as gym
from sample_factory.benchmark import main
from sample_factory.envs.env_utils import register_env


def make_plain_cartpole(full_env_name, cfg=None, env_config=None, render_mode=None):
    return gym.make("CartPole-v1", render_mode=render_mode)


if __name__ == "__main__":
    register_env("plain_cartpole", make_plain_cartpole)
    sys.exit(main(sys.argv[1:], extra_setup=None))
"""


def test_benchmark_reports_what_auto_tune_chose_for_a_users_env(tmp_path):
    """No env family here: every layout flag is the library's default, so auto_tune (on by default) sizes it."""
    script = tmp_path / "user_benchmark.py"
    script.write_text(USER_BENCHMARK)
    command = [sys.executable, str(script), "--env=plain_cartpole", "--num_workers=1", "--benchmark_phases", "raw"]
    command += ["--benchmark_sec=2", "--benchmark_warmup_sec=1", "--benchmark_window_sec=1", "--json"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=170)
    assert result.returncode == 0, result.stderr[-2000:]
    results = json.loads(result.stdout)
    assert results["auto_tune"]["batched_sampling"] is True, "a CartPole step is microseconds: vectorized"
    assert "num_workers" not in results["auto_tune"], "typed on the command line: kept"
    assert results["num_envs_per_worker"] == results["auto_tune"]["num_envs_per_worker"] >= 32


def test_framework_cost_is_the_pipelines_cpu_per_frame_beyond_the_env_step():
    from sample_factory.benchmark import framework_cost, project_fps

    raw = {"fps": 20000.0, "env_cpu_us_per_frame": 50.0}
    cpu = {"rollout_worker_0": 60.0, "rollout_worker_1": 60.0, "other (env engines, helpers)": 0.0}
    cpu.update({"inference_p0_0": 20.0, "runner and learner": 10.0})
    overhead = {"fps": 20000.0, "cpu_percent_by_process": cpu, "messages_per_frame": 0.1}
    cost = framework_cost(raw, overhead)
    # 1.2 cores of rollout workers for 20k frames/s = 60 us per frame, 50 of them the env step
    assert cost["rollout_worker_outside_env_us"] == pytest.approx(10.0)
    assert cost["inference_worker_outside_model_us"] == pytest.approx(10.0)
    assert cost["runner_us"] == pytest.approx(5.0)
    assert cost["framework_percent_of_env"] == pytest.approx(50.0)
    assert project_fps(cost, 15) == pytest.approx(15 * 1e6 / 75.0)
