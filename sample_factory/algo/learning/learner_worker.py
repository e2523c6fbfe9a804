"""The learner's event-loop shell: batches finished trajectories, trains, publishes, checkpoints.

It lives on the runner's loop for a single policy (see runner.py) and in a process of its own
for each of several policies.

Slots:   on_trajectory_ready(policy_id, slots), on_save_best(policy_id, metric, value), on_stop(),
         and from population-based training on_new_hyperparams, on_export_weights, on_import_weights
Signals: report(policy_id, stats), stopped(policy_id), slots_released(policy_id), weights_exported

A policy of a population trains with its own hyper-parameters (cfg/policy_params.py): read from
its file at start, changed by population-based training while the run goes on.

In async mode the trajectory slots go back to the pool as soon as the batch is copied out,
so sampling continues while the learner trains. In sync mode (`--async_rl=False`) they go
back only after the new weights are published: sampling waits, and the policy lag is 0.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch

from sample_factory.algo import protocol, roles
from sample_factory.algo.learning.learner import Learner, NonFiniteTrainingError
from sample_factory.algo.utils.host_staging import HostStaging
from sample_factory.cfg.derived import trajectories_per_iteration
from sample_factory.cfg.policy_params import read_hyperparams, uses_policy_files, with_hyperparams
from sample_factory.model.model_factory import set_global_model_factory
from sample_factory.signal_slot.loop import EventLoopObject, Timer, signal
from sample_factory.utils.checkpoint import (
    CheckpointWriteError,
    checkpoint_dir,
    league_snapshots,
    load_latest_checkpoint,
    save_atomically,
    save_best_checkpoint,
    save_checkpoint,
    save_league_snapshot,
    save_milestone,
)
from sample_factory.utils.device import keep_large_allocations_mapped, learner_cpu_threads, policy_device

log = logging.getLogger(__name__)


class LearnerWorker(EventLoopObject):
    report = signal(protocol.LearnerReport)
    failed = signal(protocol.LearnerFailed)
    stopped = signal(protocol.LearnerStopped)
    slots_released = signal(protocol.SlotsReleased)
    weights_exported = signal(protocol.WeightsExported)

    def __init__(self, event_loop, policy_id: int, cfg, env_info, shared, model_factory, experiment_dir: str):
        super().__init__(event_loop, roles.learner(policy_id).name)
        self.policy_id = policy_id
        self.cfg = cfg
        self.env_info = env_info
        self.shared = shared
        self.model_factory = model_factory
        self.experiment_dir = experiment_dir
        self.learner: Learner | None = None
        self._staging: HostStaging | None = None
        self._pending: list[list[int]] = []
        self._num_pending = 0
        self._env_steps_per_trajectory = cfg.rollout * env_info.frameskip
        self._failed = False  # a checkpoint write failed: the runner has been told to stop

    def on_loop_started(self):
        set_global_model_factory(self.model_factory)
        device = policy_device(self.cfg)
        if self.event_loop.owned_by_process:
            # With a GPU too: the CPU side (batch gathering) must not spin threads on the envs' cores.
            torch.set_num_threads(learner_cpu_threads(self.cfg))
            if device.type == "cpu":
                keep_large_allocations_mapped()
        params = read_hyperparams(self.experiment_dir, self.policy_id) if uses_policy_files(self.cfg) else None
        self.learner = Learner(with_hyperparams(self.cfg, params), self.env_info, self.policy_id, device)
        self._staging = HostStaging(device)  # each batch is copied into the same (pinned, on a GPU) buffers
        restored = load_latest_checkpoint(checkpoint_dir(self.experiment_dir, self.policy_id), device)
        if restored is not None:
            state, path = restored
            self.learner.load_state_dict(state)
            log.info("Policy %d: resumed from %s (env steps %d)", self.policy_id, path, self.learner.state.env_steps)
        self._publish()
        self._seconds_before = self.learner.state.train_seconds
        self._last_snapshot_env_steps: int | None = None
        if self.cfg.league_snapshot_every_env_steps > 0:
            snapshots = league_snapshots(self.experiment_dir, self.policy_id)
            if snapshots:
                self._last_snapshot_env_steps = self.learner.state.env_steps
            else:
                self._save_league_snapshot()  # the policy at its start: what progress is measured against
        Timer(self.event_loop, max(1.0, float(self.cfg.save_every_sec)), self._save_checkpoint)
        if self.cfg.save_milestones_sec > 0:
            Timer(self.event_loop, float(self.cfg.save_milestones_sec), self._save_milestone)
        self.event_loop.add_idle_callback(self._train_when_ready)

    def on_trajectory_ready(self, ready: protocol.TrajectoryReady):
        if self.learner is None:  # stopped: workers in other processes may still be finishing
            return
        slots = ready.slots
        self._pending.append(slots)
        self._num_pending += len(slots)
        self.learner.state.env_steps += len(slots) * self._env_steps_per_trajectory

    def _publish(self):
        self.shared.policy_states[self.policy_id].publish(self.learner.model, self.learner.state.policy_version)

    def _drop_without_learning(self):
        """--sampler_only: hand slots straight back, so only sampling and inference are measured."""
        if not self._pending or self.learner is None:
            return
        groups, self._pending, self._num_pending = self._pending, [], 0
        self._release(groups)
        st = self.learner.state
        stats = {
            "env_steps": st.env_steps,
            "policy_version": st.policy_version,
            "lag_min": 0.0,
            "lag_avg": 0.0,
            "lag_max": 0.0,
        }
        self.report.emit(protocol.LearnerReport(self.policy_id, stats))

    def _train_when_ready(self):
        if self.cfg.sampler_only:
            self._drop_without_learning()
            return
        needed = trajectories_per_iteration(self.cfg)
        while self.learner is not None and not self._failed and self._num_pending >= needed:
            groups, taken = [], 0
            while taken < needed:
                group = self._pending.pop(0)
                groups.append(group)
                taken += len(group)
            self._num_pending -= taken
            slots = torch.tensor([s for g in groups for s in g], dtype=torch.int64)
            self._staging.wait()  # the last batch's upload has finished reading the buffers
            batch = self.shared.buffers.gather(slots, self._staging)
            if self.cfg.async_rl:
                self._release(groups)

            started = time.monotonic()
            try:
                stats = self.learner.train(batch)
            except NonFiniteTrainingError as e:
                if not self.cfg.async_rl:
                    self._release(groups)
                self._fail(str(e))
                return
            self._publish()
            if not self.cfg.async_rl:
                self._release(groups)
            stats["train_sec"] = time.monotonic() - started
            self._save_league_snapshot_if_due()
            stats["env_steps"] = self.learner.state.env_steps
            stats["policy_version"] = self.learner.state.policy_version
            self.report.emit(protocol.LearnerReport(self.policy_id, stats))

    def _fail(self, message: str):
        if not self._failed:
            self._failed = True
            self.failed.emit(protocol.LearnerFailed(self.policy_id, message))

    def _release(self, groups: list[list[int]]):
        pool = self.shared.slot_pools[self.policy_id]
        for group in groups:
            pool.release(group)
        self.slots_released.emit(protocol.SlotsReleased(self.policy_id))

    def _checkpoint_state(self) -> dict:
        self.learner.state.train_seconds = self._seconds_before + time.time() - self.shared.run_started_at
        return {**self.learner.state_dict(), "cfg_hash": self.cfg_hash}

    @property
    def cfg_hash(self) -> str:
        from sample_factory.cfg.experiment import cfg_hash

        return cfg_hash(self.cfg)

    def _model_is_finite(self) -> bool:
        """A model with NaN or infinite weights or normalizer statistics is never saved: the previous
        checkpoint stays the newest, so a resume starts from weights that work."""
        poisoned = [
            k
            for k, v in self.learner.model.state_dict().items()
            if v.is_floating_point() and not torch.isfinite(v).all()
        ]
        if poisoned:
            log.error(
                "Policy %d: %d tensors are NaN or infinite (%s...): not saving a checkpoint",
                self.policy_id,
                len(poisoned),
                poisoned[0],
            )
        return not poisoned

    def _save_checkpoint(self, final: bool = False) -> Path | None:
        """A failed write (a full disk) keeps the previous checkpoint; the run goes on and the next
        save tries again, unless this was the last save, which fails the run."""
        if self.learner is None or self.cfg.sampler_only or not self._model_is_finite():
            return None
        state = self._checkpoint_state()
        st = self.learner.state
        try:
            path = save_checkpoint(
                state,
                checkpoint_dir(self.experiment_dir, self.policy_id),
                st.train_step,
                st.env_steps,
                self.cfg.keep_checkpoints,
            )
        except CheckpointWriteError as e:
            if final:
                log.error("Policy %d: %s; the previous checkpoint is kept", self.policy_id, e)
                self._fail(str(e))
            else:
                log.error(
                    "Policy %d: %s; the previous checkpoint is kept, trying again in --save_every_sec=%d",
                    self.policy_id,
                    e,
                    self.cfg.save_every_sec,
                )
            return None
        log.debug("Saved %s", path)
        return path

    def _save_league_snapshot_if_due(self):
        every = self.cfg.league_snapshot_every_env_steps
        if every > 0 and self.learner.state.env_steps - self._last_snapshot_env_steps >= every:
            self._save_league_snapshot()

    def _save_league_snapshot(self):
        st = self.learner.state
        self._last_snapshot_env_steps = st.env_steps
        if not self._model_is_finite():
            return
        state = {
            "model": self.learner.model.state_dict(),
            "training_state": dict(st.__dict__),
            "cfg_hash": self.cfg_hash,
        }
        try:
            path = save_league_snapshot(state, self.experiment_dir, self.policy_id, st.env_steps, self.cfg.league_size)
        except CheckpointWriteError as e:
            log.error("Policy %d: %s; no league snapshot this time", self.policy_id, e)
            return
        log.info("Policy %d: league snapshot %s", self.policy_id, path.name)

    def _save_milestone(self):
        path = self._save_checkpoint()
        if path is not None:
            save_milestone(path)

    def on_save_best(self, best: protocol.SaveBest):
        metric, value = best.metric, best.value
        if self.learner is None or not self._model_is_finite():
            return
        st = self.learner.state
        try:
            path = save_best_checkpoint(
                self._checkpoint_state(),
                checkpoint_dir(self.experiment_dir, self.policy_id),
                st.train_step,
                st.env_steps,
                metric,
                value,
            )
        except CheckpointWriteError as e:
            log.error("Policy %d: %s; the previous best checkpoint is kept", self.policy_id, e)
            return
        log.info("Policy %d: new best %s %.3f, saved %s", self.policy_id, metric, value, path.name)

    # --- population-based training (algo/protocol.py) ------------------------------------------

    def on_new_hyperparams(self, new: protocol.NewHyperparams):
        if self.learner is not None:
            self.learner.set_hyperparams(new.params)

    def on_export_weights(self, export: protocol.ExportWeights):
        """Writes weights, optimizer state and normalizer statistics for another policy to take over."""
        target_policy, path = export.target_policy, export.path
        if self.learner is None:
            return
        try:
            save_atomically(self.learner.state_dict(), path)
        except CheckpointWriteError as e:
            log.error("Policy %d: %s; policy %d is not replaced", self.policy_id, e, target_policy)
            return
        self.weights_exported.emit(protocol.WeightsExported(self.policy_id, target_policy, path))

    def on_import_weights(self, imported: protocol.ImportWeights):
        """Continues from another policy's weights under this policy's id, with its `params`."""
        source_policy, path, params = imported.source_policy, imported.path, imported.params
        if self.learner is None:
            return
        try:
            state = torch.load(path, map_location=self.learner.device, weights_only=True)
            self.learner.load_weights(state)
        except Exception as e:  # a missing or broken file: this policy keeps its own weights
            log.error(
                "Policy %d: cannot take over policy %d's weights (%s: %s)",
                self.policy_id,
                source_policy,
                type(e).__name__,
                e,
            )
            return
        finally:
            Path(path).unlink(missing_ok=True)
        self.learner.set_hyperparams(params)
        # Trajectories in flight were sampled by the weights replaced: they count as lagging.
        self.learner.state.policy_version += 1
        self._publish()
        log.info("Policy %d: now trains from the weights of policy %d", self.policy_id, source_policy)

    def on_stop(self):
        self._save_checkpoint(final=True)
        self.learner = None
        self.stopped.emit(protocol.LearnerStopped(self.policy_id))
        self.stop_own_loop()
