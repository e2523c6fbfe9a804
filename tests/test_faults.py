"""Faults end runs cleanly: dying workers, crashing envs, bad input, Ctrl-C and SIGTERM."""

from __future__ import annotations

import errno
import os
import re
import signal
import subprocess
import sys
import time

import gymnasium as gym
import numpy as np
import psutil
import pytest
import torch
from conftest import child_processes
from training import train_until

from sample_factory.algo import roles
from sample_factory.envs.env_utils import register_env
from sample_factory.model.encoder import Encoder
from sf_examples.train_gym_env import parse_gym_args

pytestmark = pytest.mark.timeout(120)


class CrashingCartPole(gym.Wrapper):
    """CartPole that kills its process (or raises) after some steps, but only inside rollout workers."""

    def __init__(self, how: str, after_steps: int = 300):
        super().__init__(gym.make("CartPole-v1"))
        self.how = how
        self.steps_left = after_steps

    def step(self, action):
        self.steps_left -= 1
        if self.steps_left == 0:
            if self.how == "exit":
                os._exit(3)
            raise RuntimeError("the simulator crashed")
        return self.env.step(action)


def make_process_killing_env(full_env_name, cfg=None, env_config=None, render_mode=None):
    if env_config is not None and env_config.worker_index < 0:
        return gym.make("CartPole-v1")  # the parent's throw-away env must not crash
    return CrashingCartPole("exit")


def make_raising_env(full_env_name, cfg=None, env_config=None, render_mode=None):
    if env_config is not None and env_config.worker_index < 0:
        return gym.make("CartPole-v1")
    return CrashingCartPole("raise")


def crash_cfg(tmp_path, env_name, *flags):
    return parse_gym_args(
        [f"--env={env_name}", f"--train_dir={tmp_path}", "--experiment=crash", "--report_interval_sec=1", *flags]
    )


@pytest.mark.parametrize("serial", [False, True], ids=["parallel", "serial"])
def test_env_exception_stops_the_run_when_recovery_is_off(tmp_path, serial, caplog):
    register_env("raising_cartpole", make_raising_env)
    started = time.monotonic()
    cfg = crash_cfg(tmp_path, "raising_cartpole", f"--serial_mode={serial}", "--max_env_failures=0")
    result = train_until(cfg)
    assert result["status"] != 0
    assert time.monotonic() - started < 60
    assert "raised RuntimeError: the simulator crashed: more than --max_env_failures=0" in caplog.text


class FlakyCartPole(gym.Wrapper):
    """CartPole that raises in step() every `every` steps; `env_id` chooses which envs are flaky."""

    def __init__(self, every: int):
        super().__init__(gym.make("CartPole-v1"))
        self.every = every
        self.steps = 0

    def step(self, action):
        self.steps += 1
        if self.steps % self.every == 0:
            raise RuntimeError(f"the simulator crashed at step {self.steps}")
        return self.env.step(action)


def make_flaky_env(full_env_name, cfg=None, env_config=None, render_mode=None):
    if env_config is not None and env_config.worker_index == 1 and env_config.vector_index == 2:
        return FlakyCartPole(every=150)
    return gym.make("CartPole-v1")


@pytest.mark.parametrize(
    "mode_flags",
    [
        pytest.param(["--serial_mode=False", "--batched_sampling=False"], id="parallel"),
        pytest.param(["--serial_mode=True", "--batched_sampling=False"], id="serial"),
        pytest.param(["--serial_mode=False", "--batched_sampling=True"], id="batched"),
    ],
)
def test_an_env_that_raises_is_made_anew_and_the_run_trains_to_its_budget(tmp_path, mode_flags, caplog):
    """ISSUE 15: env 2 of worker 1 raises every 150 of its steps; each time it is closed, made anew and
    reset, its unfinished episode is dropped, and the run learns on to its budget."""
    register_env("flaky_cartpole", make_flaky_env)
    cfg = crash_cfg(
        tmp_path,
        "flaky_cartpole",
        *mode_flags,
        "--num_workers=2",
        "--num_envs_per_worker=4",
        "--train_for_env_steps=60000",
        "--seed=3",
    )
    result = train_until(cfg)
    assert result["status"] == 0
    assert result["env_steps"] >= 60000
    assert result["env_failures"] >= 3, "every 150 of its steps over a 60k-step run"
    assert "flaky_cartpole (worker 1, env 2) raised RuntimeError: the simulator crashed at step 150; made it anew" in (
        caplog.text
    )
    assert result["policies"][0]["mean_reward"] > 40, "it learned (a random policy scores about 22)"
    assert (tmp_path / "crash" / "summary.json").read_text().count('"env_failures"') == 1


