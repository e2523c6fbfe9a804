"""The sweep launcher: the description (grid, names, folders), the job wrapper, the backends.

Unit tests first; then real sweeps of short CartPole runs on local processes (Ctrl-C and resume
included) and on a local Ray cluster. The Slurm backend is tested in tests/test_launcher_slurm.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from argparse import Namespace

import psutil
import pytest
from launcher_helpers import REPO, assert_gone, launch, runs_of, wait_for, write_sweep

from sample_factory.launcher.job import EXIT_INTERRUPTED, EXIT_TIMED_OUT, parse_timeout, run_job
from sample_factory.launcher.results import format_table, result_of
from sample_factory.launcher.run import SweepModuleError, load_run_description
from sample_factory.launcher.run_description import (
    Experiment,
    ParamGrid,
    ParamList,
    RunDescription,
    command_argv,
    shorthands,
)
from sample_factory.launcher.run_processes import core_sets
from sample_factory.launcher.run_slurm import DEFAULT_TEMPLATE, sbatch_command, sbatch_script
from sample_factory.launcher.status import FINISHED, INTERRUPTED, read_status

# ---- the description ----


def test_param_grid_is_the_cartesian_product_first_parameter_slowest():
    grid = ParamGrid([("seed", [1, 2]), ("learning_rate", [0.1, 0.01, 0.001])])
    params = list(grid.generate_params())
    assert len(params) == 6
    assert params[0] == {"seed": 1, "learning_rate": 0.1}
    assert params[2] == {"seed": 1, "learning_rate": 0.001}
    assert params[3] == {"seed": 2, "learning_rate": 0.1}
    assert sorted(map(str, grid.generate_params(randomize=True))) == sorted(map(str, params))


def test_param_grid_takes_tuples_of_parameters_together():
    grid = ParamGrid([("seed", [0]), (("use_rnn", "recurrence"), ([False, 1], [True, 16]))])
    assert list(grid.generate_params()) == [
        {"seed": 0, "use_rnn": False, "recurrence": 1},
        {"seed": 0, "use_rnn": True, "recurrence": 16},
    ]
    with pytest.raises(ValueError, match="2-tuples"):
        ParamGrid([(("use_rnn", "recurrence"), ([False, 1], [True]))])


def test_short_names_are_2x_names_and_stay_distinct():
    assert shorthands(["seed", "learning_rate"]) == ["see", "l.rat"]
    a, b = shorthands(["env_frameskip", "env_framestack"])
    assert a == "e.fra" and b != a and b.startswith("e.fra")


def test_runs_get_unique_readable_names_and_their_own_folders(tmp_path):
    grid = ParamGrid([("seed", [1, 2]), ("learning_rate", [1e-3, 3e-4])])
    description = RunDescription(
        "lr_sweep", [Experiment("cp", "python -m sf_examples.train_gym_env", grid.generate_params())]
    )
    runs = description.runs(tmp_path)
    assert [r.name for r in runs] == [
        "00_cp_see_1_l.rat_0.001",
        "01_cp_see_1_l.rat_0.0003",
        "02_cp_see_2_l.rat_0.001",
        "03_cp_see_2_l.rat_0.0003",
    ]
    first = runs[0]
    assert first.sweep_dir == tmp_path / "lr_sweep" / "cp_"  # 2.x's layout: <run_name>/<experiment>_<suffix>
    assert first.experiment_dir == first.sweep_dir / first.name
    argv = first.argv("/venv/bin/python")
    assert argv[:3] == ["/venv/bin/python", "-m", "sf_examples.train_gym_env"]
    assert "--seed=1" in argv and "--learning_rate=0.001" in argv
    assert f"--experiment={first.name}" in argv and f"--train_dir={first.sweep_dir}" in argv
    # 2.x's generator interface
    cmd, name, root_dir, env_vars = next(description.generate_experiments(tmp_path))
    assert (cmd, name, root_dir, env_vars) == (first.cmd, first.name, "lr_sweep/cp_", None)

    description.experiment_suffix = "v2"
    assert description.runs(tmp_path)[0].sweep_dir == tmp_path / "lr_sweep" / "cp_v2"


def test_an_experiment_without_parameters_is_one_run_and_duplicates_are_refused(tmp_path):
    single = RunDescription("one", [Experiment("solo", "python -m x --a=1")]).runs(tmp_path)
    assert [r.name for r in single] == ["00_solo"]
    twice = RunDescription("dup", [Experiment("same", "python -m x"), Experiment("same", "python -m y")])
    with pytest.raises(ValueError, match="share the folder"):
        twice.runs(tmp_path)
    listed = RunDescription("l", [Experiment("e", "cmd", ParamList([{"a": "x y"}]))]).runs(tmp_path)
    assert command_argv(listed[0].cmd, "python")[1] == "--a=x y"  # a value with a space stays one argument
    assert listed[0].name == "00_e_a_x-y"


def test_a_sweep_module_is_found_on_the_import_path(tmp_path, monkeypatch):
    (tmp_path / "my_sweep.py").write_text(
        "from sample_factory.launcher.run_description import *\n"
        "RUN_DESCRIPTION = RunDescription('s', [Experiment('e', 'python -m x')])\n"
    )
    (tmp_path / "not_a_sweep.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert load_run_description("my_sweep", "sfx").experiment_suffix == "sfx"
    with pytest.raises(SweepModuleError, match="no RUN_DESCRIPTION"):
        load_run_description("not_a_sweep")
    with pytest.raises(SweepModuleError, match="cannot import"):
        load_run_description("no_such_sweep_module")


def test_core_sets_split_the_cores_between_run_slots():
    assert core_sets([0, 1, 2, 3, 4], 2) == [[0, 1], [2, 3]]
    assert core_sets([0, 1], 4) == []  # fewer cores than runs: they share


def test_durations_in_gnu_timeout_spelling():
    assert parse_timeout("90") == 90 and parse_timeout("90s") == 90
    assert parse_timeout("5m") == 300 and parse_timeout("2h") == 7200 and parse_timeout("0") == 0
    with pytest.raises(Exception, match="duration"):
        parse_timeout("soon")


# ---- the sbatch script ----


def _slurm_args(**kw):
    args = dict(
        slurm_gpus_per_job=1,
        slurm_cpus_per_gpu=4,
        slurm_partition=None,
        slurm_timeout="0",
        slurm_sbatch_template=None,
    )
    return Namespace(**{**args, **kw})


def test_sbatch_script_from_the_default_template(tmp_path):
    run = RunDescription("s", [Experiment("e", "python -m x", ParamGrid([("seed", [7])]).generate_params())]).runs(
        tmp_path
    )[0]
    args = _slurm_args(slurm_timeout="10m", slurm_gpus_per_job=2, slurm_partition="gpu")
    script = sbatch_script(DEFAULT_TEMPLATE, run, args, tmp_path, python="/venv/bin/python")
    assert "$" not in script.replace("$?", "").replace("$code", "")  # every placeholder filled
    assert "sample_factory.launcher.job" in script and "--timeout 600" in script
    assert f"--status {run.status_path}" in script and "/venv/bin/python -m x --seed=7" in script
    assert f"cd {os.getcwd()}" in script
    assert "-eq 124" in script  # a timed-out run is submitted again
    cmd = sbatch_command(tmp_path / "sbatch_x.sh", run, args, tmp_path)
    assert cmd[:2] == ["sbatch", "--parsable"] and "--gres=gpu:2" in cmd and "-c" in cmd
    assert cmd[cmd.index("-c") + 1] == "8" and cmd[cmd.index("-p") + 1] == "gpu"
    no_gpu = sbatch_command(tmp_path / "s.sh", run, _slurm_args(slurm_gpus_per_job=0), tmp_path)
    assert not any(c.startswith("--gres") for c in no_gpu) and no_gpu[no_gpu.index("-c") + 1] == "4"


def test_a_2x_sbatch_template_works_unchanged(tmp_path):
    template = textwrap.dedent(
        """\
        #!/bin/bash
        conda activate sf2
        timeout $TIMEOUT $CMD
        if [[ $$? -eq 124 ]]; then
            sbatch $PARTITION--gres=gpu:$GPU -c $CPU --parsable --output $FILENAME-slurm-%j.out $FILENAME
        fi
        """
    )
    run = RunDescription("s", [Experiment("e", "python -m x")]).runs(tmp_path)[0]
    script = sbatch_script(template, run, _slurm_args(slurm_timeout="2h", slurm_partition="p1"), tmp_path)
    assert "timeout 2h " in script and "sbatch -p p1 --gres=gpu:1 -c 4 " in script
    assert f"{tmp_path}/sbatch_00_e.sh-slurm-%j.out {tmp_path}/sbatch_00_e.sh" in script
    assert "if [[ $? -eq 124 ]]" in script


# ---- the job wrapper ----


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


def test_job_records_finished_and_failed(tmp_path):
    status, log = tmp_path / "s.json", tmp_path / "s.log"
    assert run_job(_python("print('hello')"), status, log) == 0
    record = read_status(status)
    assert record["status"] == FINISHED and record["returncode"] == 0 and record["attempts"] == 1
    assert "hello" in log.read_text()
    assert run_job(_python("raise SystemExit(3)"), status, log) == 3
    record = read_status(status)
    assert record["status"] == "failed" and record["returncode"] == 3 and record["attempts"] == 2


# A command that saves on SIGINT the way a training run does, and leaves a child that ignores it.
_SAVES_ON_SIGINT = """
import signal, subprocess, sys, time
from pathlib import Path
out = Path(sys.argv[1])
child = subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); time.sleep(600)"])
out.with_suffix(".child").write_text(str(child.pid))
def save(*_):
    out.write_text("saved")
    sys.exit(0)
