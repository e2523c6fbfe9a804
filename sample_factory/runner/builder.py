"""What a run is made of, decided from the config and the env's spaces before anything starts.

Functions of `(cfg, env_info)` and the experiment folder: how many trajectory slots each policy
gets, the shared buffers, what a checkpoint on disk resumes (or why it cannot), the per-policy
files, and the components of every role. Nothing here starts a process, so all of it is tested
in-process; the runner calls these in order and then only orchestrates.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from sample_factory.algo import roles
from sample_factory.algo.learning.learner_worker import LearnerWorker
from sample_factory.algo.roles import Role
from sample_factory.algo.sampling.inference_worker import InferenceWorker
from sample_factory.algo.sampling.rollout_worker import RolloutWorker
from sample_factory.algo.shared_buffers import (
    SharedPolicyState,
    SlotPool,
    TrajectoryBuffers,
    check_buffers_fit,
    trajectory_buffer_bytes,
)
from sample_factory.algo.utils.agent_policy_mapping import agent_policy_mapping_class
from sample_factory.cfg.derived import acting_policies, agents_per_split, trajectories_per_iteration
from sample_factory.cfg.experiment import cfg_hash
from sample_factory.cfg.policy_params import (
    initial_hyperparams,
    parse_policy_overrides,
    read_hyperparams,
    read_reward_shaping,
    uses_policy_files,
    write_hyperparams,
    write_reward_shaping,
)
from sample_factory.envs.create_env import EnvInfo
from sample_factory.envs.env_utils import env_registry_snapshot
from sample_factory.league.opponents import LeagueOpponents
from sample_factory.model.actor_critic import create_actor_critic, rnn_state_size_for
from sample_factory.model.model_factory import global_model_factory
from sample_factory.signal_slot.loop import EventLoop
from sample_factory.signal_slot.transport import DEFAULT_QUEUE_BYTES
from sample_factory.utils.checkpoint import (
    CheckpointError,
    checkpoint_dir,
    incompatibilities,
    load_latest_checkpoint,
    remove_stale_temporaries,
)

log = logging.getLogger(__name__)


# --- trajectory slots ----------------------------------------------------------------------------


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

    def pool_starts(self, cfg) -> list[int]:
        """The first slot of each acting policy's pool."""
        sizes = self.pool_sizes(cfg)
        return [sum(sizes[:p]) for p in range(len(sizes))]


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


def queue_bytes(cfg, layout: SlotLayout) -> int:
    """Messages carry lists of slot indices: a loop's queue holds a few of the largest (all slots)."""
    return max(DEFAULT_QUEUE_BYTES, 4 * 8 * layout.slots_per_policy * cfg.num_policies)


# --- shared memory -------------------------------------------------------------------------------


@dataclass
class SharedResources:
    """Everything the components share; pickled once into each process at start."""

    buffers: TrajectoryBuffers
    slot_pools: list[SlotPool]
    policy_states: list[SharedPolicyState]
    stop_event: object
    frames_sampled: torch.Tensor  # [num_workers] env frames each rollout worker has stepped (benchmarks)
    run_started_at: float = 0.0  # time.time() when the run started: training seconds count from here


def _buffers_description(cfg, env_info: EnvInfo, layout: SlotLayout, num_slots: int) -> str:
    """What the trajectory buffers are made of, in flags, for the error when they do not fit."""
    obs_shapes = ", ".join(f"{k} {tuple(space.shape)}" for k, space in env_info.obs_space.spaces.items())
    agents = f" x {env_info.num_agents} agents" if env_info.num_agents > 1 else ""
    batches = f" + --num_batches_to_accumulate={cfg.num_batches_to_accumulate} batches" if cfg.async_rl else ""
    league = (
        f" + {layout.slots_per_opponent} x --league_opponents={cfg.league_opponents}" if cfg.league_opponents else ""
    )
    return (
        f"{num_slots} trajectory slots (--num_workers={cfg.num_workers} x --num_envs_per_worker="
        f"{cfg.num_envs_per_worker}{agents}{batches}, x --num_policies={cfg.num_policies}{league})"
        f" of --rollout={cfg.rollout} steps of observations {obs_shapes}"
    )


def make_shared_resources(cfg, env_info: EnvInfo, layout: SlotLayout, template_model, mp_ctx) -> SharedResources:
    """Allocates the trajectory buffers, one slot pool per acting policy (every slot free) and the
    shared weights; raises InsufficientMemoryError before allocating what /dev/shm cannot hold."""
    pool_sizes = layout.pool_sizes(cfg)
    num_slots = sum(pool_sizes)
    buffer_args = (num_slots, cfg.rollout, env_info.obs_space, env_info.action_space, rnn_state_size_for(cfg))
    check_buffers_fit(trajectory_buffer_bytes(*buffer_args), _buffers_description(cfg, env_info, layout, num_slots))
    buffers = TrajectoryBuffers(*buffer_args)
    holders = torch.full((num_slots,), -1, dtype=torch.int32).share_memory_()  # which worker has each slot
    pools = []
    for policy_id, (first, size) in enumerate(zip(layout.pool_starts(cfg), pool_sizes)):
        pool = SlotPool(f"slots_p{policy_id}", size, holders)
        for start in range(first, first + size, layout.group_size):
            pool.release(list(range(start, start + layout.group_size)))
        pools.append(pool)
    policy_states = [SharedPolicyState(template_model) for _ in range(acting_policies(cfg))]
    frames_sampled = torch.zeros(cfg.num_workers, dtype=torch.int64).share_memory_()
    return SharedResources(buffers, pools, policy_states, mp_ctx.Event(), frames_sampled)