def test_an_env_that_keeps_raising_stops_the_run_past_the_budget(tmp_path, caplog):
    register_env("flaky_cartpole", make_flaky_env)
    cfg = crash_cfg(
        tmp_path,
        "flaky_cartpole",
        "--serial_mode=True",
        "--num_workers=2",
        "--num_envs_per_worker=4",
        "--max_env_failures=2",
    )
    result = train_until(cfg)
    assert result["status"] != 0
    assert result["env_failures"] == 3
    assert "more than --max_env_failures=2 env failures, stopping the run" in caplog.text


def make_unmakeable_env(full_env_name, cfg=None, env_config=None, render_mode=None):
    if env_config is not None and env_config.worker_index == 0 and env_config.vector_index == 1:
        raise OSError("no display for the engine")
    return gym.make("CartPole-v1")


@pytest.mark.parametrize("batched", [False, True], ids=["per-env", "batched"])
def test_an_env_that_cannot_be_made_stops_the_run_with_one_line_naming_it(tmp_path, batched, caplog):
    register_env("unmakeable", make_unmakeable_env)
    started = time.monotonic()
    cfg = crash_cfg(tmp_path, "unmakeable", "--serial_mode=False", f"--batched_sampling={batched}")
    result = train_until(cfg)
    assert result["status"] != 0
    assert time.monotonic() - started < 60
    assert "could not make unmakeable (worker 0, env 1): OSError: no display for the engine" in caplog.text
    assert "Traceback" not in caplog.text


class SquashedObsCartPole(gym.ObservationWrapper):
    """Declares CartPole's (4,) observations but returns one number: numpy would broadcast it."""

    def observation(self, observation):
        return observation[:1]


def make_squashed_obs_env(full_env_name, cfg=None, env_config=None, render_mode=None):
    return SquashedObsCartPole(gym.make("CartPole-v1"))


def test_an_observation_outside_its_space_is_named_not_broadcast(tmp_path, caplog):
    register_env("squashed_obs", make_squashed_obs_env)
    result = train_until(crash_cfg(tmp_path, "squashed_obs", "--serial_mode=True", "--batched_sampling=False"))
    assert result["status"] != 0
    assert "squashed_obs (worker 0, env 0) returned observation 'obs' of shape (1,)" in caplog.text
    assert "its observation space says (4,)" in caplog.text


def make_once_killing_env(full_env_name, cfg=None, env_config=None, render_mode=None):
    """Env 1 of worker 1 kills its process after 300 steps, once per run (a marker file remembers)."""
    marker = os.path.join(cfg.train_dir, "killed_once")
    if env_config is None or env_config.worker_index != 1 or env_config.vector_index != 1 or os.path.exists(marker):
        return gym.make("CartPole-v1")
    open(marker, "w").close()
    return CrashingCartPole("exit")


@pytest.mark.parametrize("batched", [False, True], ids=["per_env", "batched"])
def test_a_dead_rollout_worker_is_started_anew_and_the_run_trains_to_its_budget(tmp_path, batched, caplog):
    """ISSUE 15: the process of worker 1 dies (exit code 3) mid-run: it is started anew with fresh envs,
    the slots it held are put back, and the run learns on to its budget."""
    register_env("once_killing_cartpole", make_once_killing_env)
    cfg = crash_cfg(
        tmp_path, "once_killing_cartpole", "--serial_mode=False", f"--batched_sampling={batched}", "--num_workers=2",
        "--num_envs_per_worker=4", "--train_for_env_steps=40000", "--seed=1",
    )  # fmt: skip
    result = train_until(cfg)
    assert result["status"] == 0, "the restarted worker and the other one trained to the budget"
    assert result["env_steps"] >= 40000
    assert result["worker_restarts"] == 1
    restarts = [r.getMessage() for r in caplog.records if "started it anew" in r.getMessage()]
    assert len(restarts) == 1 and restarts[0].startswith("rollout_worker_1 (pid "), restarts
    assert "died with exit code 3: started it anew with fresh envs" in restarts[0]
    assert "(1 of --max_worker_restarts=3)" in restarts[0]
    assert result["policies"][0]["mean_reward"] > 40, "it learned (a random policy scores about 22)"
    assert '"worker_restarts": 1' in (tmp_path / "crash" / "summary.json").read_text()


def test_without_the_queue_repair_a_dead_worker_stops_the_run_cleanly(tmp_path, caplog, monkeypatch):
    """Another faster-fifo or glibc whose queue layout the repair does not recognise: the run says so in
    one line at its start, and a worker that dies is not started anew on queues nobody can repair."""
    from sample_factory.signal_slot import transport

    reason = "faster-fifo 9.9 (glibc 9.9, x86_64): queue layout not recognised (planted by the test)"
    monkeypatch.setattr(transport, "check_repair_layout", lambda: reason)
    register_env("once_killing_cartpole", make_once_killing_env)
    cfg = crash_cfg(
        tmp_path, "once_killing_cartpole", "--serial_mode=False", "--num_workers=2", "--num_envs_per_worker=4",
        "--train_for_env_steps=40000", "--seed=1",
    )  # fmt: skip
    result = train_until(cfg)
    assert result["status"] == 1
    assert result["worker_restarts"] == 0
    warned = [r.getMessage() for r in caplog.records if reason in r.getMessage()]
    assert warned[0] == f"{reason}: a worker that dies or stalls stops the run instead of restarting"
    assert any(m.startswith("rollout_worker_1 (pid ") and "not started anew" in m for m in warned), warned
    assert "rollout_worker_1 (pid" in caplog.text and "stopping the run" in caplog.text
    assert not child_processes(), "no process of the run is left"


