"""Watches the run's health and handles what goes wrong: stalls, silences, deaths, failing envs.

First the watches, pure and driven by the clock they are given: which rollout worker stalls while
the others sample (`StallWatch`), which inference worker or learner no longer turns its event loop
(`SilenceWatch`), and whether the run as a whole has stopped moving (`StuckWatch`). Then the
`Supervisor`, which reads the run every health check, applies the watches' verdicts (a line in the
log with the process's stack, a restart within --max_worker_restarts, or a stop), restarts dead
workers, and frees the queue locks a dead process held, from a thread that sees deaths at once.
"""

from __future__ import annotations

import logging
import multiprocessing.connection
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sample_factory.algo import protocol, roles
from sample_factory.algo.roles import Kind, Role
from sample_factory.algo.shared_buffers import reclaim_slots
from sample_factory.signal_slot import transport
from sample_factory.signal_slot.loop import EventLoop, EventLoopObject, signal
from sample_factory.signal_slot.process import EventLoopProcess, kill_process_tree
from sample_factory.utils.status import ExitStatus

log = logging.getLogger(__name__)

SILENT_STOP_INTERVALS = 3  # silent or stuck this many --heartbeat_interval stops the run
NON_FINITE_LOG_INTERVAL_SEC = 60.0  # a NaN-returning env is named at once, then once a minute


# --- the watches: pure decisions ---------------------------------------------------------------


@dataclass
class Stall:
    worker_idx: int
    stalled_for: float


class StallWatch:
    """A worker whose frame count stands still while the others' grows is stuck in an env (a
    learner that is slow stops every worker alike, so that is no stall). Each stall is reported
    once per `report_interval` until the worker moves again."""

    def __init__(self, patience_sec: float, report_interval_sec: float):
        self.patience_sec = patience_sec
        self.report_interval_sec = report_interval_sec
        self._last_frames: list[int] = []
        self._last_progress: list[float] = []
        self._reported: list[float] = []  # when each worker's stall was last reported (0: not yet)

    def update(self, frames: list[int], now: float) -> list[Stall]:
        if not self._last_frames:
            self._last_frames, self._last_progress = list(frames), [now] * len(frames)
            self._reported = [0.0] * len(frames)
            return []
        total, last_total = sum(frames), sum(self._last_frames)
        stalls = []
        for i, (f, last) in enumerate(zip(frames, self._last_frames)):
            if f != last:
                self._last_progress[i] = now
                self._reported[i] = 0.0  # it moves again: a new stall is reported anew
                continue
            if not total - f > last_total - last:
                self._last_progress[i] = now  # every worker waits (a slow learner): no stall, still not over
                continue
            stalled_for = now - self._last_progress[i]
            due = self._reported[i] == 0.0 or now - self._reported[i] >= self.report_interval_sec
            if stalled_for >= self.patience_sec and due:
                self._reported[i] = now
                stalls.append(Stall(i, stalled_for))
        self._last_frames = list(frames)
        return stalls

    def restarted(self, worker_idx: int, now: float):
        """A fresh start, not a stall."""
        if self._last_progress:
            self._last_progress[worker_idx] = now
            self._reported[worker_idx] = 0.0


@dataclass
class Silence:
    role: Role
    silent_for: float
    report: bool  # first seen past the patience: name it with its stack
    stop: bool  # silent SILENT_STOP_INTERVALS x patience: stop the run


class SilenceWatch:
    """An event loop that turns at least once a second even when idle, and stands still, is stuck
    inside a callback: named after `patience_sec`, the run stopped after SILENT_STOP_INTERVALS of it."""

    def __init__(self, patience_sec: float):
        self.patience_sec = patience_sec
        self._turns: dict[Role, tuple[int, float]] = {}  # role -> (its loop's turns, since when)
        self._reported: set[Role] = set()

    def update(self, turns: dict[Role, int], now: float) -> list[Silence]:
        silences = []
        for role, count in turns.items():
            last, since = self._turns.get(role, (None, now))
            if count != last:
                self._turns[role] = (count, now)
                self._reported.discard(role)
                continue
            silent_for = now - since
            report = silent_for >= self.patience_sec and role not in self._reported
            if report:
                self._reported.add(role)
            stop = silent_for >= SILENT_STOP_INTERVALS * self.patience_sec
            if report or stop:
                silences.append(Silence(role, silent_for, report, stop))
        return silences

    def forget(self, role: Role):
        """Its process was started anew: its start-up (loading the model) is no silence."""
        self._turns.pop(role, None)


