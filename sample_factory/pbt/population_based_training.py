"""Population-based training (Jaderberg et al., 2017): an observer of the run, on the runner's loop.

Each policy is updated every `--pbt_period_env_steps` of its own env steps; before
`--pbt_start_mutation` of them an update changes nothing. An update of policy p:

1. ranks the population by the mean `--pbt_target_objective` of each policy's recent episodes
   (the `true_objective` an env reports at an episode's end, or another episode stat; the
   return where the env reports neither);
2. if p is among the worst `--pbt_replace_fraction` (at least one policy, at most half), picks a
   random policy among as many best; if p trails it by more than `--pbt_replace_reward_gap` of
   the better objective's size and by more than `--pbt_replace_reward_gap_absolute`, p takes its
   weights, optimizer state and normalizer statistics, its hyper-parameters and its reward
   shaping, and continues from them under its own id;
3. unless p is among the best, each of p's hyper-parameters (cfg/policy_params.py; gamma with
   `--pbt_optimize_gamma`) and non-zero reward-shaping coefficients mutates with probability
   `--pbt_mutation_rate`: multiplied or divided by a factor from [`--pbt_perturb_min`,
   `--pbt_perturb_max`] (for gamma, 1 - gamma is), kept within `MUTATION_BOUNDS`.

Every replacement and mutation is logged in one line. Each policy's hyper-parameters, reward
shaping and history of updates are kept in the experiment folder (`policy_XX_cfg.json`,
`policy_XX_reward_shaping.json`, `policy_XX_pbt.json`), each written atomically, and a resumed
run continues from them. TensorBoard shows them per policy under `pbt/`.
"""

from __future__ import annotations

import logging
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sample_factory.algo import protocol
from sample_factory.cfg.policy_params import (
    TUNABLE_HYPERPARAMS,
    read_hyperparams,
    read_policy_file,
    read_reward_shaping,
    write_hyperparams,
    write_reward_shaping,
)
from sample_factory.runner.observer import AlgoObserver
from sample_factory.signal_slot.loop import EventLoopObject, signal
from sample_factory.utils.experiment_folder import ExperimentFolder, atomic_write_json

log = logging.getLogger(__name__)

# Mutations stay inside these (a value typed outside them is kept until it mutates).
MUTATION_BOUNDS = {
    "learning_rate": (1e-7, 1e-1),
    "exploration_loss_coeff": (0.0, 1.0),
    "value_loss_coeff": (1e-3, 10.0),
    "max_grad_norm": (0.0, 100.0),
    "ppo_clip_ratio": (0.01, 0.9),
    "ppo_clip_value": (0.01, 1000.0),
    "gamma": (0.8, 0.9999),
}
SHAPING_BOUND = 1e3  # reward-shaping coefficients stay within +-SHAPING_BOUND
MIN_EPISODES = 10  # a policy with fewer recent episodes is not ranked


# --- the decisions, as functions of numbers (unit-tested) --------------------------------------


def ranked(objectives: dict[int, float]) -> list[int]:
    """Policy ids, best first (ties: the lower id first)."""
    return sorted(objectives, key=lambda p: (-objectives[p], p))


