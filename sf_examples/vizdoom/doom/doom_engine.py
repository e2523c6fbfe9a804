"""The lifecycle of ViZDoom engine processes: start them so they survive what they must, stop them always.

ViZDoom runs each game in an engine child process. These helpers make sure that:

- a Ctrl-C or SIGTERM sent to the whole process group does not kill the engines under a worker
  that is still stepping them (the runner stops the workers itself, with a final checkpoint): the
  engine is started with SIGINT and SIGTERM blocked, a mask it inherits;
- an engine never outlives its env: `close()` runs `game.close()` (also from `atexit`), and an
  `engine_watchdog` child (one per process, shared by its envs) kills the engines when the
  process dies without closing them (SIGKILL, OOM killer, segfault) and removes their /dev/shm
  segments and temporary folders;
- parallel envs never share files or ports: each env keeps its engines' ini files in its own
  temporary folder, and multiplayer hosts get a port the OS reports free.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import weakref
from collections.abc import Callable

import psutil

log = logging.getLogger(__name__)

WATCHDOG_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "engine_watchdog.py")
ENGINE_EXIT_WAIT_SEC = 5.0


def import_vizdoom():
    """vizdoom, imported on first use so that the library and its tests never need it."""
    try:
        import vizdoom
    except ImportError as e:
        raise ImportError(
            "the Doom envs need ViZDoom: pip install vizdoom (or pip install sample-factory[vizdoom])"
        ) from e
    return vizdoom


def free_udp_port() -> int:
    """A UDP port no socket is bound to right now (Doom's netcode is UDP)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def _instance_id(cmdline: list[str]) -> str:
    for i, arg in enumerate(cmdline[:-1]):
        if arg == "+viz_instance_id":
            return cmdline[i + 1]
    return ""


class _ProcessWatchdog:
    """The one `engine_watchdog` child of this process, shared by all its envs while any is open.

    A watchdog per env would be a Python process (~4 MiB) per env: 120 MiB for 32 Doom envs.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._owner_pid = os.getpid()
        self._users = 0

    def _forget_if_forked(self):
        if self._owner_pid != os.getpid():  # a forked child: the parent's watchdog is not ours
            self._proc, self._owner_pid, self._users = None, os.getpid(), 0

    def acquire(self):
        with self._lock:
            self._forget_if_forked()
            self._users += 1

    def watch(self, engine_pid: int, instance_id: str, folder: str) -> bool:
        """Tells the watchdog about an engine and its env's folder (starting the watchdog first); False if it is gone."""
        with self._lock:
            self._forget_if_forked()
            if self._proc is None:
                self._proc = subprocess.Popen(
                    [sys.executable, "-I", "-S", WATCHDOG_SCRIPT], stdin=subprocess.PIPE, close_fds=True
                )
            try:
                self._proc.stdin.write(f"{engine_pid} {instance_id} {folder}\n".encode())
                self._proc.stdin.flush()
                return True
            except (BrokenPipeError, OSError):
                return False

    def release(self):
        """The last open env is closed: the watchdog checks its list (nothing left to kill) and exits."""
        with self._lock:
            self._forget_if_forked()
            self._users = max(0, self._users - 1)
            if self._users > 0 or self._proc is None:
                return
            proc, self._proc = self._proc, None
        try:
            proc.stdin.close()
        except OSError:
            pass
        try:
            proc.wait(ENGINE_EXIT_WAIT_SEC)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


_WATCHDOG = _ProcessWatchdog()


class EngineGuard:
    """Per env: a private folder for the engines' files and the engines it has started, which the
    process's watchdog kills if the process dies without closing them."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="sf_vizdoom_")
        self._lock = threading.Lock()  # players of a multi-agent env start in parallel threads
        self._engines: dict[str, psutil.Process] = {}  # config path -> engine process
        self._closed = False
        _WATCHDOG.acquire()

    def config_path(self, name: str) -> str:
        """A per-engine ini file: the engine writes it on exit, parallel engines must not share it."""
        return os.path.join(self.dir, f"{name}.ini")

    def start_game(self, game, config_path: str):
        """`game.init()` with SIGINT/SIGTERM blocked for the engine; the engine is then watched."""
        game.set_doom_config_path(config_path)
        previous_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        try:
            game.init()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)
        engine = self.find_engine(config_path)
        if engine is not None:
            self._watch(engine, config_path)

    @staticmethod
    def find_engine(config_path: str) -> psutil.Process | None:
        """The engine child started with this ini file (unique per engine), if it runs."""
        for proc in psutil.Process().children(recursive=False):
            try:
                cmdline = proc.cmdline()
            except psutil.Error:
                continue
            if config_path in cmdline:
                return proc
        return None

    def _watch(self, engine: psutil.Process, config_path: str):
        with self._lock:
            self._engines[config_path] = engine
            try:
                instance_id = _instance_id(engine.cmdline())
            except psutil.Error:
                return
            if not _WATCHDOG.watch(engine.pid, instance_id, self.dir):
                log.warning("the ViZDoom engine watchdog is gone: engine %d is only stopped by close()", engine.pid)

    def kill_engine(self, config_path: str):
        """SIGKILLs the engine of `config_path`: unblocks a game stuck in init() or a step."""
        engine = self._engines.get(config_path) or self.find_engine(config_path)
        if engine is None:
            return
        try:
            engine.kill()
            engine.wait(ENGINE_EXIT_WAIT_SEC)
        except psutil.Error:
            pass

    def close(self):
        """After every game's close(): kills engines still running, releases the watchdog, removes the folder."""
        if self._closed:
            return
        self._closed = True
        for config_path, engine in list(self._engines.items()):
            try:
                if engine.is_running():  # also true for a zombie, which wait() reaps
                    engine.wait(ENGINE_EXIT_WAIT_SEC)
            except psutil.TimeoutExpired:
                log.warning("ViZDoom engine %d did not exit after game.close(): killing it", engine.pid)
                self.kill_engine(config_path)
            except psutil.Error:
                pass
        _WATCHDOG.release()
        shutil.rmtree(self.dir, ignore_errors=True)


def close_game(game):
    """`game.close()` that never raises (the engine may already be gone)."""
    if game is None:
        return
    try:
        game.close()
    except Exception as e:  # noqa: BLE001 -- closing must go on with the other games
        log.debug("DoomGame.close() failed: %s", e)


def close_at_exit(env) -> Callable[[], None]:
    """Registers `env.close()` to run at interpreter exit (e.g. a worker ending on an exception)
    without keeping the env alive; returns the hook for `atexit.unregister`."""
    env_ref = weakref.ref(env)

    def close_if_alive():
        env = env_ref()
        if env is not None:
            env.close()

    atexit.register(close_if_alive)
    return close_if_alive