def kill_inference_run(tmp_path, kill_after_steps: int, *flags):
    """A CartPole run whose inference worker gets kill -9 once past `kill_after_steps`; returns (status,
    runner, killed pids, seconds)."""
    from sample_factory.train import make_runner

    cfg = crash_cfg(
        tmp_path, "CartPole-v1", "--serial_mode=False", "--num_workers=2", "--num_envs_per_worker=4", "--seed=1",
        *flags,
    )  # fmt: skip
    _, runner = make_runner(cfg)
    killed = []

    def kill_inference_once(r):
        if not killed and r.stats.total_env_steps > kill_after_steps:
            process = r.processes.get(roles.inference_worker(0, 0))
            killed.append(process.pid)
            os.kill(process.pid, signal.SIGKILL)
        return False

    runner.report_callbacks.append(kill_inference_once)
    started = time.monotonic()
    status = runner.run()
    return status, runner, killed, time.monotonic() - started


@pytest.mark.parametrize("kill_after_steps", [3000, 7000, 11000])
def test_kill_9_of_the_inference_worker_is_survived_and_the_run_trains_to_its_budget(
    tmp_path, caplog, kill_after_steps
):
    """ISSUE 15: the inference worker is killed at some moment of its work (most often while it waits on
    its queue, which that leaves broken): it is started anew on a fresh queue, its rollout workers ask
    again for the actions they wait for, and the run learns on to its budget."""
    status, runner, killed, _ = kill_inference_run(tmp_path, kill_after_steps, "--train_for_env_steps=40000")
    assert killed, "the kill came before the budget"
    assert status == 0 and runner.stats.total_env_steps >= 40000
    restarts = [r.getMessage() for r in caplog.records if "started it anew" in r.getMessage()]
    assert restarts == [
        f"inference_p0_0 (pid {killed[0]}) died with exit code -9: started it anew, its rollout workers asking"
        " again for their actions (1 of --max_worker_restarts=3)"
    ]
    assert runner.stats.worker_restarts == 1
    assert runner.stats.mean_reward(0) > 40, "it learned (a random policy scores about 22)"
    assert not child_processes(), "the killed inference worker's tree and the run's processes are gone"


def test_kill_9_of_the_inference_worker_without_restarts_stops_the_run_cleanly(tmp_path, caplog):
    status, _, killed, seconds = kill_inference_run(tmp_path, 3000, "--train_for_seconds=60", "--max_worker_restarts=0")
    assert status != 0 and killed and seconds < 45
    died = [r.getMessage() for r in caplog.records if "died with exit code" in r.getMessage()]
    assert died == [f"inference_p0_0 (pid {killed[0]}) died with exit code -9: stopping the run"]
    assert not child_processes()


def test_a_worker_that_keeps_dying_stops_the_run_past_the_restart_budget(tmp_path, caplog):
    register_env("killing_cartpole", make_process_killing_env)
    started = time.monotonic()
    result = train_until(crash_cfg(tmp_path, "killing_cartpole", "--serial_mode=False", "--max_worker_restarts=1"))
    assert result["status"] != 0
    assert time.monotonic() - started < 60
    assert result["worker_restarts"] == 1
    assert "died with exit code 3: stopping the run" in caplog.text


def run_cli(args, timeout=60, **kwargs):
    return subprocess.run(
        [sys.executable, "-m", "sf_examples.train_gym_env", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        **kwargs,
    )


def test_bad_flag_is_one_line_error_exit_2_and_creates_nothing(tmp_path):
    result = run_cli(["--env=CartPole-v1", f"--train_dir={tmp_path}", "--experiment=x", "--no_such_flag=3"])
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "--no_such_flag" in result.stderr
    assert not (tmp_path / "x").exists()


def test_wrong_type_is_one_line_error(tmp_path):
    result = run_cli(["--env=CartPole-v1", f"--train_dir={tmp_path}", "--num_workers=two"])
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "num_workers" in result.stderr


def test_every_config_error_is_reported_at_once(tmp_path):
    result = run_cli(
        [
            "--env=CartPole-v1",
            f"--train_dir={tmp_path}",
            "--experiment=x",
            "--num_envs_per_worker=3",
            "--batch_size=100",
            "--gamma=2",
        ]
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert any("--num_envs_per_worker=3" in line for line in lines)
    assert any("--batch_size=100" in line for line in lines)
    assert any("--gamma=2" in line for line in lines)
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "x").exists()


def test_unknown_env_lists_registered_names(tmp_path):
    result = run_cli(["--env=NoSuchEnv-v0", f"--train_dir={tmp_path}", "--experiment=x"])
    assert result.returncode == 2
    assert "unknown env 'NoSuchEnv-v0'" in result.stderr and "registered envs" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "x").exists()


