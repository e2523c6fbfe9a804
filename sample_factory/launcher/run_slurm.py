"""`--backend=slurm`: one sbatch script per run, submitted with `sbatch`.

The script comes from a template (`--slurm_sbatch_template`, or DEFAULT_TEMPLATE) through
`string.Template`, with sample-factory 2.x's placeholders, so a 2.x template works unchanged:

  $CMD        the run's command, wrapped in `launcher/job.py` (status record, log, --slurm_timeout)
  $FILENAME   the script's own path          $PARTITION  "-p <partition> " or ""
  $GPU $CPU   GPUs and cores of the job      $TIMEOUT    --slurm_timeout as given ("0": none)

and three of this project's: $NAME (the run), $WORKDIR (the folder the launcher ran in, where the
sweep module imports from) and $RESUBMIT (the sbatch command line that submits the script again).

A run stopped at --slurm_timeout saves its checkpoint and the wrapper exits 124; the default
template then submits the script again, and the run resumes from its checkpoint. Finished runs
are skipped. The launcher submits and returns; `python -m sample_factory.launcher.results` tells
how the runs stand.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from string import Template

from sample_factory.cfg.cfg import str2bool
from sample_factory.launcher.job import parse_timeout
from sample_factory.launcher.run_description import SweepRun
from sample_factory.launcher.status import FAILED, QUEUED, runs_to_do, update_status

log = logging.getLogger(__name__)

DEFAULT_TEMPLATE = """#!/bin/bash
# sbatch script of run $NAME, written by sample_factory.launcher
cd $WORKDIR || exit 1
$CMD
code=$$?
if [ $$code -eq 124 ]; then
    # stopped at --slurm_timeout after saving its checkpoint: submit again, the run resumes
    $RESUBMIT
fi
exit $$code
"""


def add_slurm_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    g = parser.add_argument_group("slurm backend")
    g.add_argument("--slurm_gpus_per_job", default=1, type=int, help="GPUs per job (0: ask for none)")
    g.add_argument("--slurm_cpus_per_gpu", default=14, type=int, help="Cores per GPU of a job (per job with 0 GPUs)")
    g.add_argument("--slurm_print_only", default=False, type=str2bool, help="Write and print the scripts, submit none")
    g.add_argument("--slurm_workdir", default=None, type=str, help="Scripts and Slurm's output files go here")
    g.add_argument("--slurm_partition", default=None, type=str, help='Partition: "gpu" adds "-p gpu" to sbatch')
    g.add_argument("--slurm_sbatch_template", default=None, type=str, help="The script template (see run_slurm.py)")
    g.add_argument(
        "--slurm_timeout",
        default="0",
        type=str,
        help="Stop a run after this long (90s, 5m, 2h; it saves) and submit it again; 0: no limit",
    )
    return parser


def job_resources(args) -> tuple[int, int]:
    """(GPUs, cores) of one job: cores per GPU times GPUs, or per job when it asks for no GPU."""
    gpus = max(0, args.slurm_gpus_per_job)
    return gpus, args.slurm_cpus_per_gpu * max(1, gpus)


def sbatch_command(script: Path, run: SweepRun, args, workdir: Path) -> list[str]:
    gpus, cpus = job_resources(args)
    cmd = ["sbatch", "--parsable", f"--job-name={run.name}", "-c", str(cpus)]
    cmd += [f"--output={workdir / (script.name + '-slurm-%j.out')}"]
    if gpus:
        cmd.append(f"--gres=gpu:{gpus}")
    if args.slurm_partition:
        cmd += ["-p", args.slurm_partition]
    return cmd + [str(script)]


def sbatch_script(template: str, run: SweepRun, args, workdir: Path, python: str = sys.executable) -> str:
    """The script of one run: the template with every placeholder filled."""
    script = workdir / f"sbatch_{run.name}.sh"
    timeout_sec = parse_timeout(args.slurm_timeout)
    wrapper = [
        python,
        "-m",
        "sample_factory.launcher.job",
        "--status",
        str(run.status_path),
        "--log",
        str(run.log_path),
    ]
    if timeout_sec:
        wrapper += ["--timeout", f"{timeout_sec:g}"]
    env = ["env", *(f"{k}={v}" for k, v in run.env_vars.items())] if run.env_vars else []
    gpus, cpus = job_resources(args)
    return Template(template).substitute(
        CMD=shlex.join(env + wrapper + ["--", *run.argv(python)]),
        FILENAME=str(script),
        PARTITION=f"-p {args.slurm_partition} " if args.slurm_partition else "",
        GPU=gpus,
        CPU=cpus,
        TIMEOUT=args.slurm_timeout,
        NAME=run.name,
        WORKDIR=shlex.quote(os.getcwd()),
        RESUBMIT=shlex.join(sbatch_command(script, run, args, workdir)),
    )


def run_slurm(run_description, args) -> int:
    runs = run_description.runs(args.train_dir)
    workdir = Path(args.slurm_workdir or Path(args.train_dir) / run_description.run_name / "_slurm").resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    template = Path(args.slurm_sbatch_template).read_text() if args.slurm_sbatch_template else DEFAULT_TEMPLATE
    parse_timeout(args.slurm_timeout)  # a bad duration fails here, before any script is written

    submitted, failed = 0, 0
    for run in runs_to_do(runs):
        run.experiment_dir.parent.mkdir(parents=True, exist_ok=True)
        script = workdir / f"sbatch_{run.name}.sh"
        script.write_text(sbatch_script(template, run, args, workdir))
        script.chmod(0o755)
        cmd = sbatch_command(script, run, args, workdir)
        if args.slurm_print_only:
            print(shlex.join(cmd))
            continue
        # Queued before sbatch: the job may start (and write its own record) before sbatch returns.
        update_status(run.status_path, status=QUEUED, backend="slurm", params=run.params)
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            error = (result.stderr or result.stdout).strip()
            log.error("sbatch refused %s: %s", run.name, error)
            update_status(run.status_path, status=FAILED, error=f"sbatch: {error}")
            failed += 1
            continue
        log.info("submitted %s as Slurm job %s", run.name, result.stdout.strip().split(";")[0])
        submitted += 1
        time.sleep(args.pause_between)

    if not args.slurm_print_only:
        log.info("%d runs submitted (%d refused); scripts and Slurm output in %s", submitted, failed, workdir)
        log.info("where they stand: python -m sample_factory.launcher.results --run=%s", args.run)
    return 1 if failed else 0