def fraction_size(num_policies: int, fraction: float) -> int:
    """How many policies the top and the bottom fraction hold: at least one, at most half."""
    return min(num_policies // 2, max(1, math.ceil(fraction * num_policies)))


def gap_allows_replacement(better: float, worse: float, relative_gap: float, absolute_gap: float) -> bool:
    gap = better - worse
    return gap > absolute_gap and gap > relative_gap * abs(better)


def replacement_for(
    policy_id: int, objectives: dict[int, float], fraction: float, relative_gap: float, absolute_gap: float, rng
) -> int | None:
    """The policy whose weights `policy_id` takes, or None (not in the bottom fraction, or the gap is too small)."""
    order = ranked(objectives)
    k = fraction_size(len(order), fraction)
    if k == 0 or policy_id not in order[-k:]:
        return None
    source = rng.choice(order[:k])
    if gap_allows_replacement(objectives[source], objectives[policy_id], relative_gap, absolute_gap):
        return source
    return None


def is_top(policy_id: int, objectives: dict[int, float], fraction: float) -> bool:
    order = ranked(objectives)
    return policy_id in order[: fraction_size(len(order), fraction)]


def perturbed(name: str, value: float, factor: float, up: bool) -> float:
    """`value` multiplied (up) or divided by `factor`; for gamma, 1 - gamma is; within MUTATION_BOUNDS."""
    if name == "gamma":
        horizon = 1.0 - value
        new = 1.0 - (horizon * factor if up else horizon / factor)
    else:
        new = value * factor if up else value / factor
    low, high = MUTATION_BOUNDS.get(name, (-SHAPING_BOUND, SHAPING_BOUND))
    return float(min(max(new, low), high))


def mutated(values: dict[str, float], rate: float, perturb_min: float, perturb_max: float, rng) -> dict[str, float]:
    """A copy of `values` where each mutates with probability `rate`; zeros stay zero (a term not in use)."""
    out = dict(values)
    for name, value in values.items():
        if value != 0.0 and rng.random() < rate:
            out[name] = perturbed(name, value, rng.uniform(perturb_min, perturb_max), rng.random() < 0.5)
    return out


# --- the observer -------------------------------------------------------------------------------


@dataclass
class PolicyRecord:
    hyperparams: dict[str, float]
    reward_shaping: dict[str, float] | None
    last_update_env_steps: int = 0
    history: list[dict] = field(default_factory=list)


def history_path(experiment_dir: str | Path, policy_id: int) -> Path:
    return ExperimentFolder(experiment_dir).pbt_history_file(policy_id)


class PopulationBasedTraining(AlgoObserver, EventLoopObject):
    """Registered by `make_runner` when `--with_pbt=True` (as in sample-factory 2.x)."""

    reward_shaping_changed = signal(protocol.RewardShapingChanged)

    def __init__(self, cfg, runner):
        EventLoopObject.__init__(self, runner.event_loop, "pbt")
        self.cfg = cfg
        self.runner = runner
        self.experiment_dir = Path(runner.experiment_dir)
        self.folder = ExperimentFolder(self.experiment_dir)
        self.tuned = [n for n in TUNABLE_HYPERPARAMS if n != "gamma" or cfg.pbt_optimize_gamma]
        self.rng = random.Random(None if cfg.seed is None else cfg.seed * 31 + 7)
        self.records: list[PolicyRecord] = []
        self._replacing: set[int] = set()  # policies waiting for another's weights
        self._warned_objective = False

    # --- hooks --------------------------------------------------------------------------------

    def on_init(self, runner):
        for policy_id in range(self.cfg.num_policies):
            params = read_hyperparams(self.experiment_dir, policy_id)  # the runner wrote the first ones
            shaping = read_reward_shaping(self.experiment_dir, policy_id)
            saved = read_policy_file(history_path(self.experiment_dir, policy_id)) or {}
            record = PolicyRecord(
                params,
                shaping,
                int(saved.get("last_update_env_steps", runner.env_steps[policy_id])),
                list(saved.get("history", [])),
            )
            self.records.append(record)
            self._save(policy_id)
            if saved:
                log.info(
                    "PBT: policy %d resumes with %s (%d earlier updates)",
                    policy_id,
                    _describe(params),
                    len(record.history),
                )

    def on_connect_components(self, runner):
        for learner in runner.learners:
            learner.weights_exported.connect(self.on_weights_exported)
            p = learner.policy_id
            self.named_signal(protocol.new_hyperparams(p)).connect(learner.on_new_hyperparams)
            self.named_signal(protocol.export_weights(p)).connect(learner.on_export_weights)
            self.named_signal(protocol.import_weights(p)).connect(learner.on_import_weights)
        for worker in runner.rollout_workers:
            self.reward_shaping_changed.connect(worker.on_reward_shaping_changed)

    def on_training_step(self, runner, training_iteration_since_resume: int):
        for policy_id, record in enumerate(self.records):
            if policy_id in self._replacing:
                continue
            env_steps = runner.env_steps[policy_id]
            if env_steps - record.last_update_env_steps >= self.cfg.pbt_period_env_steps:
                self._update(policy_id, env_steps)

    def extra_summaries(self, runner, policy_id: int, env_steps: int, writer):
        record = self.records[policy_id]
        for name, value in record.hyperparams.items():
            writer.add_scalar(f"pbt/{name}", value, env_steps)
        for name, value in (record.reward_shaping or {}).items():
            writer.add_scalar(f"pbt/reward_shaping_{name}", value, env_steps)
        objective = self._objective(policy_id)
        if objective is not None:
            writer.add_scalar("pbt/objective", objective, env_steps)

    def on_stop(self, runner):
        for leftover in self.folder.pbt_dir.glob("*.pth"):
            leftover.unlink(missing_ok=True)  # a replacement the stop came in the middle of

    # --- one update -----------------------------------------------------------------------------

    def _objective(self, policy_id: int) -> float | None:
        stats, target = self.runner.stats, self.cfg.pbt_target_objective
        if target == "true_objective" and stats.true_objectives[policy_id]:
            values = stats.true_objectives[policy_id]
        elif target in stats.extra_stats[policy_id] and stats.extra_stats[policy_id][target]:
            values = stats.extra_stats[policy_id][target]
        else:
            if target != "true_objective" and stats.episode_rewards[policy_id] and not self._warned_objective:
                self._warned_objective = True
                log.warning("PBT: episodes report no %r; ranking by the return instead", target)
            values = stats.episode_rewards[policy_id]
        if len(values) < min(MIN_EPISODES, self.cfg.stats_avg):
            return None
        return float(np.mean(values))

    def _update(self, policy_id: int, env_steps: int):
        record = self.records[policy_id]
        record.last_update_env_steps = env_steps
        if env_steps < self.cfg.pbt_start_mutation:
            self._save(policy_id)
            return
        objectives = {p: v for p in range(self.cfg.num_policies) if (v := self._objective(p)) is not None}
        if policy_id not in objectives:
            log.info("PBT: policy %d has too few recent episodes to rank; no update", policy_id)
            self._save(policy_id)
            return
        if is_top(policy_id, objectives, self.cfg.pbt_replace_fraction):
            self._save(policy_id)
            return
        candidates = {p: v for p, v in objectives.items() if p not in self._replacing}
        source = replacement_for(
            policy_id,
            candidates,
            self.cfg.pbt_replace_fraction,
            self.cfg.pbt_replace_reward_gap,
            self.cfg.pbt_replace_reward_gap_absolute,
            self.rng,
        )
        base = self.records[source] if source is not None else record
        params = {**base.hyperparams, **self._mutated({n: base.hyperparams[n] for n in self.tuned})}
        shaping = None
        if base.reward_shaping is not None:
            shaping = self._mutated(base.reward_shaping)
        event = {"env_steps": env_steps, "time": time.time(), "objective": objectives[policy_id]}
        if source is not None:
            event.update(replaced_by=source, source_objective=objectives[source])
            log.info(
                "PBT: policy %d (objective %.3f) takes the weights of policy %d (objective %.3f) at %d env steps",
                policy_id,
                objectives[policy_id],
                source,
                objectives[source],
                env_steps,
            )
        changes = _changed(record.hyperparams, params)
        shaping_changes = _changed(record.reward_shaping or {}, shaping or {})
        if changes or shaping_changes:
            event.update(hyperparams=changes, reward_shaping=shaping_changes)
            log.info("PBT: policy %d now trains with %s", policy_id, _describe_changes({**changes, **shaping_changes}))
        old_shaping = record.reward_shaping
        record.hyperparams, record.reward_shaping = params, shaping
        record.history.append(event)
        self._save(policy_id)

        if source is not None:
            self._replacing.add(policy_id)
            # Its recent episodes were played by the weights it gives up: it is ranked anew.
            self.runner.stats.forget_episodes(policy_id)
            path = self.folder.pbt_transfer_file(source, policy_id)
            self.named_signal(protocol.export_weights(source)).emit(
                protocol.ExportWeights(source, policy_id, str(path))
            )
        elif changes:
            self.named_signal(protocol.new_hyperparams(policy_id)).emit(protocol.NewHyperparams(policy_id, params))
        if shaping is not None and shaping != old_shaping:
            self.reward_shaping_changed.emit(protocol.RewardShapingChanged(policy_id, shaping))

    def on_weights_exported(self, exported: protocol.WeightsExported):
        source, target = exported.policy_id, exported.target_policy
        self._replacing.discard(target)
        params = self.records[target].hyperparams
        self.named_signal(protocol.import_weights(target)).emit(
            protocol.ImportWeights(target, source, exported.path, params)
        )

    def _mutated(self, values: dict[str, float]) -> dict[str, float]:
        cfg = self.cfg
        return mutated(values, cfg.pbt_mutation_rate, cfg.pbt_perturb_min, cfg.pbt_perturb_max, self.rng)

    def _save(self, policy_id: int):
        record = self.records[policy_id]
        write_hyperparams(self.experiment_dir, policy_id, record.hyperparams)
        if record.reward_shaping is not None:
            write_reward_shaping(self.experiment_dir, policy_id, record.reward_shaping)
        atomic_write_json(
            history_path(self.experiment_dir, policy_id),
            {"last_update_env_steps": record.last_update_env_steps, "history": record.history},
        )


def _changed(old: dict[str, float], new: dict[str, float]) -> dict[str, list]:
    """name -> [old value or None, new value] for every value that differs."""
    return {name: [old.get(name), value] for name, value in new.items() if old.get(name) != value}


def _describe(params: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:.4g}" for k, v in sorted(params.items()))


def _describe_changes(changes: dict[str, list]) -> str:
    return ", ".join(f"{k} {old:.4g} -> {new:.4g}" for k, (old, new) in sorted(changes.items()) if old is not None)