def start_training_and_wait_for_progress(tmp_path, experiment: str) -> subprocess.Popen:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sf_examples.train_gym_env",
            "--env=CartPole-v1",
            f"--train_dir={tmp_path}",
            f"--experiment={experiment}",
            "--save_every_sec=1000",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 60
    for line in proc.stdout:
        if "env steps" in line and "train steps 0 " not in line:
            break
        assert time.monotonic() < deadline, "training did not start"
    return proc


def test_two_signals_at_once_exit_at_once_and_leave_no_process(tmp_path):
    """What `timeout` plus `pkill` (or a cluster's job kill) does: SIGTERM twice in quick succession.
    Once, a second signal landed inside the first handler (which then logged and emitted) and left the
    main process stuck forever in a queue put; that race is too narrow to reproduce here (this test
    passes on the old handler too). The handler now only records the first signal, so there is
    nothing for a second one to interrupt, and the second exits at once."""
    proc = start_training_and_wait_for_progress(tmp_path, "twice")
    try:
        descendants = psutil.Process(proc.pid).children(recursive=True)
        assert descendants, "the run has worker processes"
        proc.send_signal(signal.SIGTERM)
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode in (0, 130), output  # 0 when the first signal's stop finished before the second
    _, alive = psutil.wait_procs(descendants, timeout=10)
    assert not alive, f"left behind: {[p.pid for p in alive]}"


def test_kill_9_of_the_main_process_leaves_no_process_and_no_shared_memory(tmp_path):
    """ISSUE 15: the workers are children of the fork server, which now dies with the main process;
    each worker dies with the fork server, and the resource tracker then releases the semaphores."""
    shm_before = set(os.listdir("/dev/shm"))
    proc = start_training_and_wait_for_progress(tmp_path, "kill9")
    try:
        descendants = psutil.Process(proc.pid).children(recursive=True)
        assert len(descendants) >= 3, "fork server, inference worker and rollout workers"
        proc.kill()
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    _, alive = psutil.wait_procs(descendants, timeout=15)
    names = [(p.pid, p.name()) for p in alive]
    for p in alive:
        p.kill()
    assert not names, f"left behind after kill -9 of the main process: {names}"
    deadline = time.monotonic() + 10
    while (leaked := set(os.listdir("/dev/shm")) - shm_before) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not leaked, f"left in /dev/shm: {sorted(leaked)}"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_saves_checkpoint_and_exits_cleanly(tmp_path, sig):
    proc = start_training_and_wait_for_progress(tmp_path, "sig")
    try:
        proc.send_signal(sig)
        started = time.monotonic()
        output, _ = proc.communicate(timeout=30)
        assert time.monotonic() - started < 30
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, output
    checkpoints = list((tmp_path / "sig" / "checkpoint_p0").glob("checkpoint_*.pth"))
    assert checkpoints, output


def fill_the_disk_for(monkeypatch, failing_saves):
    """torch.save fails as on a full disk on the given save numbers (1-based): torch itself reports
    it as `RuntimeError: [enforce fail at inline_container.cc]`, a plain write as OSError ENOSPC."""
    from sample_factory.utils import checkpoint

    real_save = torch.save
    saves = []

    def save(obj, f, *args, **kwargs):
        saves.append(1)
        if failing_saves(len(saves)):
            if len(saves) % 2:
                raise OSError(errno.ENOSPC, "No space left on device")
            raise RuntimeError(
                "[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0: No space left on device"
            )
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(checkpoint.torch, "save", save)
    return saves


def test_a_full_disk_on_a_periodic_save_keeps_the_previous_checkpoint_and_the_run_goes_on(
    tmp_path, monkeypatch, caplog
):
    """ISSUE 15: saves 2 to 4 find the disk full: each is one line naming the file and the error, the
    previous checkpoint stays, and once there is room again the saves resume and the run ends well."""
    # Long enough for more than 4 saves at any speed (CartPole runs at up to 10k steps/s here).
    cfg = crash_cfg(tmp_path, "CartPole-v1", "--serial_mode=True", "--save_every_sec=1", "--train_for_env_steps=120000")
    saves = fill_the_disk_for(monkeypatch, lambda n: 2 <= n <= 4)
    result = train_until(cfg)
    assert result["status"] == 0 and result["env_steps"] >= 120000
    full = [r.getMessage() for r in caplog.records if "could not write" in r.getMessage()]
    assert len(full) == 3, full
    assert all("checkpoint_p0" in m and "No space left on device" in m and "trying again" in m for m in full)
    assert any("errno 28" in m for m in full)
    folder = tmp_path / "crash" / "checkpoint_p0"
    assert len(saves) > 4 and not list(folder.glob("*.tmp"))
    newest = sorted(folder.glob("checkpoint_*.pth"))[-1]
    assert int(newest.stem.rsplit("_", 1)[1]) >= 120000, "the final save went through"