signal.signal(signal.SIGINT, save)
out.with_suffix(".started").write_text("")
time.sleep(600)
"""


def test_job_timeout_stops_the_command_so_it_saves_and_kills_what_it_left(tmp_path):
    status, log, out = tmp_path / "s.json", tmp_path / "s.log", tmp_path / "out"
    started = time.monotonic()
    code = run_job(_python(_SAVES_ON_SIGINT) + [str(out)], status, log, timeout_sec=2.0)
    assert code == EXIT_TIMED_OUT and time.monotonic() - started < 30
    assert out.read_text() == "saved"
    assert read_status(status)["status"] == "timed_out"
    grandchild = int(out.with_suffix(".child").read_text())
    assert_gone([grandchild])


def test_job_forwards_sigterm_as_a_graceful_stop(tmp_path):
    status, log, out = tmp_path / "s.json", tmp_path / "s.log", tmp_path / "out"
    cmd = [sys.executable, "-m", "sample_factory.launcher.job", "--status", str(status), "--log", str(log), "--"]
    wrapper = subprocess.Popen(cmd + _python(_SAVES_ON_SIGINT) + [str(out)], cwd=REPO)
    wait_for(lambda: out.with_suffix(".started").exists(), 30)
    wrapper.send_signal(signal.SIGTERM)
    assert wrapper.wait(timeout=30) == EXIT_INTERRUPTED
    assert out.read_text() == "saved" and read_status(status)["status"] == INTERRUPTED
    assert_gone([int(out.with_suffix(".child").read_text())])


def test_job_refuses_no_command(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "sample_factory.launcher.job", "--status", "s", "--log", "l"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 2 and "no command given" in result.stderr


# ---- real sweeps ----


@pytest.mark.timeout(400)
def test_a_2x2_cartpole_sweep_on_processes_completes_and_a_rerun_skips_it(tmp_path, monkeypatch):
    write_sweep(tmp_path, "sweep_done", env_steps=4000)
    launcher = launch(tmp_path, "sweep_done", "--max_parallel=2", "--pause_between=0")
    assert launcher.wait(timeout=300) == 0
    runs = runs_of(tmp_path, "sweep_done", monkeypatch)
    assert len(runs) == 4
    for run in runs:
        record = read_status(run.status_path)
        assert record["status"] == FINISHED, (run.name, record, run.log_path.read_text()[-2000:])
        assert record["params"] == run.params and record["attempts"] == 1
        assert (run.experiment_dir / "config.json").is_file()  # the run's own folder, as named
        assert json.loads((run.experiment_dir / "config.json").read_text())["seed"] == run.params["seed"]
        assert "Done:" in run.log_path.read_text()
    results = [result_of(r) for r in runs]
    assert all(r.env_steps and r.env_steps > 0 and r.fps for r in results)
    table = format_table(results)
    assert table.count("finished") == 4 and "learning_rate" in table.splitlines()[0]
    png = tmp_path / "curves.png"
    results_cmd = [sys.executable, "-m", "sample_factory.launcher.results", "--run=sweep_done"]
    results_cmd += [f"--train_dir={tmp_path / 'td'}", f"--plot={png}", "--group_by=learning_rate"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(REPO)]))
    shown = subprocess.run(results_cmd, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.count("finished") == 4 and png.stat().st_size > 10_000
    bad = subprocess.run(results_cmd[:-2] + ["--group_by=nope"], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert (
        bad.returncode == 2 and bad.stderr.strip() == "error: --group_by=nope: no run of the sweep has that parameter"
    )

    again = launch(
        tmp_path, "sweep_done", "--max_parallel=2", stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    out, _ = again.communicate(timeout=60)
    assert again.returncode == 0 and out.count("skipping") == 4 and "0 of 4 runs to do" in out
    assert all(read_status(r.status_path)["attempts"] == 1 for r in runs)  # nothing ran again


@pytest.mark.timeout(400)
def test_ctrl_c_stops_every_run_with_a_checkpoint_and_a_rerun_resumes_them(tmp_path, monkeypatch):
    write_sweep(tmp_path, "sweep_stop", env_steps=30_000, seeds=(1,))
    launcher = launch(tmp_path, "sweep_stop", "--max_parallel=2", "--pause_between=0")
    runs = runs_of(tmp_path, "sweep_stop", monkeypatch)
    checkpoints = [r.experiment_dir / "checkpoint_p0" for r in runs]
    wait_for(lambda: all(c.is_dir() and any(c.glob("*.pth")) for c in checkpoints), 200, "first checkpoints")
    descendants = [p.pid for p in psutil.Process(launcher.pid).children(recursive=True)]
    assert len(descendants) >= 4  # two wrappers, two training runs and their workers
    launcher.send_signal(signal.SIGINT)
    assert launcher.wait(timeout=120) == EXIT_INTERRUPTED
    assert_gone(descendants)
    for run in runs:
        assert read_status(run.status_path)["status"] == INTERRUPTED
        assert "SIGINT received: saving and stopping" in run.log_path.read_text()

    resumed = launch(tmp_path, "sweep_stop", "--max_parallel=2", "--pause_between=0")
    assert resumed.wait(timeout=250) == 0
    for run in runs:
        record = read_status(run.status_path)
        assert record["status"] == FINISHED and record["attempts"] == 2
        assert "resum" in run.log_path.read_text().split("attempt 2")[-1].lower()


@pytest.mark.timeout(300)
def test_the_same_sweep_completes_on_a_local_ray_cluster(tmp_path, monkeypatch):
    pytest.importorskip("ray")
    write_sweep(tmp_path, "sweep_ray", env_steps=3000)
    launcher = launch(
        tmp_path,
        "sweep_ray",
        "--backend=ray",
        "--ray_num_cpus=2",
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    out, _ = launcher.communicate(timeout=240)
    assert launcher.returncode == 0, out[-3000:]
    assert "Ray cluster: 2 CPUs" in out and "4 finished, 0 not" in out
    for run in runs_of(tmp_path, "sweep_ray", monkeypatch):
        record = read_status(run.status_path)
        assert record["status"] == FINISHED and record["backend"] == "ray", record
        assert f"{run.name} finished on {record['host']}" in out  # the record came back from the task
    ray_daemons = [p for p in psutil.process_iter(["name", "cmdline"]) if _is_ray_daemon(p)]
    assert not ray_daemons, [p.info["cmdline"] for p in ray_daemons]


def _is_ray_daemon(p: psutil.Process) -> bool:
    cmdline = " ".join(p.info.get("cmdline") or [])
    return any(name in cmdline for name in ("raylet", "gcs_server", "ray::", "default_worker.py"))


def test_bad_sweep_input_is_one_line_error(tmp_path):
    launcher = launch(tmp_path, "no_such_module", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, err = launcher.communicate(timeout=60)
    assert launcher.returncode == 2 and err.strip().startswith("error: --run=no_such_module: cannot import")
    assert len(err.strip().splitlines()) == 1


def test_processes_backend_gives_each_run_its_gpu_and_its_cores(tmp_path, monkeypatch):
    probe = (
        "import json, os, sys; from pathlib import Path; "
        "d = Path([a for a in sys.argv if a.startswith('--train_dir=')][0].split('=', 1)[1]); "
        "name = [a for a in sys.argv if a.startswith('--experiment=')][0].split('=', 1)[1]; "
        "(d / (name + '.probe')).write_text(json.dumps({'gpu': os.environ.get('CUDA_VISIBLE_DEVICES'), "
        "'cores': sorted(os.sched_getaffinity(0)), 'omp': os.environ.get('OMP_NUM_THREADS')}))"
    )
    (tmp_path / "sweep_probe.py").write_text(
        "from sample_factory.launcher.run_description import Experiment, ParamGrid, RunDescription\n"
        f"RUN_DESCRIPTION = RunDescription('probe', [Experiment('p', {('python -c ' + repr(probe))!r}, "
        "ParamGrid([('seed', [1, 2, 3, 4])]))])\n"
    )
    flags = ["--max_parallel=2", "--pause_between=0", "--num_gpus=2", "--experiments_per_gpu=1"]
    assert launch(tmp_path, "sweep_probe", *flags).wait(timeout=60) == 0
    probes = [
        json.loads((r.sweep_dir / f"{r.name}.probe").read_text()) for r in runs_of(tmp_path, "sweep_probe", monkeypatch)
    ]
    assert {p["gpu"] for p in probes} == {"0", "1"}
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) >= 2:  # each of the two run slots owns half of the cores
        per_run = len(cores) // 2
        assert all(len(p["cores"]) == per_run and p["omp"] == str(per_run) for p in probes)
        assert {tuple(p["cores"]) for p in probes} == {tuple(cores[:per_run]), tuple(cores[per_run : 2 * per_run])}


@pytest.mark.timeout(300)
def test_a_killed_launcher_leaves_no_run_behind_and_each_saves(tmp_path, monkeypatch):
    write_sweep(tmp_path, "sweep_kill", env_steps=1_000_000, seeds=(1,), lrs=(1e-3,))
    launcher = launch(tmp_path, "sweep_kill", "--pause_between=0")
    (run,) = runs_of(tmp_path, "sweep_kill", monkeypatch)
    wait_for(lambda: any((run.experiment_dir / "checkpoint_p0").glob("*.pth")), 200, "the first checkpoint")
    descendants = [p.pid for p in psutil.Process(launcher.pid).children(recursive=True)]
    launcher.kill()
    launcher.wait()
    assert_gone(descendants, timeout=60)
    assert read_status(run.status_path)["status"] == INTERRUPTED
    assert "SIGINT received: saving and stopping" in run.log_path.read_text()


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--max_parallel=0"], "error: --max_parallel=0: at least one run must be allowed"),
        (["--num_gpus=4"], "error: --num_gpus=4 spreads runs over GPUs only with --experiments_per_gpu=K"),
        (["--experiments_per_gpu=2", "--num_gpus=0"], "error: --experiments_per_gpu=2 needs --num_gpus=1 or more"),
    ],
)
def test_processes_flags_that_would_do_nothing_are_refused(tmp_path, flags, message):
    write_sweep(tmp_path, "sweep_flags", env_steps=1000)
    launcher = launch(tmp_path, "sweep_flags", *flags, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, err = launcher.communicate(timeout=60)
    assert launcher.returncode == 2 and err.strip().startswith(message)
    assert not (tmp_path / "td").exists()  # nothing started
