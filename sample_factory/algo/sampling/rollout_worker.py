"""Rollout worker: steps its envs in splits and writes every step into shared trajectory slots.

While the inference worker computes actions for one split, the CPU steps another
(double-buffered sampling, `--worker_num_splits`). All agents of a split step in lockstep, so
a split has one step counter `t` and all its trajectories complete together.

Its messages (inference_requested, trajectory_ready, episodes_finished; actions_ready and
slots_released in) are listed in `algo/protocol.py`. A split waits for one actions_ready per
policy it asked; slots_released lets parked splits try again.

An env that raises is made anew by the env runner and reported with `env_failed` (the runner
counts them against --max_env_failures); an env that cannot be made or reset, or returns an
observation outside its space, is reported with `failed` and the worker stops sampling.

Which policy plays each agent is the mapping's choice (algo/utils/agent_policy_mapping.py), asked
when an env's episode ends; with population-based training each policy's reward-shaping
coefficients are set on the envs of its agents (reward_shaping_changed in).

A split never blocks waiting for free slots: it parks, and the worker keeps stepping its other
splits (a blocked worker could hold back the very trajectories the learner is waiting for).
"""

from __future__ import annotations

import logging
import random
import time

import numpy as np
import torch

from sample_factory.algo import protocol, roles
from sample_factory.algo.sampling.env_checks import NonFiniteError, find_non_finite, zero_non_finite
from sample_factory.algo.sampling.env_runners import EnvFailure, ObservationError, PerEnvRunner, VectorEnvRunner
from sample_factory.algo.utils.agent_policy_mapping import AgentPolicyMapping
from sample_factory.cfg.derived import acting_policies, envs_per_split, global_env_id, worker_rng_seed
from sample_factory.cfg.policy_params import read_reward_shaping
from sample_factory.envs.env_utils import restore_env_registry
from sample_factory.league.games import score_league_games
from sample_factory.signal_slot.loop import EventLoopObject, signal
from sample_factory.utils.device import limit_env_threads, pin_rollout_worker, set_niceness
from sample_factory.utils.gpu_utils import set_gpus_for_process

log = logging.getLogger(__name__)