def test_a_full_disk_on_the_final_save_fails_the_run_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch, caplog):
    cfg = crash_cfg(tmp_path, "CartPole-v1", "--serial_mode=True", "--save_every_sec=1", "--train_for_env_steps=20000")
    fill_the_disk_for(monkeypatch, lambda n: n >= 2)
    started = time.monotonic()
    result = train_until(cfg)
    assert result["status"] == 1
    assert time.monotonic() - started < 60
    assert "Policy 0 cannot go on (could not write" in caplog.text
    folder = tmp_path / "crash" / "checkpoint_p0"
    assert len(list(folder.glob("checkpoint_*.pth"))) == 1 and not list(folder.glob("*.tmp"))


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux) for a real ENOSPC")
def test_reports_that_find_the_disk_full_cost_only_the_report(tmp_path, caplog):
    """progress.csv and summary.json written to /dev/full (every write: ENOSPC, from the kernel): one line
    each, not one per report, and the run trains to its budget and saves its checkpoint."""
    exp_dir = tmp_path / "crash"
    exp_dir.mkdir()
    (exp_dir / "progress.csv").symlink_to("/dev/full")
    (exp_dir / "summary.json.tmp").symlink_to("/dev/full")
    cfg = crash_cfg(tmp_path, "CartPole-v1", "--serial_mode=True", "--train_for_env_steps=30000")
    result = train_until(cfg)
    assert result["status"] == 0 and result["env_steps"] >= 30000
    full = [r.getMessage() for r in caplog.records if "could not write" in r.getMessage()]
    assert len([m for m in full if "progress.csv" in m]) == 1, full
    assert len([m for m in full if "summary.json" in m]) == 1, full
    assert all("No space left on device" in m and "goes on" in m for m in full)
    assert list((exp_dir / "checkpoint_p0").glob("checkpoint_*.pth")), "the checkpoint was saved"


class HangingCartPole(gym.Wrapper):
    """CartPole whose step() never returns after a while (a simulator deadlock), on one worker."""

    def __init__(self, hang_after: int):
        super().__init__(gym.make("CartPole-v1"))
        self.steps_left = hang_after

    def step(self, action):
        self.steps_left -= 1
        if self.steps_left == 0:
            while True:
                time.sleep(1.0)
        return self.env.step(action)


def make_hanging_env(full_env_name, cfg=None, env_config=None, render_mode=None):
    """The envs of worker 1 hang after 200 steps; only those of its first process."""
    marker = os.path.join(cfg.train_dir, f"hung_{env_config.vector_index}" if env_config is not None else "")
    if env_config is not None and env_config.worker_index == 1 and not os.path.exists(marker):
        open(marker, "w").close()
        return HangingCartPole(hang_after=200)
    return gym.make("CartPole-v1")


def two_workers_stepping_envs_one_by_one(tmp_path, env_name, *flags):
    """A parallel run of 2 workers x 2 envs stepped one by one (a hung env blocks its worker)."""
    return crash_cfg(
        tmp_path, env_name, "--serial_mode=False", "--num_workers=2", "--num_envs_per_worker=2",
        "--batched_sampling=False", *flags,
    )  # fmt: skip


def stall_reports(caplog) -> list[str]:
    stalls = [r.getMessage() for r in caplog.records if "has stepped no env" in r.getMessage()]
    assert stalls and all(m.startswith("rollout_worker_1 ") for m in stalls), stalls
    assert "where it is:" in stalls[0] and 'test_faults.py", line' in stalls[0] and "in step" in stalls[0], stalls
    return stalls


def test_a_hung_env_is_named_with_its_stack_and_its_worker_started_anew(tmp_path, caplog):
    register_env("hanging_cartpole", make_hanging_env)
    cfg = two_workers_stepping_envs_one_by_one(
        tmp_path, "hanging_cartpole", "--heartbeat_interval=3", "--train_for_seconds=15"
    )
    result = train_until(cfg)
    assert result["status"] == 0
    assert len(stall_reports(caplog)) == 1
    assert result["worker_restarts"] == 1
    assert re.search(r"rollout_worker_1 stalled for \d+s: started it anew with fresh envs", caplog.text)
    progress = result["runner"].shared.frames_sampled.tolist()
    assert progress[1] > 2 * 2 * 200, f"the restarted worker sampled on past the hang ({progress})"


