"""The runner only orchestrates: builds shared memory and components, wires them, watches, stops.

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
import math
import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal as os_signal
import tempfile
import threading
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch

from sample_factory.algo import protocol
from sample_factory.algo.learning.learner_worker import LearnerWorker
from sample_factory.algo.sampling.inference_worker import InferenceWorker
from sample_factory.algo.sampling.rollout_worker import RolloutWorker
from sample_factory.algo.shared_buffers import (
    SharedPolicyState,
    SlotPool,
    TrajectoryBuffers,
    check_buffers_fit,
    reclaim_slots,
    trajectory_buffer_bytes,
)
from sample_factory.algo.utils.agent_policy_mapping import agent_policy_mapping_class
from sample_factory.cfg.derived import acting_policies, agents_per_split, trajectories_per_iteration
from sample_factory.cfg.experiment import cfg_hash, experiment_dir, save_cfg
from sample_factory.cfg.policy_params import (
    initial_hyperparams,
    parse_policy_overrides,
    read_hyperparams,
    read_reward_shaping,
    uses_policy_files,
    write_hyperparams,
    write_reward_shaping,
)
from sample_factory.envs.create_env import EnvInfo, obtain_env_info
from sample_factory.envs.env_utils import env_registry_snapshot
from sample_factory.model.actor_critic import create_actor_critic, rnn_state_size_for
from sample_factory.model.model_factory import global_model_factory
from sample_factory.pbt.league_opponents import LeagueOpponents
from sample_factory.runner.leak_watch import LeakWatch
from sample_factory.runner.observer import AlgoObserver
from sample_factory.runner.stats import RunStats
from sample_factory.signal_slot import forkserver_guard
from sample_factory.signal_slot.queue_repair import free_lock_of_dead
from sample_factory.signal_slot.signal_slot import (
    DEFAULT_QUEUE_BYTES,
    EventLoop,
    EventLoopObject,
    EventLoopProcess,
    SpareQueues,
    Timer,
    kill_process_tree,
    signal,
)
from sample_factory.utils.attr_dict import AttrDict
from sample_factory.utils.checkpoint import (
    CheckpointError,
    best_metric_value,
    checkpoint_dir,
    incompatibilities,
    load_latest_checkpoint,
    remove_stale_temporaries,
)
from sample_factory.utils.logging_setup import LOG_FILE, setup_logging

log = logging.getLogger(__name__)

STOP_TIMEOUT_SEC = 30.0
# Spare queues of a run (1 MiB each, touched), shared by its restartable processes: one per restart, so
# a dead worker is started anew at most this many times in a run, whatever --max_worker_restarts says.
MAX_SPARE_QUEUES = 8
SILENT_STOP_INTERVALS = 3  # an inference or learner process silent this many --heartbeat_interval stops the run
NON_FINITE_LOG_INTERVAL_SEC = 60.0  # a NaN-returning env is named at once, then once a minute


class ExitStatus:
    SUCCESS = 0
    FAILURE = 1
    INTERRUPTED = 0  # stopped by Ctrl-C / SIGTERM after saving: a normal end


# Modules every component process needs: the fork server imports them once, and each process
# forked from it starts with them loaded instead of importing torch again (seconds per process).
_PRELOADED_MODULES = [
    "sample_factory.signal_slot.forkserver_guard",  # first: the server dies with the main process
    "torch",
    "numpy",
    "gymnasium",
    "sample_factory.algo.sampling.rollout_worker",
    "sample_factory.algo.sampling.inference_worker",
    "sample_factory.algo.learning.learner_worker",
]


def process_context():
    """forkserver: fast start-up without fork's hazards (the server has run no torch ops or threads)."""
    method = os.environ.get("SF_START_METHOD", "forkserver")
    ctx = multiprocessing.get_context(method)
    if method == "forkserver":
        forkserver_guard.arm(os.getpid())
        ctx.set_forkserver_preload(_PRELOADED_MODULES)
    return ctx


@dataclass
class SharedResources:
    """Everything the components share; pickled once into each process at start."""

    buffers: TrajectoryBuffers
    slot_pools: list[SlotPool]
    policy_states: list[SharedPolicyState]
    stop_event: object
    frames_sampled: torch.Tensor  # [num_workers] env frames each rollout worker has stepped (benchmarks)
    run_started_at: float = 0.0  # time.time() when the run started: training seconds count from here


@dataclass
class SlotLayout:
    agents_per_split: int
    total_agents: int
    slots_per_policy: int  # of a learning policy
    group_size: int
    slots_per_opponent: int = 0  # of a frozen league opponent (--league_opponents)

    def pool_sizes(self, cfg) -> list[int]:
        """Slots of each acting policy, learning ones first; a policy's slots follow the previous one's."""
        return [self.slots_per_policy] * cfg.num_policies + [self.slots_per_opponent] * (
            acting_policies(cfg) - cfg.num_policies
        )


