"""Shared by the launcher tests: a CartPole sweep module written to a folder, the launcher run on it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil

from sample_factory.launcher.run import load_run_description

REPO = Path(__file__).resolve().parent.parent


def wait_for(predicate, timeout: float, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def assert_gone(pids, timeout: float = 15):
    def gone(pid):
        try:
            return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    wait_for(lambda: all(gone(p) for p in pids), timeout, f"processes {pids} to exit")


def write_sweep(folder: Path, module: str, env_steps: int, seeds=(1, 2), lrs=(1e-3, 3e-4)) -> None:
    (folder / f"{module}.py").write_text(
        textwrap.dedent(
            f"""\
            from sample_factory.launcher.run_description import Experiment, ParamGrid, RunDescription

            _grid = ParamGrid([("seed", {list(seeds)}), ("learning_rate", {list(lrs)})])
            _cmd = (
                "python -m sf_examples.train_gym_env --env=CartPole-v1 --num_workers=1 --num_envs_per_worker=4"
                " --save_every_sec=5 --train_for_env_steps={env_steps}"
            )
            RUN_DESCRIPTION = RunDescription("{module}", [Experiment("cp", _cmd, _grid.generate_params())])
            """
        )
    )


def launch(folder: Path, module: str, *flags, extra_env: dict | None = None, **popen) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(folder), str(REPO)]), **(extra_env or {}))
    cmd = [sys.executable, "-m", "sample_factory.launcher.run", f"--run={module}", f"--train_dir={folder / 'td'}"]
    return subprocess.Popen(cmd + list(flags), cwd=folder, env=env, **popen)


def runs_of(folder: Path, module: str, monkeypatch):
    monkeypatch.syspath_prepend(str(folder))
    return load_run_description(module).runs(folder / "td")