class StuckWatch:
    """No worker steps an env and no policy trains: every env hung at once, or every worker waits on
    a queue that will never move. Neither watch above sees it (they compare a worker with the others,
    or look at loops that still turn); nothing would end the run short of its time budget."""

    def __init__(self, patience_sec: float, started_at: float):
        self.patience_sec = patience_sec
        self.started_at = started_at
        self._progress: tuple[tuple[int, int], float] | None = None  # ((frames, train steps), since when)
        self.never_stepped_reported = False

    def never_stepped(self, frames: int, now: float) -> bool:
        """True once, when no env has stepped since the start for `patience_sec` (still starting?)."""
        if frames == 0 and not self.never_stepped_reported and now - self.started_at >= self.patience_sec:
            self.never_stepped_reported = True
            return True
        return False

    def stuck_for(self, frames: int, train_steps: int, now: float) -> float | None:
        """Seconds the run has not moved, once that is past `patience_sec`; envs that never stepped
        are not stuck (some simulators start slowly)."""
        progress = (frames, train_steps)
        if frames == 0 or self._progress is None or progress != self._progress[0]:
            self._progress = (progress, now)
            return None
        stuck_for = now - self._progress[1]
        return stuck_for if stuck_for >= self.patience_sec else None


# --- the supervisor ----------------------------------------------------------------------------


