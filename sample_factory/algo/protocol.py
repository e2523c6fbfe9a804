"""The messages between components: every signal, who sends it to whom, and the type it carries.

Each payload is a NamedTuple: the sender builds it, the receiving slot reads its fields. Signals
whose name is made at run time (one per policy or per worker) are built here, so sender and
receiver cannot disagree on a name; the ones declared on component classes name their payload
type in the declaration. With `SF_STRICT_SIGNALS=1` (as in the tests) an emit that no slot
receives, or whose payload is not the declared type, raises and names the signal.

Policy ids count the learning policies first, then the frozen league opponents (--league_opponents),
which have inference workers but no learner.
"""

from __future__ import annotations

from typing import NamedTuple

from sample_factory.signal_slot.loop import SignalSpec

# --- named signals, one per policy or per worker ---------------------------------------------------


class InferenceRequest(NamedTuple):
    """Rollout worker -> inference worker of the policy: observations of step `t` of these trajectory
    slots are in the shared buffers; compute the actions. `epoch` counts the worker's restarts,
    `request_seq` the split's requests (one asked again after an inference restart is answered once)."""

    worker_idx: int
    split_idx: int
    t: int
    slots: list[int]
    epoch: int
    request_seq: int


class ActionsReady(NamedTuple):
    """Inference worker -> that rollout worker: the policy's actions for the split's last request are
    in the shared buffers (an epoch not the worker's own answers a process that was replaced: ignored)."""

    split_idx: int
    epoch: int
    policy_id: int


class TrajectoryReady(NamedTuple):
    """Rollout worker -> learner of the policy: these trajectory slots are complete; the learner frees
    them when done (a frozen opponent's slots the rollout worker frees itself)."""

    policy_id: int
    slots: list[int]


class SaveBest(NamedTuple):
    """Runner -> learner of the policy: a new best value of the metric; save a best checkpoint."""

    policy_id: int
    metric: str
    value: float


class NewHyperparams(NamedTuple):
    """Population-based training -> learner: train with these values of the tunable hyper-parameters."""

    policy_id: int
    params: dict


class ExportWeights(NamedTuple):
    """Population-based training -> learner: write weights, optimizer and normalizers to `path` for `target_policy`."""

    policy_id: int
    target_policy: int
    path: str


class ImportWeights(NamedTuple):
    """Population-based training -> learner: continue from the weights at `path`, with `params`."""

    policy_id: int
    source_policy: int
    path: str
    params: dict


def inference_requested(policy_id: int) -> SignalSpec:
    return SignalSpec(f"inference_requested_p{policy_id}", InferenceRequest)


def actions_ready(worker_idx: int) -> SignalSpec:
    return SignalSpec(f"actions_ready_w{worker_idx}", ActionsReady)


def trajectory_ready(policy_id: int) -> SignalSpec:
    return SignalSpec(f"trajectory_ready_p{policy_id}", TrajectoryReady)


def save_best(policy_id: int) -> SignalSpec:
    return SignalSpec(f"save_best_p{policy_id}", SaveBest)


def new_hyperparams(policy_id: int) -> SignalSpec:
    return SignalSpec(f"new_hyperparams_p{policy_id}", NewHyperparams)


def export_weights(policy_id: int) -> SignalSpec:
    return SignalSpec(f"export_weights_p{policy_id}", ExportWeights)


def import_weights(policy_id: int) -> SignalSpec:
    return SignalSpec(f"import_weights_p{policy_id}", ImportWeights)


# --- signals declared on the component classes -------------------------------------------------------


class EpisodesFinished(NamedTuple):
    """RolloutWorker.episodes_finished -> runner: returns, lengths and extra stats, one dict an episode."""

    episodes: list[dict]


class LeagueGamesFinished(NamedTuple):
    """RolloutWorker.league_games_finished -> league opponents: games against a frozen opponent, each
    (learning policy, opponent id, the opponent's weights version, points)."""

    games: list[tuple[int, int, int, float]]


class EnvFailed(NamedTuple):
    """RolloutWorker.env_failed -> supervisor: an env raised and was made anew."""

    worker_idx: int
    env_idx: int
    error: str


class NonFiniteDropped(NamedTuple):
    """RolloutWorker.non_finite_dropped -> supervisor: an env returned NaN or inf in `what`; `steps`
    steps were zeroed and not trained on since the last report."""

    worker_idx: int
    env_idx: int
    what: str
    steps: int


class WorkerFailed(NamedTuple):
    """RolloutWorker.failed -> supervisor: an env can't be made or reset; the run stops."""

    worker_idx: int
    message: str


class LearnerReport(NamedTuple):
    """LearnerWorker.report -> runner: after a training step."""

    policy_id: int
    stats: dict


class LearnerFailed(NamedTuple):
    """LearnerWorker.failed -> runner: e.g. a checkpoint write failed; the run stops."""

    policy_id: int
    message: str


class SlotsReleased(NamedTuple):
    """LearnerWorker.slots_released -> rollout workers: the policy's trajectory slots are free again."""

    policy_id: int


class LearnerStopped(NamedTuple):
    """LearnerWorker.stopped -> runner: the final checkpoint is written."""

    policy_id: int


class WeightsExported(NamedTuple):
    """LearnerWorker.weights_exported -> population-based training: the export it asked for is written."""

    policy_id: int
    target_policy: int
    path: str


class RewardShapingChanged(NamedTuple):
    """PopulationBasedTraining.reward_shaping_changed -> rollout workers: the policy's new reward shaping."""

    policy_id: int
    shaping: dict


class InferenceRestarted(NamedTuple):
    """Supervisor.inference_restarted -> rollout workers: that inference worker died and was started
    anew; ask again for the actions still awaited."""

    policy_id: int
    inference_idx: int


# Runner.stop_requested -> every component carries nothing: stop; samplers first, learners last.
