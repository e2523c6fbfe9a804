"""The messages between components: the name of every signal made at run time, and what each carries.

Senders and receivers both build names here, so a misspelled name cannot silently reach nobody
(and with `SF_STRICT_SIGNALS=1`, as in the tests, an emit that no slot receives raises).

Named signals, one per policy or per worker:

Policy ids count the learning policies first, then the frozen league opponents (--league_opponents),
which have inference workers but no learner.

  inference_requested(policy_id)   rollout worker -> inference worker of that policy
      (worker_idx, split_idx, t, slots, epoch, request_seq): observations of step t of these trajectory
      slots are in the shared buffers; compute the actions. `epoch` counts the worker's restarts,
      `request_seq` the split's requests (one asked again after an inference restart is answered once).
  actions_ready(worker_idx)        inference worker -> that rollout worker
      (split_idx, epoch, policy_id): that policy's actions for the split's last request are in the
      shared buffers (an epoch not the worker's own answers a process that was replaced: ignored).
  trajectory_ready(policy_id)      rollout worker -> learner of that policy
      (policy_id, slots): these trajectory slots are complete; the learner frees them when done
      (a frozen opponent's slots the rollout worker frees itself).
  save_best(policy_id)             runner -> learner of that policy
      (policy_id, metric_name, value): a new best value of the metric; save a best checkpoint.
  new_hyperparams(policy_id)       population-based training -> learner of that policy
      (policy_id, params: dict): train with these values of the tunable hyper-parameters from now on.
  export_weights(policy_id)        population-based training -> learner of that policy
      (policy_id, target_policy, path): write weights, optimizer and normalizers to path for target_policy.
  import_weights(policy_id)        population-based training -> learner of that policy
      (policy_id, source_policy, path, params: dict): continue from the weights at path, with params.

Signals declared on the component classes (`signal()` attributes):

  RolloutWorker.episodes_finished  -> runner       (episodes: list[dict]) returns, lengths, stats
  RolloutWorker.env_failed         -> runner       (worker_idx, env_idx, error) an env raised and was made anew
  RolloutWorker.failed             -> runner       (worker_idx, message) an env can't be made or reset: stop
  RolloutWorker.league_games_finished -> league opponents (games: [(policy_id, opponent_id, its weights
                                      version, points)]) two-player games against a frozen opponent
  LearnerWorker.report             -> runner       (policy_id, stats: dict) after a training step
  LearnerWorker.failed             -> runner       (policy_id, message) e.g. a checkpoint write failed: stop
  LearnerWorker.slots_released     -> rollout workers (policy_id,) trajectory slots are free again
  LearnerWorker.stopped            -> runner       (policy_id,) the final checkpoint is written
  LearnerWorker.weights_exported   -> population-based training (policy_id, target_policy, path)
  PopulationBasedTraining.reward_shaping_changed -> rollout workers (policy_id, shaping: dict)
  Runner.stop_requested            -> every component (): stop; samplers first, learners last
  Runner.inference_restarted       -> rollout workers (policy_id, inference_idx) that inference worker
                                      died and was started anew: ask again for the actions still awaited
"""

from __future__ import annotations


def inference_requested(policy_id: int) -> str:
    return f"inference_requested_p{policy_id}"


def actions_ready(worker_idx: int) -> str:
    return f"actions_ready_w{worker_idx}"


def trajectory_ready(policy_id: int) -> str:
    return f"trajectory_ready_p{policy_id}"


def save_best(policy_id: int) -> str:
    return f"save_best_p{policy_id}"


def new_hyperparams(policy_id: int) -> str:
    return f"new_hyperparams_p{policy_id}"


def export_weights(policy_id: int) -> str:
    return f"export_weights_p{policy_id}"


def import_weights(policy_id: int) -> str:
    return f"import_weights_p{policy_id}"