def test_a_hung_env_past_the_restart_budget_is_reported_while_the_other_workers_train_on(tmp_path, caplog):
    register_env("hanging_cartpole", make_hanging_env)
    cfg = two_workers_stepping_envs_one_by_one(
        tmp_path, "hanging_cartpole", "--heartbeat_interval=3", "--train_for_seconds=12", "--max_worker_restarts=0"
    )
    result = train_until(cfg)
    assert result["status"] == 0, "the other worker trained until the budget"
    assert result["policies"][0]["train_steps"] > 0
    assert len(stall_reports(caplog)) == 1, "reported once per --heartbeat_reporting_interval"
    assert result["worker_restarts"] == 0


def make_always_hanging_env(full_env_name, cfg=None, env_config=None, render_mode=None):
    """Every env of every worker hangs after 200 steps (not the one auto_tune times in the main process)."""
    return HangingCartPole(hang_after=200) if env_config.worker_index >= 0 else gym.make("CartPole-v1")


def test_a_run_whose_every_env_hangs_is_stopped_not_left_to_its_time_budget(tmp_path, caplog):
    """Every worker stands still at once: no worker lags behind the others, so no stall is seen per
    worker; the run is stuck as a whole and stops after 3 x --heartbeat_interval, leaving nothing."""
    register_env("always_hanging_cartpole", make_always_hanging_env)
    cfg = two_workers_stepping_envs_one_by_one(
        tmp_path, "always_hanging_cartpole", "--heartbeat_interval=3", "--train_for_seconds=90"
    )
    started = time.monotonic()
    result = train_until(cfg)
    assert result["status"] != 0 and time.monotonic() - started < 60, "stopped long before its time budget"
    stuck = [r.getMessage() for r in caplog.records if "the run is stuck" in r.getMessage()]
    assert len(stuck) == 1 and "No env stepped and no policy trained for" in stuck[0], stuck
    assert "where rollout_worker_0 is:" in stuck[0] and "in step" in stuck[0], "its stack shows the hung env"
    assert not child_processes()


def make_hung_at_start_env(full_env_name, cfg=None, env_config=None, render_mode=None):
    return HangingCartPole(hang_after=1) if env_config.worker_index >= 0 else gym.make("CartPole-v1")


def test_envs_that_never_step_are_named_once_and_left_to_the_time_budget(tmp_path, caplog):
    """Not one frame: the envs may still be starting (a slow simulator), so the run is not stopped, but
    after 3 x --heartbeat_interval it says so with where a worker is; the time budget then ends it."""
    register_env("hung_at_start_cartpole", make_hung_at_start_env)
    cfg = two_workers_stepping_envs_one_by_one(
        tmp_path, "hung_at_start_cartpole", "--heartbeat_interval=2", "--train_for_seconds=12"
    )
    result = train_until(cfg)
    named = [r.getMessage() for r in caplog.records if "No env has stepped in the" in r.getMessage()]
    assert len(named) == 1 and "where rollout_worker_0 is:" in named[0] and "in step" in named[0], named
    assert "the run is stuck" not in caplog.text
    assert result["env_steps"] == 0 and not child_processes()


class NaNObsCartPole(gym.ObservationWrapper):
    """CartPole whose every 37th observation is NaN (a sensor glitch)."""

    def __init__(self):
        super().__init__(gym.make("CartPole-v1"))
        self.calls = 0

    def observation(self, observation):
        self.calls += 1
        return np.full_like(observation, np.nan) if self.calls % 37 == 0 else observation


def make_nan_obs_env(full_env_name, cfg=None, env_config=None, render_mode=None):
    if env_config is not None and env_config.worker_index < 0:
        return gym.make("CartPole-v1")
    return NaNObsCartPole()


class NaNRewardCartPole(gym.Wrapper):
    """CartPole whose every 53rd reward is NaN and every 71st is +inf."""

    def __init__(self):
        super().__init__(gym.make("CartPole-v1"))
        self.steps = 0

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.steps += 1
        if self.steps % 53 == 0:
            reward = float("nan")
        elif self.steps % 71 == 0:
            reward = float("inf")
        return obs, reward, terminated, truncated, info


def make_nan_reward_env(full_env_name, cfg=None, env_config=None, render_mode=None):
    if env_config is not None and env_config.worker_index < 0:
        return gym.make("CartPole-v1")
    return NaNRewardCartPole()


def assert_checkpoint_finite(experiment_dir):
    from sample_factory.utils.checkpoint import load_latest_checkpoint

    state, _ = load_latest_checkpoint(experiment_dir / "checkpoint_p0")
    for key, tensor in state["model"].items():
        assert torch.isfinite(tensor).all(), f"{key} was poisoned"