# --- what resumes ----------------------------------------------------------------------------------


@dataclass
class ResumePoint:
    """Where a run continues from: nothing for a new experiment, else what its checkpoints hold."""

    env_steps: list[int]  # per policy
    train_seconds: float = 0.0


def inspect_checkpoints(cfg, experiment_dir: Path, template_model) -> ResumePoint:
    """Fails before anything starts if a checkpoint exists but can't be used; says what resumes."""
    resume = ResumePoint(env_steps=[0] * cfg.num_policies)
    for policy_id in range(cfg.num_policies):
        directory = checkpoint_dir(experiment_dir, policy_id)
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
        if state.get("cfg_hash") not in (None, cfg_hash(cfg)):
            log.info("Policy %d: resuming with a changed configuration", policy_id)
        training_state = state["training_state"]
        resume.env_steps[policy_id] = int(training_state["env_steps"])
        resume.train_seconds = max(resume.train_seconds, float(training_state.get("train_seconds", 0.0)))
    return resume


def write_policy_files(cfg, env_info: EnvInfo, experiment_dir: Path):
    """Each policy's hyper-parameters and reward shaping where they may differ per policy
    (cfg/policy_params.py): those of an earlier run of the experiment are kept."""
    if not uses_policy_files(cfg):
        return
    overrides = parse_policy_overrides(cfg.policy_hyperparams, cfg.num_policies)
    scheme = env_info.reward_shaping_scheme if cfg.with_pbt else None
    for policy_id in range(cfg.num_policies):
        if read_hyperparams(experiment_dir, policy_id) is None:
            write_hyperparams(experiment_dir, policy_id, initial_hyperparams(cfg, policy_id, overrides))
        elif policy_id in overrides:
            log.info("Policy %d: keeps the hyper-parameters of its file, not --policy_hyperparams", policy_id)
        if scheme is not None and read_reward_shaping(experiment_dir, policy_id) is None:
            write_reward_shaping(experiment_dir, policy_id, scheme)


# --- components ----------------------------------------------------------------------------------


def hosts_learner(cfg) -> bool:
    """A single policy's learner lives on the runner's loop, in the main process (see runner.py)."""
    return cfg.serial_mode or cfg.num_policies == 1


@dataclass
class Components:
    learners: list[LearnerWorker] = field(default_factory=list)
    inference_workers: list[InferenceWorker] = field(default_factory=list)
    rollout_workers: list[RolloutWorker] = field(default_factory=list)
    league_opponents: LeagueOpponents | None = None

    def of_role(self, role: Role):
        if role.kind is roles.Kind.ROLLOUT:
            return self.rollout_workers[role.index]
        if role.kind is roles.Kind.LEARNER:
            return self.learners[role.policy_id]
        return next(w for w in self.inference_workers if w.role == role)

    def inference_worker_for(self, cfg, worker_idx: int, policy_id: int) -> InferenceWorker:
        """Each rollout worker talks to one inference worker per policy; they answer it directly."""
        return self.inference_workers[
            policy_id * cfg.policy_workers_per_policy + worker_idx % cfg.policy_workers_per_policy
        ]


# loop_for(role, restartable) -> the event loop the component of that role lives in
LoopFor = Callable[[Role, bool], EventLoop]


def create_components(
    cfg, env_info: EnvInfo, shared: SharedResources, experiment_dir: Path, loop_for: LoopFor, runner_loop: EventLoop,
    stats, null_policy: bool = False,
) -> Components:  # fmt: skip
    """Every component of the run, each on the loop `loop_for` gives its role; the league's frozen
    opponents (if any) on the runner's loop. `null_policy`: inference answers with zeros (benchmarks)."""
    components = Components()
    model_factory = global_model_factory()
    for policy_id in range(cfg.num_policies):
        role = roles.learner(policy_id)
        loop = runner_loop if hosts_learner(cfg) else loop_for(role, False)
        components.learners.append(
            LearnerWorker(loop, policy_id, cfg, env_info, shared, model_factory, str(experiment_dir))
        )
    for policy_id in range(acting_policies(cfg)):
        for i in range(cfg.policy_workers_per_policy):
            loop = loop_for(roles.inference_worker(policy_id, i), True)
            components.inference_workers.append(
                InferenceWorker(loop, policy_id, i, cfg, env_info, shared, model_factory, null_policy=null_policy)
            )
    if cfg.league_opponents > 0:
        components.league_opponents = LeagueOpponents(
            runner_loop, cfg, env_info, shared, experiment_dir, stats, seed=cfg.seed
        )
    registry = env_registry_snapshot([cfg.env])
    mapping_cls = agent_policy_mapping_class()
    for worker_idx in range(cfg.num_workers):
        loop = loop_for(roles.rollout_worker(worker_idx), True)
        components.rollout_workers.append(
            RolloutWorker(loop, worker_idx, cfg, env_info, shared, registry, mapping_cls, str(experiment_dir))
        )
    return components


def template_model(cfg, env_info: EnvInfo):
    """The policy's model, built once in the runner: checkpoints are checked against it and the
    shared weights take its shapes."""
    return create_actor_critic(cfg, env_info.obs_space, env_info.action_space)
