"""A real one-node Slurm cluster on localhost for tests: munged, slurmctld and slurmd in a temp dir.

    with LocalSlurm() as cluster:
        job_id = cluster.sbatch("-c", "1", "--wrap", "echo $SLURM_JOB_ID > out.txt")
        cluster.wait_for_jobs_done()

or the module-scoped fixture `slurm_cluster`. A subprocess reaches the cluster with
`env={**os.environ, **cluster.env}`. Needs root and Debian's `slurmctld slurmd slurm-client munge`
packages, and skips the test otherwise. Nothing global is touched: the config, munge key and
socket, state, spool and logs all live in the temp dir, and the daemons listen on free ports.
"""

from __future__ import annotations

import ctypes
import os
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import psutil
import pytest

DAEMONS = ("munged", "slurmctld", "slurmd")
TOOLS = ("mungekey", "sbatch", "squeue", "sinfo", "scontrol", "scancel")
SBIN_DIRS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")


def search_path() -> str:
    dirs = os.environ.get("PATH", "").split(os.pathsep)
    return os.pathsep.join(dirs + [d for d in SBIN_DIRS if d not in dirs])


def missing_requirements() -> str | None:
    """Why a local cluster cannot start here, or None."""
    missing = [name for name in DAEMONS + TOOLS if shutil.which(name, path=search_path()) is None]
    if missing:
        return f"Slurm is not installed (missing {', '.join(missing)}; apt-get install slurm-wlm munge)"
    if os.geteuid() != 0:
        return "a local Slurm cluster needs root (slurmd starts jobs as their user)"
    return None