@pytest.mark.parametrize("serial,batched", [(True, False), (False, True)], ids=["serial", "parallel_batched"])
@pytest.mark.parametrize("what", ["obs", "reward"])
def test_nan_from_an_env_is_named_at_the_rollout_worker_dropped_and_counted(tmp_path, caplog, what, serial, batched):
    """ISSUE 15, item 5: NaN/inf rewards or observations are caught where the env returns them, named
    (env, worker, env index, key), made 0 and not trained on; the run learns on and saves finite weights."""
    env_name = f"nan_{what}_cartpole"
    register_env(env_name, make_nan_obs_env if what == "obs" else make_nan_reward_env)
    cfg = crash_cfg(
        tmp_path, env_name, f"--serial_mode={serial}", f"--batched_sampling={batched}", "--num_workers=2",
        "--num_envs_per_worker=4", "--train_for_env_steps=30000", "--normalize_input=True", "--normalize_returns=True",
    )  # fmt: skip
    result = train_until(cfg)
    assert result["status"] == 0
    named = [r.getMessage() for r in caplog.records if "made 0 and not trained on" in r.getMessage()]
    assert named, "the first NaN is named at once"
    returned = "returned observation 'obs' nan" if what == "obs" else "returned reward "
    assert named[0].startswith(f"{env_name} (worker ") and returned in named[0], named[0]
    assert result["non_finite_steps"] > 0
    assert '"non_finite_steps": ' in (tmp_path / "crash" / "summary.json").read_text()
    assert "trajectories with NaN or infinite" not in caplog.text, "nothing non-finite reached the learner"
    assert result["policies"][0]["mean_reward"] > 30, "it learned (a random policy scores about 22)"
    assert_checkpoint_finite(tmp_path / "crash")


def test_nan_with_strict_env_checks_stops_the_run_naming_the_env_and_key(tmp_path, caplog):
    register_env("nan_obs_cartpole", make_nan_obs_env)
    cfg = crash_cfg(tmp_path, "nan_obs_cartpole", "--serial_mode=False", "--strict_env_checks=True")
    started = time.monotonic()
    result = train_until(cfg)
    assert result["status"] != 0
    assert time.monotonic() - started < 60
    assert "nan_obs_cartpole (worker " in caplog.text
    assert "returned observation 'obs' nan (--strict_env_checks=True); stopping the run" in caplog.text


class WrongKeysEnv(gym.Env):
    """Declares {"pos", "vel"} but returns {"pos", "speed"}; or a float "pos" for an integer space."""

    action_space = gym.spaces.Discrete(2)

    def __init__(self, fault: str):
        self.fault = fault
        self.observation_space = gym.spaces.Dict(
            {"pos": gym.spaces.Box(0, 9, (2,), np.int64), "vel": gym.spaces.Box(-1, 1, (2,), np.float32)}
        )

    def _obs(self):
        if self.fault == "keys":
            return {"pos": np.zeros(2, np.int64), "speed": np.zeros(2, np.float32)}
        return {"pos": np.full(2, 0.5), "vel": np.zeros(2, np.float32)}

    def reset(self, seed=None, options=None):
        return self._obs(), {}

    def step(self, action):
        return self._obs(), 0.0, False, False, {}


@pytest.mark.parametrize("batched", [False, True], ids=["per_env", "batched"])
@pytest.mark.parametrize("fault", ["keys", "dtype"])
def test_a_first_observation_with_other_keys_or_dtype_than_its_space_is_named(tmp_path, caplog, fault, batched):
    def make(full_env_name, cfg=None, env_config=None, render_mode=None):
        if env_config is not None and env_config.worker_index < 0:
            return WrongKeysEnv("none")  # the probe env only tells the spaces
        return WrongKeysEnv(fault)

    register_env(f"wrong_{fault}", make)
    result = train_until(crash_cfg(tmp_path, f"wrong_{fault}", "--serial_mode=True", f"--batched_sampling={batched}"))
    assert result["status"] != 0
    failed = [r.getMessage() for r in caplog.records if "cannot go on" in r.getMessage()]
    assert failed and all(f"wrong_{fault} (worker " in m for m in failed), failed
    if fault == "keys":
        assert "returned observation keys ['pos', 'speed']; its observation space has ['pos', 'vel']" in failed[0]
        assert "(missing ['vel']) (not in the space: ['speed'])" in failed[0]
    else:
        assert "returned observation 'pos' of dtype float64; its observation space says int64" in failed[0]


class BigObsEnv(gym.Env):
    """Doom-sized image observations (3 x 72 x 128 bytes)."""

    observation_space = gym.spaces.Box(0, 255, (3, 72, 128), np.uint8)
    action_space = gym.spaces.Discrete(3)

    def reset(self, seed=None, options=None):
        return np.zeros(self.observation_space.shape, np.uint8), {}

    def step(self, action):
        return np.zeros(self.observation_space.shape, np.uint8), 0.0, False, False, {}