class SplitState:
    """Bookkeeping of one split: its envs, its slots, and per-agent episode accumulators."""

    def __init__(self, env_runner, first_env_id: int, agents_per_env: int):
        self.env_runner = env_runner
        n = env_runner.num_agents
        self.num_agents = n
        self.first_env_id = first_env_id  # the run-wide index of the split's first env
        self.env_episodes = np.zeros(n // agents_per_env, np.int64)  # episodes each env has begun
        self.steps = 0  # steps every env of the split has taken (they step in lockstep)
        self.t = 0
        self.slots = torch.full((n,), -1, dtype=torch.int64)
        self.policy_of_agent = np.zeros(n, np.int64)
        self.next_policy_of_agent = np.zeros(n, np.int64)
        self.policy_groups: list[tuple[int, np.ndarray, list[int]]] = []  # (policy, agent indices, slots)
        self.awaiting: set[int] = set()  # policies whose actions for step t have not come yet
        self.request_seq = 0  # numbers the split's requests: a request asked again is answered once
        self.episode_return = np.zeros(n, np.float64)
        self.episode_len = np.zeros(n, np.int64)
        self.waiting_for_slots = False
        # What the next trajectory starts from: the last obs and RNN state of the previous one.
        self.carried_obs: dict[str, torch.Tensor] = {}
        self.carried_rnn: torch.Tensor | None = None
        # Agents whose last observation held a NaN or inf (made 0): their next step is not trained on either.
        self.drop_next: np.ndarray | None = None


class RolloutWorker(EventLoopObject):
    episodes_finished = signal(protocol.EpisodesFinished)
    league_games_finished = signal(protocol.LeagueGamesFinished)
    env_failed = signal(protocol.EnvFailed)
    non_finite_dropped = signal(protocol.NonFiniteDropped)
    failed = signal(protocol.WorkerFailed)

    def __init__(
        self,
        event_loop,
        worker_idx: int,
        cfg,
        env_info,
        shared,
        env_registry: dict,
        mapping_cls: type[AgentPolicyMapping] = AgentPolicyMapping,
        experiment_dir: str | None = None,
    ):
        super().__init__(event_loop, roles.rollout_worker(worker_idx).name)
        self.worker_idx = worker_idx
        self.cfg = cfg
        self.env_info = env_info
        self.shared = shared
        self.env_registry = env_registry
        self.experiment_dir = experiment_dir
        self.splits: list[SplitState] = []
        self.num_splits = cfg.worker_num_splits
        self.rollout = cfg.rollout
        self.rng = random.Random(worker_rng_seed(cfg, worker_idx))
        self.mapping = mapping_cls(cfg, env_info, worker_rng_seed(cfg, worker_idx))
        # Each policy's env reward-shaping coefficients (population-based training); None: the env's own.
        self.reward_shaping: list[dict | None] = [None] * cfg.num_policies
        self.num_acting = acting_policies(cfg)  # learning policies, then frozen league opponents
        # How many times this worker was started anew: answers to an earlier process's requests are stale.
        self.epoch = 0
        self._non_finite_unreported: list | None = None  # [first env index, what it returned, steps dropped]
        # Made once: the signals of the hot path, one per policy.
        self._request_signals = [self.named_signal(protocol.inference_requested(p)) for p in range(self.num_acting)]
        self._trajectory_signals = [self.named_signal(protocol.trajectory_ready(p)) for p in range(cfg.num_policies)]

    def on_loop_started(self):
        try:
            self._start()
        except (EnvFailure, ObservationError) as e:
            self._fail(e)

    def _fail(self, error: Exception):
        """The worker cannot go on: the runner stops the run with this one line."""
        self.close_envs()
        self.failed.emit(protocol.WorkerFailed(self.worker_idx, str(error)))

    def _start(self):
        restore_env_registry(self.env_registry)
        torch.set_num_threads(1)
        cfg = self.cfg
        pin_rollout_worker(cfg, self.worker_idx)
        if cfg.actor_worker_gpus and self.event_loop.owned_by_process:
            set_gpus_for_process(self.worker_idx, 1, "rollout worker", gpu_mask=cfg.actor_worker_gpus)
        if cfg.force_envs_single_thread:
            limit_env_threads()
        if cfg.default_niceness and self.event_loop.owned_by_process:
            set_niceness(cfg.default_niceness, self.name)
        runner_cls = VectorEnvRunner if cfg.batched_sampling else PerEnvRunner
        if self.experiment_dir is not None and cfg.with_pbt and self.env_info.reward_shaping_scheme is not None:
            self.reward_shaping = [read_reward_shaping(self.experiment_dir, p) for p in range(cfg.num_policies)]
        num_envs = envs_per_split(cfg)
        for split_idx in range(self.num_splits):
            runner = runner_cls(cfg, self.env_info, self.worker_idx, split_idx, num_envs, self.epoch)
            first_env_id = global_env_id(cfg, self.worker_idx, split_idx * num_envs)
            self.splits.append(SplitState(runner, first_env_id, self.env_info.num_agents))
        if cfg.decorrelate_experience_max_seconds > 0 and not cfg.benchmark:
            time.sleep(self.rng.uniform(0, cfg.decorrelate_experience_max_seconds))
        rnn_width = self.shared.buffers.rnn_states.shape[-1]
        for split_idx, split in enumerate(self.splits):
            obs = split.env_runner.reset()
            self._screen_non_finite(split_idx, split, np.zeros(split.num_agents, np.float32), obs, None)
            split.carried_obs = {key: torch.from_numpy(arr.copy()) for key, arr in obs.items()}
            split.carried_rnn = torch.zeros(split.num_agents, rnn_width)
            self._assign_policies(split, np.arange(split.num_agents))
            self._take_new_policies(split)
            self._apply_reward_shaping(split, np.arange(split.num_agents))
            self._start_trajectories(split_idx, split)

    # --- policy assignment -------------------------------------------------------------------

    def _assign_policies(self, split: SplitState, agents: np.ndarray):
        """Asks the mapping for the policies of each env whose episode ended (its first agent's
        did); they take effect at the next trajectory."""
        if self.num_acting == 1:
            return
        per_env = self.env_info.num_agents
        for a in agents:
            if a % per_env:
                continue
            env = a // per_env
            policies = self.mapping.policies_for_env(
                split.first_env_id + env, int(split.env_episodes[env]), split.steps
            )
            split.next_policy_of_agent[a : a + per_env] = self._playable(policies)
            split.env_episodes[env] += 1

    def _playable(self, policies) -> list[int]:
        """A frozen opponent whose snapshot is not loaded yet gives its seat to a learning policy."""
        policies = [int(p) for p in policies]
        if self.num_acting == self.cfg.num_policies:
            return policies
        learning = [p for p in policies if p < self.cfg.num_policies]
        states = self.shared.policy_states
        return [p if p < self.cfg.num_policies or states[p].is_published else (learning or [0])[0] for p in policies]

    def _take_new_policies(self, split: SplitState):
        """The drawn policies take over; agents that changed policy get its reward shaping."""
        changed = np.flatnonzero(split.policy_of_agent != split.next_policy_of_agent)
        split.policy_of_agent[:] = split.next_policy_of_agent
        if len(changed):
            self._apply_reward_shaping(split, changed)

    def _apply_reward_shaping(self, split: SplitState, agents: np.ndarray):
        for policy_id, shaping in enumerate(self.reward_shaping):
            if shaping is not None:
                mine = agents[split.policy_of_agent[agents] == policy_id]
                if len(mine):
                    split.env_runner.set_reward_shaping(mine, shaping)

    def on_reward_shaping_changed(self, change: protocol.RewardShapingChanged):
        policy_id, shaping = change
        self.reward_shaping[policy_id] = dict(shaping)
        for split in self.splits:
            agents = np.flatnonzero(split.policy_of_agent == policy_id)
            if len(agents):
                split.env_runner.set_reward_shaping(agents, shaping)

    def _start_trajectories(self, split_idx: int, split: SplitState):
        """Takes fresh slots for every agent, writes the carried start state, asks for actions.

        If some policy has no free slots now, the split parks until a learner releases some.
        """
        taken = []
        for policy_id in range(self.num_acting):
            agents = np.flatnonzero(split.policy_of_agent == policy_id)
            if len(agents) == 0:
                continue
            pool = self.shared.slot_pools[policy_id]
            slots = pool.try_acquire(len(agents), holder=self.worker_idx)
            if slots is None:
                for other_policy, _, other_slots in taken:
                    self.shared.slot_pools[other_policy].put_back(other_slots)
                split.waiting_for_slots = True
                return
            taken.append((policy_id, agents, slots))
        split.waiting_for_slots = False
        split.policy_groups = taken
        for _, agents, slots in taken:
            split.slots[agents] = torch.tensor(slots, dtype=torch.int64)
        buffers = self.shared.buffers
        for key, tensor in buffers.obs.items():
            tensor[split.slots, 0] = split.carried_obs[key]
        buffers.rnn_states[split.slots, 0] = split.carried_rnn
        split.t = 0
        self._request_actions(split_idx, split)

    def on_slots_released(self, _released: protocol.SlotsReleased):
        for split_idx, split in enumerate(self.splits):
            if split.waiting_for_slots:
                self._start_trajectories(split_idx, split)

    # --- the sampling loop -------------------------------------------------------------------

    def _request_actions(self, split_idx: int, split: SplitState):
        split.request_seq += 1
        split.awaiting = {policy_id for policy_id, _, _ in split.policy_groups}
        for policy_id, _, slots in split.policy_groups:
            self._ask_policy(split_idx, split, policy_id, slots)

    def _ask_policy(self, split_idx: int, split: SplitState, policy_id: int, slots: list[int]):
        request = protocol.InferenceRequest(self.worker_idx, split_idx, split.t, slots, self.epoch, split.request_seq)
        self._request_signals[policy_id].emit(request)

    def on_inference_restarted(self, restarted: protocol.InferenceRestarted):
        """An inference worker died and was started anew: what was asked of it may be lost, ask again."""
        policy_id = restarted.policy_id
        if restarted.inference_idx != self.worker_idx % self.cfg.policy_workers_per_policy:
            return  # not the one this worker talks to
        for split_idx, split in enumerate(self.splits):
            if policy_id in split.awaiting:
                slots = next(slots for policy, _, slots in split.policy_groups if policy == policy_id)
                self._ask_policy(split_idx, split, policy_id, slots)

    def on_actions_ready(self, ready: protocol.ActionsReady):
        split_idx, epoch, policy_id = ready
        if not self.splits or epoch != self.epoch:
            return  # stopped while a response was in flight, or an answer to the process this one replaced
        split = self.splits[split_idx]
        split.awaiting.discard(policy_id)
        if split.awaiting:
            return
        if self.shared.stop_event.is_set():
            return
        try:
            self._step_split(split_idx, split)
        except (EnvFailure, ObservationError) as e:
            self._fail(e)

    def _step_split(self, split_idx: int, split: SplitState):
        buffers = self.shared.buffers
        t = split.t
        slots = split.slots
        actions = buffers.actions[slots, t].numpy()
        result = split.env_runner.step(actions)
        if result.failures:
            self._on_envs_remade(split, result)
        self._screen_non_finite(split_idx, split, result.rewards, result.obs, result.valids)

        rewards = torch.from_numpy(result.rewards)
        dones = result.terminated | result.truncated
        buffers.rewards[slots, t] = rewards
        buffers.dones[slots, t] = torch.from_numpy(dones)
        buffers.time_outs[slots, t] = torch.from_numpy(result.truncated & ~result.terminated)
        buffers.valids[slots, t] = torch.from_numpy(result.valids)
        for key, arr in result.obs.items():
            buffers.obs[key][slots, t + 1] = torch.from_numpy(arr)
        if dones.any():
            buffers.rnn_states[slots[torch.from_numpy(dones)], t + 1] = 0.0

        self.shared.frames_sampled[self.worker_idx] += split.num_agents * self.env_info.frameskip
        split.steps += 1
        finished, games = self._track_episodes(split, result, dones)
        if finished:
            self.episodes_finished.emit(protocol.EpisodesFinished(finished))
        if games:
            self.league_games_finished.emit(protocol.LeagueGamesFinished(games))
        split.t = t + 1
        if split.t == self.rollout:
            self._complete_trajectories(split)
            self._start_trajectories(split_idx, split)
        else:
            self._request_actions(split_idx, split)

    def _screen_non_finite(self, split_idx: int, split: SplitState, rewards, obs: dict, valids):
        """NaN and inf never reach the buffers: the step is not trained on and its values become 0
        (an observation's next step is not trained on either), or with --strict_env_checks the worker stops."""
        if split.drop_next is not None and valids is not None:
            valids[split.drop_next] = False
            split.drop_next = None
        found = find_non_finite(rewards, obs)
        if found is None:
            return
        env_idx = split_idx * envs_per_split(self.cfg) + found.first_agent // self.env_info.num_agents
        if self.cfg.strict_env_checks:
            raise NonFiniteError(
                f"{self.cfg.env} (worker {self.worker_idx}, env {env_idx}) returned {found.first_what}"
                " (--strict_env_checks=True)"
            )
        zero_non_finite(rewards, obs, found)
        if valids is not None:
            valids[found.agents] = False
        if len(found.bad_obs):
            split.drop_next = found.bad_obs
        if self._non_finite_unreported is None:
            self._non_finite_unreported = [env_idx, found.first_what, 0]
        self._non_finite_unreported[2] += len(found.agents) + len(found.bad_obs)

    def _report_non_finite(self):
        """Once per trajectory at most: an env returning NaN at every step costs one message, not one a step."""
        if self._non_finite_unreported is not None:
            self.non_finite_dropped.emit(protocol.NonFiniteDropped(self.worker_idx, *self._non_finite_unreported))
            self._non_finite_unreported = None

    def _on_envs_remade(self, split: SplitState, result):
        """Envs that raised were made anew: their unfinished episodes end unreported."""
        restarted = np.flatnonzero((result.terminated | result.truncated) & ~result.valids)
        split.episode_return[restarted] = 0.0
        split.episode_len[restarted] = 0
        self._apply_reward_shaping(split, restarted)  # a new env starts from the env's own coefficients
        self._assign_policies(split, restarted)
        for failure in result.failures:
            self.env_failed.emit(protocol.EnvFailed(self.worker_idx, failure.env_idx, failure.error))

    def _track_episodes(self, split: SplitState, result, dones: np.ndarray) -> tuple[list, list]:
        """The stats of the learning policies' finished episodes, and the games against frozen opponents."""
        valids = result.valids
        split.episode_return += np.where(valids, result.rewards, 0.0)
        split.episode_len += valids
        ended = np.flatnonzero(dones & valids)
        if len(ended) == 0:
            return [], []
        frameskip = self.env_info.frameskip
        games = self._league_games(split, result, ended) if self.num_acting > self.cfg.num_policies else []
        finished = []
        for a in ended:
            if split.policy_of_agent[a] >= self.cfg.num_policies:
                continue  # a frozen opponent: it learns nothing, its returns are no policy's stats
            info = result.episode_infos.get(int(a)) or {}
            stats = {
                "policy_id": int(split.policy_of_agent[a]),
                "reward": float(split.episode_return[a]),
                "len": int(split.episode_len[a]) * frameskip,
            }
            if "true_objective" in info:
                stats["true_objective"] = float(info["true_objective"])
            extra = dict(info.get("episode_extra_stats") or {})
            if self.cfg.use_record_episode_statistics and "episode" in info:
                # gymnasium's RecordEpisodeStatistics: the whole game's return, e.g. under EpisodicLife
                extra["RecordEpisodeStatistics_reward"] = info["episode"]["r"]
                extra["RecordEpisodeStatistics_len"] = info["episode"]["l"]
            if extra:
                stats["episode_extra_stats"] = {k: float(np.asarray(v).reshape(-1)[0]) for k, v in extra.items()}
            finished.append(stats)
        split.episode_return[ended] = 0.0
        split.episode_len[ended] = 0
        self._assign_policies(split, ended)
        return finished, games

    def _league_games(self, split: SplitState, result, ended: np.ndarray) -> list:
        """Games against frozen opponents that ended (scored by `league/games.py`), each with the
        weights version the opponent played with."""
        games = score_league_games(
            split.policy_of_agent,
            ended,
            result.episode_infos,
            split.episode_return,
            self.env_info.num_agents,
            self.cfg.num_policies,
        )
        return [
            (mine, opponent, self.shared.policy_states[opponent].version, points) for mine, opponent, points in games
        ]

    def _complete_trajectories(self, split: SplitState):
        """Hands the full slots to the learners, keeping a copy of what the next trajectory starts from.

        The copy is taken before the slots are handed over: once handed over, the learner may
        release them and another worker may overwrite them.
        """
        self._report_non_finite()
        buffers = self.shared.buffers
        last = self.rollout
        split.carried_obs = {key: tensor[split.slots, last] for key, tensor in buffers.obs.items()}
        split.carried_rnn = buffers.rnn_states[split.slots, last]
        for policy_id, _, slots in split.policy_groups:
            pool = self.shared.slot_pools[policy_id]
            pool.hand_over(slots)
            if policy_id < self.cfg.num_policies:
                self._trajectory_signals[policy_id].emit(protocol.TrajectoryReady(policy_id, slots))
            else:  # a frozen opponent trains nothing: its slots are free again at once
                pool.release(slots)
        split.policy_groups = []
        self._take_new_policies(split)

    def close_envs(self):
        for split in self.splits:
            try:
                split.env_runner.close()
            except Exception as e:  # a crashed env may not close; the others still must
                log.warning("%s: closing envs failed: %s: %s", self.name, type(e).__name__, e)
        self.splits = []

    def on_stop(self):
        self.close_envs()
        self.stop_own_loop()