class Supervisor(EventLoopObject):
    """Lives on the runner's loop. `request_stop(status)` and `stopping()` are the runner's;
    `learner_lost(policy_id)` counts a dead learner as stopped (it will never confirm)."""

    inference_restarted = signal(protocol.InferenceRestarted)  # -> rollout workers

    def __init__(
        self,
        event_loop: EventLoop,
        cfg,
        processes,
        components,
        shared,
        layout,
        stats,
        request_stop: Callable[[int], None],
        stopping: Callable[[], bool],
        learner_lost: Callable[[int], None],
    ):
        super().__init__(event_loop, "supervisor")
        self.cfg = cfg
        self.processes = processes
        self.components = components
        self.shared = shared
        self.layout = layout
        self.stats = stats
        self._request_stop = request_stop
        self._stopping = stopping
        self._learner_lost = learner_lost
        self._repair_lock = threading.Lock()  # the death watch and a restart may both repair
        self._shutting_down = threading.Event()
        self._death_watch: threading.Thread | None = None
        self._non_finite_logged = 0.0
        self._repair_missing: str | None = None
        patience = float(cfg.heartbeat_interval)
        self.stalls = StallWatch(patience, cfg.heartbeat_reporting_interval)
        self.silences = SilenceWatch(patience)
        self.stuck = StuckWatch(SILENT_STOP_INTERVALS * patience, time.monotonic())

    # --- start and stop ------------------------------------------------------------------------

    def start(self):
        """At the run's start: checks the queue repair and starts the death watch."""
        self.stuck.started_at = time.monotonic()
        if len(self.processes):
            self._repair_missing = transport.check_repair_layout()
            if self._repair_missing is not None and self.cfg.max_worker_restarts > 0:
                log.warning(
                    "%s: a worker that dies or stalls stops the run instead of restarting", self._repair_missing
                )
        self._death_watch = threading.Thread(target=self._free_queues_of_the_dead, name="death_watch", daemon=True)
        self._death_watch.start()

    def stop(self):
        self._shutting_down.set()

    # --- slots: faults reported by the components ------------------------------------------------

    def on_env_failed(self, failure: protocol.EnvFailed):
        worker_idx, env_idx, error = failure
        self.stats.env_failures += 1
        count, budget = self.stats.env_failures, self.cfg.max_env_failures
        self.stats.write_scalars(0, "stats", {"env_failures": count})
        what = f"{self.cfg.env} (worker {worker_idx}, env {env_idx}) raised {error}"
        if count > budget:
            log.error("%s: more than --max_env_failures=%d env failures, stopping the run", what, budget)
            self._request_stop(ExitStatus.FAILURE)
        else:
            log.warning(
                "%s; made it anew, its unfinished episode dropped (%d of --max_env_failures=%d)", what, count, budget
            )

    def on_non_finite_dropped(self, dropped: protocol.NonFiniteDropped):
        worker_idx, env_idx, what, steps = dropped
        first = self.stats.non_finite_steps == 0
        self.stats.non_finite_steps += steps
        self.stats.write_scalars(0, "stats", {"non_finite_steps": self.stats.non_finite_steps})
        now = time.monotonic()
        if first or now - self._non_finite_logged >= NON_FINITE_LOG_INTERVAL_SEC:
            self._non_finite_logged = now
            log.warning(
                "%s (worker %d, env %d) returned %s: made 0 and not trained on (%d steps dropped so far;"
                " --strict_env_checks=True stops the run instead)",
                self.cfg.env,
                worker_idx,
                env_idx,
                what,
                self.stats.non_finite_steps,
            )

    def on_rollout_worker_failed(self, failure: protocol.WorkerFailed):
        log.error("rollout_worker_%d cannot go on: %s; stopping the run", failure.worker_idx, failure.message)
        self._request_stop(ExitStatus.FAILURE)

    # --- the health check ------------------------------------------------------------------------

    def check(self):
        """Every half second on the runner's loop: the watches, then the processes that died."""
        if not self.cfg.serial_mode and not self._stopping():
            now = time.monotonic()
            self._apply_stalls(now)
            self._apply_silences(now)
            self._apply_stuck(now)
        for role, process in self.processes.items():
            if process.is_alive() or process.process is None:
                continue
            if (self._stopping() and process.exitcode == 0) or process.event_loop.receiver_gone:
                continue  # a clean exit at the end, or a death already reported
            self._on_death(role, process)

    def _apply_stalls(self, now: float):
        for stall in self.stalls.update(self.shared.frames_sampled.tolist(), now):
            role = roles.rollout_worker(stall.worker_idx)
            first, last = (
                stall.worker_idx * self.cfg.num_envs_per_worker,
                (stall.worker_idx + 1) * self.cfg.num_envs_per_worker - 1,
            )
            stack = self._stack_of(role)
            log.error(
                "%s has stepped no env for %.0fs while the other workers sample: a hung env?"
                " (its envs: %s, ids %d..%d)%s",
                role.name,
                stall.stalled_for,
                self.cfg.env,
                first,
                last,
                f"; where it is:\n{stack}" if stack else "",
            )
            self._restart(role, f"stalled for {stall.stalled_for:.0f}s")

    def _apply_silences(self, now: float):
        # Rollout workers are judged by the frames they step (StallWatch), the others by their loop's turns.
        turns = {
            role: p.event_loop.turns
            for role, p in self.processes.items()
            if role.kind is not Kind.ROLLOUT and p.is_alive()
        }
        for silence in self.silences.update(turns, now):
            process = self.processes.get(silence.role)
            if silence.report:
                stack = process.stack()
                log.error(
                    "%s (pid %s) has not turned its event loop for %.0fs: stuck?%s",
                    silence.role.name,
                    process.pid,
                    silence.silent_for,
                    f" Where it is:\n{stack}" if stack else "",
                )
            if silence.stop:
                log.error(
                    "%s has been silent for %.0fs (%d x --heartbeat_interval=%d): stopping the run",
                    silence.role.name,
                    silence.silent_for,
                    SILENT_STOP_INTERVALS,
                    self.cfg.heartbeat_interval,
                )
                self._request_stop(ExitStatus.FAILURE)
                return

    def _apply_stuck(self, now: float):
        frames = int(sum(self.shared.frames_sampled.tolist()))
        if self.stuck.never_stepped(frames, now):
            log.warning(
                "No env has stepped in the %.0fs since the start: still starting, or hung?%s",
                now - self.stuck.started_at,
                self._where_worker_0_is(),
            )
        stuck_for = self.stuck.stuck_for(frames, sum(self.stats.train_steps), now)
        if stuck_for is not None:
            log.error(
                "No env stepped and no policy trained for %.0fs (%d x --heartbeat_interval=%d): the run is stuck,"
                " stopping it%s",
                stuck_for,
                SILENT_STOP_INTERVALS,
                self.cfg.heartbeat_interval,
                self._where_worker_0_is(),
            )
            self._request_stop(ExitStatus.FAILURE)

    def _on_death(self, role: Role, process: EventLoopProcess):
        died = f"(pid {process.pid}) died with exit code {process.exitcode}"
        if role.kind in (Kind.ROLLOUT, Kind.INFERENCE) and self._restart(role, died):
            return
        log.error("%s (pid %s) died with exit code %s: stopping the run", role.name, process.pid, process.exitcode)
        process.event_loop.receiver_gone = True
        self._request_stop(ExitStatus.FAILURE)
        if role.kind is Kind.LEARNER:
            self._learner_lost(role.policy_id)

    def _stack_of(self, role: Role) -> str:
        process = self.processes.get(role)
        return process.stack() if process is not None and process.is_alive() else ""

    def _where_worker_0_is(self) -> str:
        stack = self._stack_of(roles.rollout_worker(0))
        return f"; where rollout_worker_0 is:\n{stack}" if stack else ""

    # --- restarts ------------------------------------------------------------------------------

    def _restart(self, role: Role, what_happened: str) -> bool:
        """Within --max_worker_restarts: kills the process tree, frees the queue locks it held, moves
        its loop to a fresh queue and starts it again, saying so in one line and a counter. False
        (nothing started) when the budget is spent, the run stops, or the queues cannot be repaired."""
        if self._stopping() or self.stats.worker_restarts >= self.cfg.max_worker_restarts:
            return False
        process = self.processes.get(role)
        if self._repair_missing is not None:
            log.error("%s %s: not started anew (%s)", role.name, what_happened, self._repair_missing)
            return False
        self.stats.worker_restarts += 1
        dead_pid = process.pid
        if dead_pid:
            kill_process_tree(dead_pid)
        process.join(timeout_sec=5.0)
        if dead_pid:
            self._free_queue_locks_of(dead_pid, role.name)  # the death watch may not have seen it yet
        if not process.event_loop.move_to_spare_queue():
            spares = self.processes.spare_queues
            log.error(
                "%s: no spare queue left to start it on (%d in a run)", role.name, len(spares.queues) if spares else 0
            )
            return False
        done = self._before_restart(role)
        process.start()
        count, budget = self.stats.worker_restarts, self.cfg.max_worker_restarts
        log.warning("%s %s: %s (%d of --max_worker_restarts=%d)", role.name, what_happened, done, count, budget)
        self.stats.write_scalars(0, "stats", {"worker_restarts": count})
        self._after_restart(role)
        return True

    def _before_restart(self, role: Role) -> str:
        if role.kind is Kind.ROLLOUT:
            # Its last requests were answered long ago (it died at least a health check ago, or stalled
            # --heartbeat_interval ago): no inference worker still writes into the slots put back here.
            starts = self.layout.pool_starts(self.cfg)
            reclaimed = reclaim_slots(self.shared.slot_pools, role.index, starts, self.layout.group_size)
            self.components.of_role(role).epoch += 1
            return f"started it anew with fresh envs, its unfinished episodes dropped and {reclaimed} slots put back"
        return "started it anew, its rollout workers asking again for their actions"

    def _after_restart(self, role: Role):
        if role.kind is Kind.ROLLOUT:
            self.stalls.restarted(role.index, time.monotonic())
        else:
            self.silences.forget(role)
            # The new process answers each request once (see InferenceWorker.on_inference_requested).
            self.inference_restarted.emit(protocol.InferenceRestarted(role.policy_id, role.index))

    # --- queue locks of the dead ---------------------------------------------------------------

    def _free_queues_of_the_dead(self):
        """A thread: the moment a process dies, frees any queue lock it held (see transport): such a
        lock would block the runner's own loop, so the health check could not do it. The rest of
        the handling (restart or stop) is the health check's."""
        handled: set[tuple[int, int]] = set()  # (sentinel, pid): a restarted process has new ones
        while not self._shutting_down.is_set():
            watched = {
                (p.process.sentinel, p.pid): p
                for p in self.processes
                if p.process is not None and p.pid and (p.process.sentinel, p.pid) not in handled
            }
            try:
                ready = multiprocessing.connection.wait([sentinel for sentinel, _ in watched], timeout=0.5)
            except (OSError, ValueError):  # a sentinel closed meanwhile (a restart): look again
                time.sleep(0.1)
                continue
            for key in [key for key in watched if key[0] in ready]:
                handled.add(key)
                self._free_queue_locks_of(key[1], watched[key].name)

    def _free_queue_locks_of(self, dead_pid: int, name: str):
        """Frees every queue lock the dead process held: its death watch and its restart both ask, first wins."""
        queues = {self.event_loop.name: self.event_loop.own_queue}
        queues.update({p.event_loop.name: p.event_loop.own_queue for p in self.processes})
        spares = self.processes.spare_queues
        if spares is not None:
            queues.update({f"spare_queue_{i}": q for i, q in enumerate(spares.queues)})
        queues.update({pool.name: pool.queue for pool in self.shared.slot_pools})
        with self._repair_lock:
            held = [queue_name for queue_name, queue in queues.items() if transport.free_lock_of_dead(queue, dead_pid)]
        if held:
            log.warning("%s died holding the queue lock of %s: freed it", name, held)
