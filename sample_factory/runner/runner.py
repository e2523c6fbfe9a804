"""The runner only orchestrates: it starts the components, connects them, runs the loop and stops.

What a run is made of (slots, shared buffers, what resumes, the components) comes from
`builder.py`; its health is the `Supervisor`'s; best checkpoints and telemetry are observers.

Serial mode puts every component on the runner's own loop in this process; parallel mode gives
each rollout worker and inference worker a process of its own, and each learner too when there
are several policies. A single policy's learner lives on the runner's loop: this process has
imported torch anyway (memory that forkserver children share but this process does not), so a
learner process of its own would only add memory; the runner's own work (reports, health
checks) waits at most one training iteration. The components and their wiring are the
same in every layout (see `_connect`).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from sample_factory.algo import protocol
from sample_factory.algo.roles import Role
from sample_factory.cfg.derived import acting_policies
from sample_factory.cfg.experiment import experiment_dir, save_cfg
from sample_factory.envs.create_env import EnvInfo, obtain_env_info
from sample_factory.runner import builder
from sample_factory.runner.builder import Components, slot_layout
from sample_factory.runner.observer import AlgoObserver
from sample_factory.runner.observers import BestCheckpoints, Telemetry
from sample_factory.runner.processes import RunProcesses
from sample_factory.runner.stats import RunStats
from sample_factory.runner.stop_signals import StopSignals
from sample_factory.runner.supervisor import Supervisor
from sample_factory.signal_slot.loop import EventLoop, EventLoopObject, Timer, signal
from sample_factory.utils.attr_dict import AttrDict
from sample_factory.utils.experiment_folder import ExperimentFolder
from sample_factory.utils.status import ExitStatus

log = logging.getLogger(__name__)

STOP_TIMEOUT_SEC = 30.0
HEALTH_CHECK_INTERVAL_SEC = 0.5


class Runner(EventLoopObject):
    stop_requested = signal()  # -> every component: stop; samplers first, learners last
    # save_best_p{policy_id}(policy_id, metric, value) -> learner: named signals, one per policy

    def __init__(self, cfg, env_info: EnvInfo, experiment_dir: Path):
        self.cfg = cfg
        self.env_info = env_info
        self.experiment_dir = experiment_dir
        self.layout = slot_layout(cfg, env_info)
        message_bytes = builder.queue_bytes(cfg, self.layout)
        super().__init__(EventLoop("runner", queue_max_bytes=message_bytes), "runner")
        log_file = ExperimentFolder(experiment_dir).log_file if cfg.log_to_file else None
        self.processes = RunProcesses(message_bytes, cfg.max_worker_restarts, log_file)
        model = builder.template_model(cfg, env_info)
        self.shared = builder.make_shared_resources(cfg, env_info, self.layout, model, self.processes.mp_ctx)
        self.resume = builder.inspect_checkpoints(cfg, experiment_dir, model)
        builder.write_policy_files(cfg, env_info, experiment_dir)
        self.stats = RunStats(cfg, experiment_dir, self.resume.env_steps, self.resume.train_seconds)
        self.components = Components()
        self.supervisor: Supervisor | None = None
        self.null_policy = False  # the benchmark's overhead phase: inference answers with zeros
        self.status = ExitStatus.SUCCESS
        self._stopping = False
        self._stop_signals = StopSignals(self.processes.kill_all, lambda: self._stopping)
        self._learners_stopped: set[int] = set()
        self._train_started = 0.0
        self._initialized = False
        self.training_iteration_since_resume = 0
        # Called as fn(runner) at every console report; returning True stops the run (embedding, tests).
        self.report_callbacks: list = []
        self.observers: list[AlgoObserver] = []
        self._episodic_stats_handlers: list = []
        for observer in (BestCheckpoints(), Telemetry()):
            self.register_observer(observer)

    # --- extension points (sample-factory 2.x's) ---------------------------------------------

    def register_observer(self, observer: AlgoObserver):
        self.observers.append(observer)

    def register_episodic_stats_handler(self, handler):
        """`handler(runner, episode: dict, policy_id)` for every finished episode (reward, len, extra stats)."""
        self._episodic_stats_handlers.append(handler)

    @property
    def env_steps(self) -> list[int]:
        """Env steps (frames) of each policy, resumed runs included."""
        return self.stats.env_steps

    @property
    def stopping(self) -> bool:
        return self._stopping

    @property
    def hosts_learner(self) -> bool:
        return builder.hosts_learner(self.cfg)

    @property
    def learners(self):
        return self.components.learners

    @property
    def inference_workers(self):
        return self.components.inference_workers

    @property
    def rollout_workers(self):
        return self.components.rollout_workers

    @property
    def league_opponents(self):
        return self.components.league_opponents

    def _notify(self, hook: str, *args) -> bool:
        """Calls `hook` of every observer; a failing one stops the run. Returns False if one failed."""
        for observer in self.observers:
            try:
                getattr(observer, hook)(self, *args)
            except Exception:
                log.exception("Observer %s failed in %s", type(observer).__name__, hook)
                if self._train_started and not self._stopping:
                    self.request_stop(ExitStatus.FAILURE)
                else:  # before the run started, or while it stops
                    self.status = ExitStatus.FAILURE
                return False
        return True

    # --- building and wiring -----------------------------------------------------------------

    def _loop_for(self, role: Role, restartable: bool) -> EventLoop:
        return self.event_loop if self.cfg.serial_mode else self.processes.loop_for(role, restartable)

    def init(self) -> int:
        """Builds and wires the components (run() does it when nobody called init() first)."""
        if not self._initialized:
            self._initialized = True
            self.components = builder.create_components(
                self.cfg, self.env_info, self.shared, self.experiment_dir, self._loop_for, self.event_loop,
                self.stats, null_policy=self.null_policy,
            )  # fmt: skip
            self.supervisor = Supervisor(
                self.event_loop, self.cfg, self.processes, self.components, self.shared, self.layout, self.stats,
                request_stop=self.request_stop, stopping=lambda: self._stopping, learner_lost=lambda p: self.on_learner_stopped(protocol.LearnerStopped(p)),
            )  # fmt: skip
            self._notify("on_init")
            self._connect()
            self._notify("on_connect_components")
        return self.status

    def _connect(self):
        """All signal -> slot wiring of the system."""
        cfg, components, supervisor = self.cfg, self.components, self.supervisor
        for learner in components.learners:
            learner.report.connect(self.on_learner_report)
            learner.failed.connect(self.on_learner_failed)
            learner.stopped.connect(self.on_learner_stopped)
            self.named_signal(protocol.save_best(learner.policy_id)).connect(learner.on_save_best)
        for worker in components.rollout_workers:
            worker.episodes_finished.connect(self.on_episodes_finished)
            if components.league_opponents is not None:
                worker.league_games_finished.connect(components.league_opponents.on_league_games)
            worker.env_failed.connect(supervisor.on_env_failed)
            worker.non_finite_dropped.connect(supervisor.on_non_finite_dropped)
            worker.failed.connect(supervisor.on_rollout_worker_failed)
            supervisor.inference_restarted.connect(worker.on_inference_restarted)
            for learner in components.learners:
                learner.slots_released.connect(worker.on_slots_released)
            for policy_id in range(acting_policies(cfg)):
                inference = components.inference_worker_for(cfg, worker.worker_idx, policy_id)
                worker.named_signal(protocol.inference_requested(policy_id)).connect(inference.on_inference_requested)
                inference.named_signal(protocol.actions_ready(worker.worker_idx)).connect(worker.on_actions_ready)
                if policy_id < cfg.num_policies:  # a frozen opponent's trajectories go to no learner
                    worker.named_signal(protocol.trajectory_ready(policy_id)).connect(
                        components.learners[policy_id].on_trajectory_ready
                    )
        # Order matters: samplers stop first so that nobody waits on a learner that is saving.
        for component in components.rollout_workers + components.inference_workers + components.learners:
            self.stop_requested.connect(component.on_stop)
        if components.league_opponents is not None:
            self.stop_requested.connect(components.league_opponents.on_stop)

    # --- running -----------------------------------------------------------------------------

    def run(self) -> int:
        if self.init() != ExitStatus.SUCCESS:
            self._shutdown()
            return self.status
        save_cfg(self.cfg, self.experiment_dir)
        self._train_started = time.monotonic()
        self.shared.run_started_at = time.time()
        self.processes.start_all()
        log.info(
            "Started %d process(es) in %.1fs: %d rollout workers x %d envs, %d policies, %d trajectory slots per policy",
            len(self.processes),
            time.monotonic() - self._train_started,
            self.cfg.num_workers,
            self.cfg.num_envs_per_worker,
            self.cfg.num_policies,
            self.layout.slots_per_policy,
        )
        self._notify("on_start")
        self.supervisor.start()
        Timer(self.event_loop, self.cfg.report_interval_sec, self._report)
        Timer(self.event_loop, HEALTH_CHECK_INTERVAL_SEC, self._check_health)
        self.event_loop.add_idle_callback(self._stop_on_pending_signal)
        self._stop_signals.install()
        try:
            self.event_loop.run()
        except Exception:
            log.exception("The run failed")
            self.status = ExitStatus.FAILURE
        finally:
            self._stopping = True  # from here on a signal exits at once
            try:
                self._shutdown()
            finally:
                self._stop_signals.restore()
        self.stats.final_report(time.monotonic() - self._train_started)
        self._notify("on_stop")
        return self.status

    def _stop_on_pending_signal(self):
        name = self._stop_signals.take_pending()
        if name is not None and not self._stopping:
            log.info("%s received: saving and stopping", name)
            self.request_stop(ExitStatus.SUCCESS)  # saved and stopped on request: a normal end

    def request_stop(self, status: int = ExitStatus.SUCCESS):
        """Stops the run, keeping the worst status asked for (also when it is already stopping)."""
        self.status = max(self.status, status)
        if self._stopping:
            return
        self._stopping = True
        self.shared.stop_event.set()
        self.stop_requested.emit()
        Timer(self.event_loop, STOP_TIMEOUT_SEC, self._stop_timed_out, periodic=False)

    def _stop_timed_out(self):
        log.error("Components did not stop within %.0fs; terminating them", STOP_TIMEOUT_SEC)
        self.status = ExitStatus.FAILURE
        self.event_loop.stop()

    def _shutdown(self):
        if self.supervisor is not None:
            self.supervisor.stop()
        self.shared.stop_event.set()
        if self.cfg.serial_mode:
            for worker in self.components.rollout_workers:
                worker.close_envs()
        self.processes.stop_all()
        for pool in self.shared.slot_pools:
            pool.close()
        self.stats.close()

    # --- slots and timers ----------------------------------------------------------------------

    def on_learner_report(self, report: protocol.LearnerReport):
        self.stats.on_learner_report(report.policy_id, report.stats)
        self.training_iteration_since_resume += 1
        if self.observers:
            self._notify("on_training_step", self.training_iteration_since_resume)
        self._check_stop_conditions()

    def on_episodes_finished(self, finished: protocol.EpisodesFinished):
        self.stats.on_episodes(finished.episodes)
        for handler in self._episodic_stats_handlers:
            for episode in finished.episodes:
                handler(self, episode, episode["policy_id"])

    def on_learner_failed(self, failure: protocol.LearnerFailed):
        log.error("Policy %d cannot go on (%s): stopping the run", failure.policy_id, failure.message)
        self.request_stop(ExitStatus.FAILURE)  # also when it failed while stopping (its last save)

    def on_learner_stopped(self, stopped: protocol.LearnerStopped):
        self._learners_stopped.add(stopped.policy_id)
        if len(self._learners_stopped) == self.cfg.num_policies:
            self.event_loop.stop()

    def _check_health(self):
        self.supervisor.check()
        self._check_stop_conditions()

    def _check_stop_conditions(self):
        if self._stopping:
            return
        if self.stats.total_env_steps >= self.cfg.train_for_env_steps:
            log.info("Reached %d env steps: stopping", self.stats.total_env_steps)
            self.request_stop()
        elif self.resume.train_seconds + time.monotonic() - self._train_started >= self.cfg.train_for_seconds:
            log.info("Trained for %ds: stopping", self.cfg.train_for_seconds)
            self.request_stop()

    def _report(self):
        self.stats.report(time.monotonic() - self._train_started)
        if self.observers:
            for policy_id in range(self.cfg.num_policies):
                writer = self.stats.summary_writer(policy_id)
                self._notify("extra_summaries", policy_id, self.stats.env_steps[policy_id], writer)
        for callback in self.report_callbacks:
            if callback(self) and not self._stopping:
                log.info("A report callback asked to stop")
                self.request_stop()
        self._check_stop_conditions()


class _RunnerOfMode(Runner):
    """sample-factory 2.x's runner classes, built from the config alone as 2.x builds them
    (`make_runner` picks one by --serial_mode and also tunes and validates the config first)."""

    serial_mode: bool

    def __init__(self, cfg, env_info: EnvInfo | None = None, experiment_dir_path: Path | None = None):
        if bool(cfg.serial_mode) != self.serial_mode:
            cfg = AttrDict({**cfg, "serial_mode": self.serial_mode})
        super().__init__(
            cfg,
            env_info if env_info is not None else obtain_env_info(cfg),
            experiment_dir_path if experiment_dir_path is not None else experiment_dir(cfg),
        )


class SerialRunner(_RunnerOfMode):
    """Every component on the runner's own event loop, in this process (--serial_mode=True)."""

    serial_mode = True


class ParallelRunner(_RunnerOfMode):
    """Rollout and inference workers (and learners of several policies) in processes of their own."""

    serial_mode = False