def free_ports(count: int) -> list[int]:
    socks = [socket.socket() for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(("", 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def die_with_parent():
    """preexec_fn: the kernel kills the daemon if pytest (the thread that started it) dies without a teardown."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class LocalSlurm:
    """Starts the cluster on enter and stops every process it started on exit."""

    def __init__(self, cpus: int | None = None, start_timeout: float = 30.0):
        # At least 2 CPUs, so two one-CPU jobs run at once even on a 1-core machine;
        # config_overrides below makes slurmd accept more CPUs than the hardware has.
        self.cpus = cpus or max(2, os.cpu_count() or 1)
        self.start_timeout = start_timeout
        self.dir: str | None = None
        self.env: dict[str, str] = {}
        self.node = socket.gethostname().split(".")[0]
        self.procs: dict[str, subprocess.Popen] = {}

    def __enter__(self) -> LocalSlurm:
        self.start()
        return self

    def __exit__(self, *exc_info):
        self.stop()

    def path(self, name: str) -> str:
        return os.path.join(self.dir, name)

    def start(self):
        reason = missing_requirements()
        if reason:
            pytest.skip(reason)
        self.dir = tempfile.mkdtemp(prefix="slurm-local-")
        # munged refuses a socket whose directory is not executable by all.
        os.chmod(self.dir, 0o711)
        for sub in ("state", "spool"):
            os.mkdir(self.path(sub))
        conf = self.path("slurm.conf")
        with open(conf, "w") as f:
            f.write(self.slurm_conf())
        self.env = {"SLURM_CONF": conf, "PATH": search_path()}
        try:
            self.run(["mungekey", "--create", f"--keyfile={self.path('munge.key')}"])
            self.spawn(
                "munged",
                "--foreground",
                f"--socket={self.path('munge.socket')}",
                f"--key-file={self.path('munge.key')}",
                f"--pid-file={self.path('munged.pid')}",
                f"--seed-file={self.path('munged.seed')}",
            )
            self.wait_for(lambda: os.path.exists(self.path("munge.socket")), "munged to create its socket")
            self.spawn("slurmctld", "-D")
            self.spawn("slurmd", "-D", "-N", self.node)
            self.wait_for(self.node_idle, f"node {self.node} to be idle in sinfo")
        except BaseException:
            self.stop()
            raise

    def slurm_conf(self) -> str:
        ctld_port, slurmd_port = free_ports(2)
        return f"""\
ClusterName=sftest
SlurmctldHost={self.node}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# A requeued job waits cred_expire seconds (default 120) before it may start again.
AuthInfo=socket={self.path("munge.socket")},cred_expire=5
StateSaveLocation={self.path("state")}
SlurmdSpoolDir={self.path("spool")}
SlurmctldPidFile={self.path("slurmctld.pid")}
SlurmdPidFile={self.path("slurmd.pid")}
SlurmctldLogFile={self.path("slurmctld.log")}
SlurmdLogFile={self.path("slurmd.log")}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
JobRequeue=1
InactiveLimit=0
KillWait=5
MinJobAge=30
# Scheduling passes every second (defaults 60 s and 30 s) start requeued jobs as soon as they may run.
SchedulerParameters=sched_interval=1,bf_interval=1
SlurmdParameters=config_overrides
NodeName={self.node} NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory=1000 State=UNKNOWN
PartitionName=debug Nodes={self.node} Default=YES MaxTime=INFINITE State=UP
"""

    def spawn(self, name: str, *args: str):
        with open(self.path(f"{name}.out"), "w") as out:
            self.procs[name] = subprocess.Popen(
                [name, *args],
                env={**os.environ, **self.env},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )

    def wait_for(self, condition, what: str):
        deadline = time.monotonic() + self.start_timeout
        while not condition():
            dead = [name for name, proc in self.procs.items() if proc.poll() is not None]
            if dead or time.monotonic() > deadline:
                why = f"{', '.join(dead)} exited" if dead else f"timed out after {self.start_timeout:.0f} s"
                raise RuntimeError(f"local Slurm: waiting for {what}: {why}\n{self.logs()}")
            time.sleep(0.1)

    def node_idle(self) -> bool:
        result = self.run(["sinfo", "--noheader", "--Node", "--format=%T"], check=False)
        return result.returncode == 0 and result.stdout.split() == ["idle"]

    def logs(self, lines: int = 30) -> str:
        parts = []
        for name in sorted(os.listdir(self.dir)):
            if name.endswith((".log", ".out")):
                with open(self.path(name), errors="replace") as f:
                    tail = f.readlines()[-lines:]
                parts.append(f"--- {name} (last {len(tail)} lines)\n{''.join(tail)}")
        return "\n".join(parts)

    def run(self, cmd: str | list[str], check: bool = True, timeout: float = 30.0, **kwargs):
        """Runs a Slurm command against this cluster; by default in its dir, so slurm-*.out land there."""
        args = shlex.split(cmd) if isinstance(cmd, str) else list(cmd)
        kwargs.setdefault("cwd", self.dir)
        result = subprocess.run(
            args, env={**os.environ, **self.env}, capture_output=True, text=True, timeout=timeout, **kwargs
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"{shlex.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
        return result

    def sbatch(self, *args: str, **kwargs) -> int:
        """Submits a batch job and returns its id."""
        return int(self.run(["sbatch", "--parsable", *args], **kwargs).stdout.strip().split(";")[0])

    def job_ids(self) -> list[int]:
        return [int(job) for job in self.run(["squeue", "--noheader", "--format=%A"]).stdout.split()]

    def wait_for_jobs_done(self, timeout: float = 60.0):
        """Waits until squeue is empty (pending, running, requeued and completing jobs all count)."""
        deadline = time.monotonic() + timeout
        while self.job_ids():
            if time.monotonic() > deadline:
                queue = self.run(["squeue", "--format=%A %j %T %r"]).stdout
                raise TimeoutError(f"Slurm jobs still queued after {timeout:.0f} s:\n{queue}")
            time.sleep(0.2)

    def own_processes(self) -> list[psutil.Process]:
        """Live processes of this cluster: the daemons, slurmscriptd, slurmstepd and the jobs.

        The daemons (from spawn()) and the jobs (from sbatch) carry our SLURM_CONF in their
        environment. slurmscriptd and slurmstepd overwrite theirs with a process title, and slurmd
        double-forks slurmstepd so it is no descendant, but both keep a log file of ours open.
        """
        mine = []
        for proc in psutil.process_iter():
            if proc.pid == os.getpid():
                continue
            try:
                if proc.status() == psutil.STATUS_ZOMBIE:
                    continue
                if proc.environ().get("SLURM_CONF") == self.env["SLURM_CONF"] or any(
                    f.path.startswith(self.dir + os.sep) for f in proc.open_files()
                ):
                    mine.append(proc)
            except psutil.Error:
                pass
        return mine

    def stop(self):
        """Cancels the jobs, stops the daemons, kills what is left and checks that nothing remains."""
        if self.dir is None:
            return
        try:
            self.cancel_jobs()
            for name in ("slurmd", "slurmctld", "munged"):
                proc = self.procs.get(name)
                if proc is not None and proc.poll() is None:
                    proc.terminate()
                    try:
                        proc.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()
            leftovers = self.own_processes()
            for proc in leftovers:
                try:
                    proc.kill()
                except psutil.NoSuchProcess:
                    pass
            psutil.wait_procs(leftovers, timeout=5)
            alive = self.own_processes()
            if alive:
                raise RuntimeError(f"local Slurm: processes survived SIGKILL: {[p.pid for p in alive]}")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def cancel_jobs(self):
        """Best effort: lets slurmstepd end the jobs cleanly while slurmctld and slurmd still run."""
        if any(self.procs.get(name) is None or self.procs[name].poll() is not None for name in ("slurmctld", "slurmd")):
            return
        try:
            jobs = self.job_ids()
            if jobs:
                self.run(["scancel", *map(str, jobs)], check=False)
                self.wait_for_jobs_done(timeout=15)
        except (RuntimeError, TimeoutError, subprocess.TimeoutExpired):
            pass  # stop() kills whatever is left


@pytest.fixture(scope="module")
def slurm_cluster():
    """A running LocalSlurm, shared by the tests of one module; skips them if Slurm is missing."""
    with LocalSlurm() as cluster:
        yield cluster