def make_big_obs_env(full_env_name, cfg=None, env_config=None, render_mode=None):
    return BigObsEnv()


def test_buffers_larger_than_memory_stop_the_run_before_it_starts_naming_the_flags(tmp_path, capsys):
    """ISSUE 15, item 9: 2 x 100,000 envs of Doom-sized frames need ~190 GiB of trajectory buffers."""
    from sample_factory.train import run_rl

    register_env("big_obs", make_big_obs_env)
    cfg = crash_cfg(tmp_path, "big_obs", "--num_workers=2", "--num_envs_per_worker=100000")
    assert run_rl(cfg) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "the trajectory buffers need" in err and "GiB of shared memory" in err
    assert "--num_envs_per_worker=100000" in err and "--rollout=" in err and "obs (3, 72, 128)" in err
    assert not list((tmp_path / "crash").glob("checkpoint_p0/*"))


def fake_cgroup(tmp_path, v2_limits: dict[str, tuple[str, int]]):
    """A cgroup v2 tree under tmp_path: {relative dir: (memory.max, memory.current)}."""
    root = tmp_path / "cgroup"
    for relative, (limit, used) in v2_limits.items():
        directory = root / relative
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "memory.max").write_text(f"{limit}\n")
        (directory / "memory.current").write_text(f"{used}\n")
    proc = tmp_path / "proc_cgroup"
    proc.write_text("0::/box/job\n")
    return root, proc


def test_the_cgroup_memory_limit_bounds_the_buffers_not_the_machine_ram(tmp_path, monkeypatch):
    """ISSUE 15, item 9: 160 envs under a 2 GiB container limit were OOM-killed without a word; the
    limit of the process's cgroup (its own or an ancestor's, whichever leaves less) now counts."""
    from sample_factory.algo import shared_buffers

    gib = 2**30
    root, proc = fake_cgroup(tmp_path, {"": ("max", 50 * gib), "box": (2 * gib, gib // 2), "box/job": ("max", gib)})
    assert shared_buffers.cgroup_memory_headroom(root, proc) == 2 * gib - gib // 2
    unlimited_root, unlimited_proc = fake_cgroup(tmp_path / "u", {"": ("max", gib), "box/job": ("max", gib)})
    assert shared_buffers.cgroup_memory_headroom(unlimited_root, unlimited_proc) is None

    monkeypatch.setattr(shared_buffers, "cgroup_memory_headroom", lambda: gib)
    with pytest.raises(shared_buffers.InsufficientMemoryError) as error:
        shared_buffers.check_buffers_fit(3 * gib, "--num_envs_per_worker=160")
    assert str(error.value) == (
        "the trajectory buffers need 3.0 GiB of shared memory, 1.0 GiB is left under the memory limit of this"
        " process's cgroup: --num_envs_per_worker=160 size them"
    )
    shared_buffers.check_buffers_fit(gib // 2, "--num_envs_per_worker=16")  # fits: no error


class InferenceHangingEncoder(Encoder):
    """The library's encoder, except in an inference worker's process, where its 50th forward never returns."""

    def __init__(self, cfg, obs_space):
        super().__init__(cfg)
        from sample_factory.model.encoder import make_default_encoder

        self.inner = make_default_encoder(cfg, obs_space)
        self.calls = 0

    def forward(self, obs_dict):
        import multiprocessing

        self.calls += 1
        if self.calls == 50 and multiprocessing.current_process().name.startswith("inference"):
            time.sleep(3600)
        return self.inner(obs_dict)

    def get_out_size(self):
        return self.inner.get_out_size()


def test_a_stuck_inference_worker_is_named_with_its_stack_and_stops_the_run(tmp_path, caplog):
    """ISSUE 15, heartbeats: a process whose event loop stands still (here an inference worker stuck in
    its model) is named with its Python stack after --heartbeat_interval, and stops the run after 3 x that."""
    from sample_factory.algo.utils.context import global_model_factory, reset_global_model_factory

    reset_global_model_factory()
    global_model_factory().register_encoder_factory(InferenceHangingEncoder)
    try:
        started = time.monotonic()
        result = train_until(
            crash_cfg(
                tmp_path, "CartPole-v1", "--serial_mode=False", "--heartbeat_interval=2", "--train_for_seconds=60"
            )
        )
    finally:
        reset_global_model_factory()
    assert result["status"] != 0
    assert time.monotonic() - started < 40, "stopped after ~3 x --heartbeat_interval, not at the 60 s budget"
    named = [r.getMessage() for r in caplog.records if "has not turned its event loop" in r.getMessage()]
    assert len(named) == 1 and named[0].startswith("inference_p0_0 (pid "), named
    assert "Where it is:" in named[0] and "in forward" in named[0] and "test_faults.py" in named[0], named[0]
    assert "inference_p0_0 has been silent for" in caplog.text and "stopping the run" in caplog.text