def slot_layout(cfg, env_info: EnvInfo) -> SlotLayout:
    """How many trajectory slots each policy needs so that sampling never deadlocks.

    Async: one slot per agent for the trajectory it is filling, plus `num_batches_to_accumulate`
    training iterations waiting for the learner. When the learner falls that far behind, splits
    park until it catches up: a deeper queue would only age the experience (policy lag) without
    raising the training rate. Sync: exactly one training batch, handed out in whole splits so
    that no split ever holds part of what it needs. A frozen league opponent's slots come back as
    soon as its trajectory ends: it needs at most one per agent.
    """
    per_split = agents_per_split(cfg, env_info.num_agents)
    total_agents = cfg.num_workers * cfg.num_envs_per_worker * env_info.num_agents
    per_iteration = trajectories_per_iteration(cfg)
    group = per_split if acting_policies(cfg) == 1 else 1
    if cfg.async_rl:
        slots = total_agents + cfg.num_batches_to_accumulate * per_iteration
    else:
        slots = per_iteration
    slots = int(math.ceil(slots / group) * group)
    return SlotLayout(per_split, total_agents, slots, group, slots_per_opponent=total_agents)


class Runner(EventLoopObject):
    stop_requested = signal()
    inference_restarted = signal()
    # save_best_p{policy_id}(policy_id, metric, value) -> learner: named signals, one per policy

    def __init__(self, cfg, env_info: EnvInfo, experiment_dir: Path):
        self.cfg = cfg
        self.env_info = env_info
        self.experiment_dir = experiment_dir
        self.mp_ctx = process_context()
        self.layout = slot_layout(cfg, env_info)
        self._stack_dir: str | None = None  # where stalled processes write their stacks (made with the first)
        super().__init__(EventLoop("runner", queue_max_bytes=self._queue_bytes), "runner")

        self.shared = self._make_shared_resources()
        self._write_policy_files()

        self.processes: list[EventLoopProcess] = []
        self._spare_queues: SpareQueues | None = None  # made with the first restartable process
        self._queue_repair_lock = threading.Lock()  # the death watch and a restart may both repair
        self.learners: list[LearnerWorker] = []
        self.inference_workers: list[InferenceWorker] = []
        self.rollout_workers: list[RolloutWorker] = []
        self.league_opponents: LeagueOpponents | None = None
        self.stats = RunStats(cfg, experiment_dir, self.resumed_env_steps, self.resumed_train_seconds)
        self._best_metric = [self._saved_best_metric(p) for p in range(cfg.num_policies)]
        self.status = ExitStatus.SUCCESS
        self._stopping = False
        self._shutting_down = threading.Event()
        self._signals_received = 0
        self._pending_signal: int | None = None
        self._stop_started = 0.0
        self._learners_stopped: set[int] = set()
        self._train_started = 0.0
        # Called as fn(runner) at every console report; returning True stops the run (embedding, tests).
        self.report_callbacks: list = []
        self.observers: list[AlgoObserver] = []
        self._episodic_stats_handlers: list = []
        self.training_iteration_since_resume = 0
        self._initialized = False
        self._last_frames: list[int] = []  # stall detection (_check_stalled_workers)
        self._last_progress: list[float] = []
        self._stall_reported: list[float] = []
        self._non_finite_logged = 0.0
        self._loop_turns: dict[str, tuple[int, float]] = {}  # process -> (its loop's turns, since when)
        self._silence_reported: set[str] = set()
        self._run_progress: tuple[tuple[int, int], float] | None = None  # ((frames, train steps), since when)
        self._no_frames_reported = False
        self.leak_watch = LeakWatch()

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

    # --- construction ------------------------------------------------------------------------

    def _make_shared_resources(self) -> SharedResources:
        cfg, env_info, layout = self.cfg, self.env_info, self.layout
        pool_sizes = layout.pool_sizes(cfg)
        num_slots = sum(pool_sizes)
        buffer_args = (num_slots, cfg.rollout, env_info.obs_space, env_info.action_space, rnn_state_size_for(cfg))
        obs_shapes = ", ".join(f"{k} {tuple(space.shape)}" for k, space in env_info.obs_space.spaces.items())
        check_buffers_fit(
            trajectory_buffer_bytes(*buffer_args),
            f"{num_slots} trajectory slots (--num_workers={cfg.num_workers} x --num_envs_per_worker="
            f"{cfg.num_envs_per_worker}{f' x {env_info.num_agents} agents' if env_info.num_agents > 1 else ''}"
            f"{f' + --num_batches_to_accumulate={cfg.num_batches_to_accumulate} batches' if cfg.async_rl else ''}"
            f", x --num_policies={cfg.num_policies}"
            f"{f' + {layout.slots_per_opponent} x --league_opponents={cfg.league_opponents}' if cfg.league_opponents else ''})"
            f" of --rollout={cfg.rollout} steps of observations {obs_shapes}",
        )
        buffers = TrajectoryBuffers(*buffer_args)
        pools = []
        holders = torch.full((num_slots,), -1, dtype=torch.int32).share_memory_()  # which worker has each slot
        self._pool_starts = [sum(pool_sizes[:p]) for p in range(len(pool_sizes))]
        for policy_id, (first, size) in enumerate(zip(self._pool_starts, pool_sizes)):
            pool = SlotPool(f"slots_p{policy_id}", size, holders)
            for start in range(first, first + size, layout.group_size):
                pool.release(list(range(start, start + layout.group_size)))
            pools.append(pool)
        template = create_actor_critic(cfg, env_info.obs_space, env_info.action_space)
        self._inspect_checkpoints(template)
        policy_states = [SharedPolicyState(template) for _ in range(acting_policies(cfg))]
        frames_sampled = torch.zeros(cfg.num_workers, dtype=torch.int64).share_memory_()
        return SharedResources(buffers, pools, policy_states, self.mp_ctx.Event(), frames_sampled)

    def _inspect_checkpoints(self, template_model):
        """Fails before anything starts if a checkpoint exists but can't be used; notes what resumes."""
        self.resumed_env_steps = [0] * self.cfg.num_policies
        self.resumed_train_seconds = 0.0
        for policy_id in range(self.cfg.num_policies):
            directory = checkpoint_dir(self.experiment_dir, policy_id)
            remove_stale_temporaries(directory)
            restored = load_latest_checkpoint(directory)  # raises CheckpointError if none loads
            if restored is None:
                continue
            state, path = restored
            problems = incompatibilities(state["model"], template_model)
            if problems:
                raise CheckpointError(
                    f"{path} was saved for another model or observation space ({problems[0]}"
                    f"{f' and {len(problems) - 1} more' if len(problems) > 1 else ''}); "
                    "use the flags it was trained with, or --restart_behavior=restart to start anew"
                )
            if state.get("cfg_hash") not in (None, cfg_hash(self.cfg)):
                log.info("Policy %d: resuming with a changed configuration", policy_id)
            training_state = state["training_state"]
            self.resumed_env_steps[policy_id] = int(training_state["env_steps"])
            self.resumed_train_seconds = max(
                self.resumed_train_seconds, float(training_state.get("train_seconds", 0.0))
            )

    def _write_policy_files(self):
        """Each policy's hyper-parameters and reward shaping where they may differ per policy
        (cfg/policy_params.py): those of an earlier run of the experiment are kept."""
        cfg = self.cfg
        if not uses_policy_files(cfg):
            return
        overrides = parse_policy_overrides(cfg.policy_hyperparams, cfg.num_policies)
        scheme = self.env_info.reward_shaping_scheme if cfg.with_pbt else None
        for policy_id in range(cfg.num_policies):
            if read_hyperparams(self.experiment_dir, policy_id) is None:
                write_hyperparams(self.experiment_dir, policy_id, initial_hyperparams(cfg, policy_id, overrides))
            elif policy_id in overrides:
                log.info("Policy %d: keeps the hyper-parameters of its file, not --policy_hyperparams", policy_id)
            if scheme is not None and read_reward_shaping(self.experiment_dir, policy_id) is None:
                write_reward_shaping(self.experiment_dir, policy_id, scheme)

    @property
    def _queue_bytes(self) -> int:
        """Messages carry lists of slot indices: a loop's queue holds a few of the largest (all slots)."""
        return max(DEFAULT_QUEUE_BYTES, 4 * 8 * self.layout.slots_per_policy * self.cfg.num_policies)

    @property
    def hosts_learner(self) -> bool:
        """The learner runs on the runner's loop, in this process (see the module docstring)."""
        return self.cfg.serial_mode or self.cfg.num_policies == 1

    def _spares_for_restarts(self) -> SpareQueues | None:
        if self._spare_queues is None and self.cfg.max_worker_restarts > 0:
            count = min(self.cfg.max_worker_restarts, MAX_SPARE_QUEUES)
            self._spare_queues = SpareQueues(count, queue_max_bytes=self._queue_bytes)
        return self._spare_queues

    def _loop_for(self, name: str, restartable: bool = False) -> EventLoop:
        if self.cfg.serial_mode:
            return self.event_loop
        if self._stack_dir is None:
            self._stack_dir = tempfile.mkdtemp(prefix="sf_stacks_")
        process = EventLoopProcess(
            name,
            self.mp_ctx,
            queue_max_bytes=self._queue_bytes,
            stack_path=str(Path(self._stack_dir) / f"{name}.txt"),
            spares=self._spares_for_restarts() if restartable else None,
            init_fn=partial(setup_logging, log_file=self.experiment_dir / LOG_FILE if self.cfg.log_to_file else None),
        )
        self.processes.append(process)
        return process.event_loop

    def _create_components(self):
        cfg, env_info, shared = self.cfg, self.env_info, self.shared
        model_factory = global_model_factory()
        for policy_id in range(cfg.num_policies):
            loop = self.event_loop if self.hosts_learner else self._loop_for(f"learner_p{policy_id}")
            self.learners.append(
                LearnerWorker(loop, policy_id, cfg, env_info, shared, model_factory, str(self.experiment_dir))
            )
        for policy_id in range(acting_policies(cfg)):
            for i in range(cfg.policy_workers_per_policy):
                loop = self._loop_for(f"inference_p{policy_id}_{i}", restartable=True)
                self.inference_workers.append(InferenceWorker(loop, policy_id, i, cfg, env_info, shared, model_factory))
        if cfg.league_opponents > 0:
            self.league_opponents = LeagueOpponents(
                self.event_loop, cfg, env_info, shared, self.experiment_dir, self.stats, seed=cfg.seed
            )
        registry = env_registry_snapshot([cfg.env])
        mapping_cls = agent_policy_mapping_class()
        for worker_idx in range(cfg.num_workers):
            loop = self._loop_for(f"rollout_worker_{worker_idx}", restartable=True)
            self.rollout_workers.append(
                RolloutWorker(loop, worker_idx, cfg, env_info, shared, registry, mapping_cls, str(self.experiment_dir))
            )

    def _connect(self):
        """All signal -> slot wiring of the system."""
        cfg = self.cfg
        for learner in self.learners:
            learner.report.connect(self.on_learner_report)
            learner.failed.connect(self.on_learner_failed)
            learner.stopped.connect(self.on_learner_stopped)
            self.named_signal(protocol.save_best(learner.policy_id)).connect(learner.on_save_best)
        for worker in self.rollout_workers:
            worker.episodes_finished.connect(self.on_episodes_finished)
            if self.league_opponents is not None:
                worker.league_games_finished.connect(self.league_opponents.on_league_games)
            worker.env_failed.connect(self.on_env_failed)
            worker.non_finite_dropped.connect(self.on_non_finite_dropped)
            worker.failed.connect(self.on_rollout_worker_failed)
            self.inference_restarted.connect(worker.on_inference_restarted)
            for learner in self.learners:
                learner.slots_released.connect(worker.on_slots_released)
            for policy_id in range(acting_policies(cfg)):
                # Each worker talks to one inference worker per policy; they answer it directly.
                inference = self.inference_workers[
                    policy_id * cfg.policy_workers_per_policy + worker.worker_idx % cfg.policy_workers_per_policy
                ]
                worker.named_signal(protocol.inference_requested(policy_id)).connect(inference.on_inference_requested)
                inference.named_signal(protocol.actions_ready(worker.worker_idx)).connect(worker.on_actions_ready)
                if policy_id < cfg.num_policies:  # a frozen opponent's trajectories go to no learner
                    worker.named_signal(protocol.trajectory_ready(policy_id)).connect(
                        self.learners[policy_id].on_trajectory_ready
                    )
        # Order matters: samplers stop first so that nobody waits on a learner that is saving.
        for component in self.rollout_workers + self.inference_workers + self.learners:
            self.stop_requested.connect(component.on_stop)
        if self.league_opponents is not None:
            self.stop_requested.connect(self.league_opponents.on_stop)

    # --- running -----------------------------------------------------------------------------

    def init(self) -> int:
        """Builds and wires the components (run() does it when nobody called init() first)."""
        if not self._initialized:
            self._initialized = True
            self._create_components()
            self._notify("on_init")
            self._connect()
            self._notify("on_connect_components")
        return self.status

    def run(self) -> int:
        if self.init() != ExitStatus.SUCCESS:
            self._shutdown()
            return self.status
        self._save_config()
        started = time.monotonic()
        self._train_started = started
        self.shared.run_started_at = time.time()
        for process in self.processes:
            process.start()
        log.info(
            "Started %d process(es) in %.1fs: %d rollout workers x %d envs, %d policies, %d trajectory slots per policy",
            len(self.processes),
            time.monotonic() - started,
            self.cfg.num_workers,
            self.cfg.num_envs_per_worker,
            self.cfg.num_policies,
            self.layout.slots_per_policy,
        )
        self._notify("on_start")
        self._death_watch = threading.Thread(target=self._free_queues_of_the_dead, name="death_watch", daemon=True)
        self._death_watch.start()
        Timer(self.event_loop, self.cfg.report_interval_sec, self._report)
        Timer(self.event_loop, 0.5, self._check_health)
        Timer(self.event_loop, max(1.0, float(self.cfg.save_best_every_sec)), self._save_best_if_improved)
        self.event_loop.add_idle_callback(self._stop_on_pending_signal)
        previous_handlers = self._install_signal_handlers()
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
                self._restore_signal_handlers(previous_handlers)
        self.stats.final_report(time.monotonic() - self._train_started)
        self._notify("on_stop")
        return self.status

    def _save_config(self):
        save_cfg(self.cfg, self.experiment_dir)

    def _install_signal_handlers(self):
        if multiprocessing.current_process().name != "MainProcess":
            return None
        try:
            return {sig: os_signal.signal(sig, self._on_os_signal) for sig in (os_signal.SIGINT, os_signal.SIGTERM)}
        except ValueError:  # not the main thread (embedded use): the caller handles signals
            return None

    @staticmethod
    def _restore_signal_handlers(previous):
        for sig, handler in (previous or {}).items():
            os_signal.signal(sig, handler)

    def _on_os_signal(self, signum, _frame):
        # The handler may interrupt the main thread anywhere, inside logging or a queue put: it only
        # records the signal, and the loop stops the run (_stop_on_pending_signal). A second signal,
        # or one during shutdown, exits at once without touching locks or queues.
        self._signals_received += 1
        if self._signals_received > 1 or self._stopping:
            os.write(2, b"Second signal: exiting now without waiting\n")
            for process in self.processes:
                if process.pid:
                    kill_process_tree(process.pid)
            os._exit(130)
        self._pending_signal = signum

    def _stop_on_pending_signal(self):
        if self._pending_signal is None or self._stopping:
            return
        log.info("%s received: saving and stopping", os_signal.Signals(self._pending_signal).name)
        self.request_stop(ExitStatus.INTERRUPTED)

    def request_stop(self, status: int = ExitStatus.SUCCESS):
        if self._stopping:
            return
        self._stopping = True
        self.status = max(self.status, status)
        self._stop_started = time.monotonic()
        self.shared.stop_event.set()
        self.stop_requested.emit()
        Timer(self.event_loop, STOP_TIMEOUT_SEC, self._stop_timed_out, periodic=False)

    def _stop_timed_out(self):
        log.error("Components did not stop within %.0fs; terminating them", STOP_TIMEOUT_SEC)
        self.status = ExitStatus.FAILURE
        self.event_loop.stop()

    # --- slots -------------------------------------------------------------------------------

    def on_learner_report(self, policy_id: int, stats: dict):
        self.stats.on_learner_report(policy_id, stats)
        self.training_iteration_since_resume += 1
        if self.observers:
            self._notify("on_training_step", self.training_iteration_since_resume)
        self._check_stop_conditions()

    def on_episodes_finished(self, episodes: list[dict]):
        self.stats.on_episodes(episodes)
        for handler in self._episodic_stats_handlers:
            for episode in episodes:
                handler(self, episode, episode["policy_id"])

    def on_env_failed(self, worker_idx: int, env_idx: int, error: str):
        self.stats.env_failures += 1
        count, budget = self.stats.env_failures, self.cfg.max_env_failures
        self.stats.write_scalars(0, "stats", {"env_failures": count})
        what = f"{self.cfg.env} (worker {worker_idx}, env {env_idx}) raised {error}"
        if count > budget:
            log.error("%s: more than --max_env_failures=%d env failures, stopping the run", what, budget)
            self.request_stop(ExitStatus.FAILURE)
        else:
            log.warning(
                "%s; made it anew, its unfinished episode dropped (%d of --max_env_failures=%d)", what, count, budget
            )

    def on_non_finite_dropped(self, worker_idx: int, env_idx: int, what: str, steps: int):
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

    def on_rollout_worker_failed(self, worker_idx: int, message: str):
        log.error("rollout_worker_%d cannot go on: %s; stopping the run", worker_idx, message)
        self.request_stop(ExitStatus.FAILURE)

    def on_learner_failed(self, policy_id: int, message: str):
        log.error("Policy %d cannot go on (%s): stopping the run", policy_id, message)
        self.status = ExitStatus.FAILURE  # also when it failed while stopping (its last save)
        self.request_stop(ExitStatus.FAILURE)

    def on_learner_stopped(self, policy_id: int):
        self._learners_stopped.add(policy_id)
        if len(self._learners_stopped) == self.cfg.num_policies:
            self.event_loop.stop()

    def _check_stop_conditions(self):
        if self._stopping:
            return
        if self.stats.total_env_steps >= self.cfg.train_for_env_steps:
            log.info("Reached %d env steps: stopping", self.stats.total_env_steps)
            self.request_stop()
        elif self.resumed_train_seconds + time.monotonic() - self._train_started >= self.cfg.train_for_seconds:
            log.info("Trained for %ds: stopping", self.cfg.train_for_seconds)
            self.request_stop()

    def _report(self):
        self.stats.report(time.monotonic() - self._train_started)
        if self.observers:
            for policy_id in range(self.cfg.num_policies):
                writer = self.stats.summary_writer(policy_id)
                self._notify("extra_summaries", policy_id, self.stats.env_steps[policy_id], writer)
        self._write_memory_usage()
        for callback in self.report_callbacks:
            if callback(self) and not self._stopping:
                log.info("A report callback asked to stop")
                self.request_stop()
        self._check_stop_conditions()

    def _best_metric_value(self, policy_id: int) -> float | None:
        metric = self.cfg.save_best_metric
        if metric == "reward":
            values = self.stats.episode_rewards[policy_id]
        else:
            values = self.stats.extra_stats[policy_id].get(metric, ())
        if len(values) < min(10, self.cfg.stats_avg):
            return None
        return float(np.mean(values))

    def _saved_best_metric(self, policy_id: int) -> float:
        value = best_metric_value(checkpoint_dir(self.experiment_dir, policy_id), self.cfg.save_best_metric)
        if value is None:
            return float("-inf")
        log.info("Policy %d: best %s so far %.3f (from an earlier run)", policy_id, self.cfg.save_best_metric, value)
        return value

    def _save_best_if_improved(self):
        if self._stopping or self.cfg.sampler_only:
            return
        for policy_id in range(self.cfg.num_policies):
            if self.stats.env_steps[policy_id] < self.cfg.save_best_after:
                continue
            value = self._best_metric_value(policy_id)
            if value is not None and value > self._best_metric[policy_id]:
                self._best_metric[policy_id] = value
                self.named_signal(protocol.save_best(policy_id)).emit(policy_id, self.cfg.save_best_metric, value)

    def _write_memory_usage(self):
        """Per process: proportional set size (shared memory split fairly between its users) and open
        file descriptors; /dev/shm use (machine-wide). In TensorBoard, and watched for steady growth."""
        import psutil

        usage = {}
        for name, pid in [("runner", os.getpid())] + [(p.name, p.pid) for p in self.processes]:
            try:
                process = psutil.Process(pid)
                usage[f"memory_mb_{name}"] = process.memory_full_info().pss / 2**20
                usage[f"fds_{name}"] = process.num_fds()
            except (psutil.Error, AttributeError):
                continue
        try:
            shm = os.statvfs("/dev/shm")
            usage["dev_shm_used_mb"] = (shm.f_blocks - shm.f_bfree) * shm.f_frsize / 2**20
        except OSError:
            pass
        self.stats.write_scalars(0, "perf", usage)
        self.leak_watch.sample(usage)

    def _check_stalled_workers(self):
        """A worker whose frame count stands still while the others' grows is stuck in an env (a
        learner that is slow stops every worker alike, so that is no stall)."""
        now = time.monotonic()
        frames = self.shared.frames_sampled.tolist()
        if not self._last_frames:
            self._last_frames, self._last_progress = frames, [now] * len(frames)
            self._stall_reported = [0.0] * len(frames)
            return
        others_progressed = [
            sum(frames) - f > sum(self._last_frames) - last for f, last in zip(frames, self._last_frames)
        ]
        for i, (f, last) in enumerate(zip(frames, self._last_frames)):
            if f != last:
                self._last_progress[i] = now
                self._stall_reported[i] = 0.0  # it moves again: a new stall is reported anew
                continue
            if not others_progressed[i]:
                self._last_progress[i] = now  # every worker waits (a slow learner): no stall, still not over
                continue
            stalled_for = now - self._last_progress[i]
            due = (
                self._stall_reported[i] == 0.0 or now - self._stall_reported[i] >= self.cfg.heartbeat_reporting_interval
            )
            if stalled_for >= self.cfg.heartbeat_interval and due:
                self._stall_reported[i] = now
                worker_process = self._process_named(f"rollout_worker_{i}")
                stack = worker_process.stack() if worker_process is not None else ""
                log.error(
                    "rollout_worker_%d has stepped no env for %.0fs while the other workers sample: a hung env?"
                    " (its envs: %s, ids %d..%d)%s",
                    i,
                    stalled_for,
                    self.cfg.env,
                    i * self.cfg.num_envs_per_worker,
                    (i + 1) * self.cfg.num_envs_per_worker - 1,
                    f"; where it is:\n{stack}" if stack else "",
                )
                self._restart_rollout_worker(i, f"stalled for {stalled_for:.0f}s")
        self._last_frames = frames

    def _restart_rollout_worker(self, worker_idx: int, what_happened: str) -> bool:
        """Kills the worker's process and what its envs started, puts back the slots it held and starts
        it anew with fresh envs. False when --max_worker_restarts are spent (nothing done)."""
        process = self._process_named(f"rollout_worker_{worker_idx}")

        def before_start():
            # Its last requests were answered long ago (it died at least a health check ago, or stalled
            # --heartbeat_interval ago): no inference worker still writes into the slots put back here.
            reclaimed = reclaim_slots(self.shared.slot_pools, worker_idx, self._pool_starts, self.layout.group_size)
            self.rollout_workers[worker_idx].epoch += 1
            return f"started it anew with fresh envs, its unfinished episodes dropped and {reclaimed} slots put back"

        if not self._restart_process(process, what_happened, before_start):
            return False
        if self._last_progress:
            self._last_progress[worker_idx] = time.monotonic()  # a fresh start, not a stall
            self._stall_reported[worker_idx] = 0.0
        return True

    def _restart_inference_worker(self, process: EventLoopProcess, what_happened: str) -> bool:
        """Starts a dead inference worker anew; its rollout workers ask again for the actions they wait for
        (the new process answers each request once, see InferenceWorker.on_inference_requested)."""
        worker = next(w for w in self.inference_workers if w.event_loop is process.event_loop)
        if not self._restart_process(
            process, what_happened, lambda: "started it anew, its rollout workers asking again for their actions"
        ):
            return False
        self._loop_turns.pop(process.name, None)  # its start-up (loading the model) is no silence
        self.inference_restarted.emit(worker.policy_id, worker.worker_idx)
        return True

    def _restart_process(self, process: EventLoopProcess, what_happened: str, before_start) -> bool:
        """The part of a restart common to every component: within --max_worker_restarts, kill the process
        tree, move its loop to a fresh queue, start it again, and say so in one line and a counter."""
        if self._stopping or self.stats.worker_restarts >= self.cfg.max_worker_restarts:
            return False
        self.stats.worker_restarts += 1
        dead_pid = process.pid
        if dead_pid:
            kill_process_tree(dead_pid)
        process.join(timeout_sec=5.0)
        if dead_pid:
            self._free_queue_locks_of(dead_pid, process.name)  # the death watch may not have seen it yet
        if not process.event_loop.move_to_spare_queue():
            log.error("%s: no spare queue left to start it on (%d in a run)", process.name, MAX_SPARE_QUEUES)
            return False
        done = before_start()
        process.start()
        count, budget = self.stats.worker_restarts, self.cfg.max_worker_restarts
        log.warning("%s %s: %s (%d of --max_worker_restarts=%d)", process.name, what_happened, done, count, budget)
        self.stats.write_scalars(0, "stats", {"worker_restarts": count})
        return True

    def _process_named(self, name: str) -> EventLoopProcess | None:
        return next((p for p in self.processes if p.name == name), None)

    def _check_silent_processes(self):
        """An inference worker or learner whose event loop stands still is stuck inside a callback
        (its loop turns at least once a second even when idle): named with its stack after
        --heartbeat_interval seconds, the run stopped after SILENT_STOP_INTERVALS of them."""
        now = time.monotonic()
        for process in self.processes:
            if process.name.startswith("rollout_worker_") or not process.is_alive():
                continue  # rollout workers are judged by the frames they step (_check_stalled_workers)
            turns = process.event_loop.turns
            last_turns, since = self._loop_turns.get(process.name, (None, now))
            if turns != last_turns:
                self._loop_turns[process.name] = (turns, now)
                self._silence_reported.discard(process.name)
                continue
            silent_for = now - since
            if silent_for >= self.cfg.heartbeat_interval and process.name not in self._silence_reported:
                self._silence_reported.add(process.name)
                stack = process.stack()
                log.error(
                    "%s (pid %s) has not turned its event loop for %.0fs: stuck?%s",
                    process.name,
                    process.pid,
                    silent_for,
                    f" Where it is:\n{stack}" if stack else "",
                )
            if silent_for >= SILENT_STOP_INTERVALS * self.cfg.heartbeat_interval:
                log.error(
                    "%s has been silent for %.0fs (%d x --heartbeat_interval=%d): stopping the run",
                    process.name,
                    silent_for,
                    SILENT_STOP_INTERVALS,
                    self.cfg.heartbeat_interval,
                )
                self.request_stop(ExitStatus.FAILURE)
                return

    def _check_run_stuck(self):
        """No worker steps an env and no policy trains: every env hung at once, or every worker waits on
        a queue that will never move. Neither check above sees it (they compare a process with the
        others, or look at loops that still turn); nothing would end the run short of its time budget."""
        now = time.monotonic()
        frames = int(sum(self.shared.frames_sampled.tolist()))
        progress = (frames, sum(self.stats.train_steps))
        patience = SILENT_STOP_INTERVALS * self.cfg.heartbeat_interval
        if frames == 0 and not self._no_frames_reported and now - self._train_started >= patience:
            # Envs may take long to start (some simulators do): named, not stopped.
            self._no_frames_reported = True
            log.warning(
                "No env has stepped in the %.0fs since the start: still starting, or hung?%s",
                now - self._train_started,
                self._where_worker_0_is(),
            )
        if frames == 0 or self._run_progress is None or progress != self._run_progress[0]:
            self._run_progress = (progress, now)
            return
        stuck_for = now - self._run_progress[1]
        if stuck_for >= patience:
            log.error(
                "No env stepped and no policy trained for %.0fs (%d x --heartbeat_interval=%d): the run is stuck,"
                " stopping it%s",
                stuck_for,
                SILENT_STOP_INTERVALS,
                self.cfg.heartbeat_interval,
                self._where_worker_0_is(),
            )
            self.request_stop(ExitStatus.FAILURE)

    def _where_worker_0_is(self) -> str:
        worker = self._process_named("rollout_worker_0")
        stack = worker.stack() if worker is not None and worker.is_alive() else ""
        return f"; where rollout_worker_0 is:\n{stack}" if stack else ""

    def _check_health(self):
        if not self.cfg.serial_mode and not self._stopping:
            self._check_stalled_workers()
            self._check_silent_processes()
            self._check_run_stuck()
        for process in self.processes:
            if not process.is_alive() and process.process is not None:
                if (self._stopping and process.exitcode == 0) or process.event_loop.receiver_gone:
                    continue  # a clean exit at the end, or a death already reported
                died = f"(pid {process.pid}) died with exit code {process.exitcode}"
                if process.name.startswith("rollout_worker_"):
                    if self._restart_rollout_worker(int(process.name.rsplit("_", 1)[1]), died):
                        continue
                elif process.name.startswith("inference_") and self._restart_inference_worker(process, died):
                    continue
                log.error(
                    "%s (pid %s) died with exit code %s: stopping the run", process.name, process.pid, process.exitcode
                )
                process.event_loop.receiver_gone = True
                self.status = ExitStatus.FAILURE
                if not self._stopping:
                    self.request_stop(ExitStatus.FAILURE)
                if process.name.startswith("learner"):
                    # A dead learner will never confirm its stop: count it as stopped.
                    self.on_learner_stopped(int(process.name.split("_p")[1]))
        self._check_stop_conditions()

    # --- shutdown ----------------------------------------------------------------------------

    def _free_queues_of_the_dead(self):
        """A thread: the moment a process dies, frees any queue lock it held (see queue_repair): such a
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
        queues = {loop.name: loop.own_queue for loop in [self.event_loop] + [p.event_loop for p in self.processes]}
        if self._spare_queues is not None:
            queues.update({f"spare_queue_{i}": q for i, q in enumerate(self._spare_queues.queues)})
        queues.update({pool.name: pool.queue for pool in self.shared.slot_pools})
        with self._queue_repair_lock:
            held = [queue_name for queue_name, queue in queues.items() if free_lock_of_dead(queue, dead_pid)]
        if held:
            log.warning("%s died holding the queue lock of %s: freed it", name, held)

    def _shutdown(self):
        self._shutting_down.set()
        self.shared.stop_event.set()
        if self.cfg.serial_mode:
            for worker in self.rollout_workers:
                worker.close_envs()
        for process in self.processes:
            if process.is_alive():
                # A message may not get through a dead or stuck loop: join, then kill.
                process.join(timeout_sec=10.0)
        for process in self.processes:
            if process.pid:
                kill_process_tree(process.pid)
        for pool in self.shared.slot_pools:
            pool.close()
        if self._stack_dir is not None:
            shutil.rmtree(self._stack_dir, ignore_errors=True)
        self.stats.close()


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
