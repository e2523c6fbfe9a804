"""A rollout worker and an inference worker on one loop, with no learner: what they write is what
the env returned and what the published policy chose, and a worker without free slots waits."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from sample_factory.algo import protocol
from sample_factory.algo.sampling.inference_worker import InferenceWorker
from sample_factory.algo.sampling.rollout_worker import RolloutWorker
from sample_factory.algo.shared_buffers import SharedPolicyState, SlotPool, TrajectoryBuffers
from sample_factory.envs.create_env import obtain_env_info
from sample_factory.envs.env_utils import env_registry_snapshot, register_env
from sample_factory.model.actor_critic import create_actor_critic, rnn_state_size_for
from sample_factory.model.model_factory import global_model_factory
from sample_factory.runner.builder import SharedResources
from sample_factory.runner.processes import process_context
from sample_factory.signal_slot.loop import EventLoop, EventLoopObject, signal
from sf_examples.train_gym_env import parse_gym_args

pytestmark = pytest.mark.timeout(60)

EPISODE_LEN = 5
ROLLOUT = 6  # longer than an episode: every trajectory holds an episode end
NUM_ENVS = 2
PUBLISHED_VERSION = 7


class CountingEnv(gym.Env):
    """obs = [steps taken / EPISODE_LEN, noise]; reward = the action; episodes last EPISODE_LEN steps."""

    observation_space = gym.spaces.Box(0.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(3)

    def _obs(self):
        return np.array([self.steps / EPISODE_LEN, self.np_random.uniform()], np.float32)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.steps = 0
        return self._obs(), {}

    def step(self, action):
        self.steps += 1
        return self._obs(), float(action), self.steps >= EPISODE_LEN, False, {}


def make_counting_env(full_env_name, cfg=None, env_config=None, render_mode=None):
    return CountingEnv()


class Learnerless(EventLoopObject):
    """Stands where the learner does: copies each finished trajectory out and frees its slots (or not)."""

    slots_released = signal(protocol.SlotsReleased)

    def __init__(self, loop, shared, wanted: int, release: bool = True):
        super().__init__(loop, "learnerless")
        self.shared = shared
        self.wanted = wanted
        self.release = release
        self.trajectories: list[dict] = []
        self.held: list[int] = []
        self.episodes: list[dict] = []

    def on_trajectory_ready(self, ready: protocol.TrajectoryReady):
        policy_id, slots = ready
        batch = self.shared.buffers.gather(torch.tensor(slots))
        for i in range(len(slots)):
            self.trajectories.append(
                {k: (v[i] if k != "obs" else {o: t[i] for o, t in v.items()}) for k, v in batch.items()}
            )
        if self.release:
            self.shared.slot_pools[policy_id].release(slots)
            self.slots_released.emit(protocol.SlotsReleased(policy_id))
        else:
            self.held.extend(slots)
        if len(self.trajectories) >= self.wanted:
            self.event_loop.stop()

    def on_episodes_finished(self, finished: protocol.EpisodesFinished):
        self.episodes.extend(finished.episodes)


def sampling_on_one_loop(tmp_path, slots_per_policy: int, wanted: int, release: bool = True):
    register_env("counting", make_counting_env)
    cfg = parse_gym_args(
        [
            "--env=counting",
            f"--train_dir={tmp_path}",
            "--serial_mode=True",
            "--num_workers=1",
            f"--num_envs_per_worker={NUM_ENVS}",
            "--worker_num_splits=1",
            f"--rollout={ROLLOUT}",
            "--use_rnn=True",
            "--rnn_size=8",
            "--seed=1",
            "--decorrelate_experience_max_seconds=0",
        ]
    )
    env_info = obtain_env_info(cfg)
    buffers = TrajectoryBuffers(
        slots_per_policy, ROLLOUT, env_info.obs_space, env_info.action_space, rnn_state_size_for(cfg)
    )
    pool = SlotPool("slots_p0")
    for start in range(0, slots_per_policy, NUM_ENVS):
        pool.release(list(range(start, start + NUM_ENVS)))
    policy = create_actor_critic(cfg, env_info.obs_space, env_info.action_space)
    policy.eval()
    policy_state = SharedPolicyState(policy)
    policy_state.publish(policy, PUBLISHED_VERSION)
    shared = SharedResources(
        buffers, [pool], [policy_state], process_context().Event(), torch.zeros(1, dtype=torch.int64)
    )

    loop = EventLoop("sampling")
    worker = RolloutWorker(loop, 0, cfg, env_info, shared, env_registry_snapshot())
    inference = InferenceWorker(loop, 0, 0, cfg, env_info, shared, global_model_factory())
    learnerless = Learnerless(loop, shared, wanted, release)
    worker.named_signal(protocol.inference_requested(0)).connect(inference.on_inference_requested)
    inference.named_signal(protocol.actions_ready(0)).connect(worker.on_actions_ready)
    worker.named_signal(protocol.trajectory_ready(0)).connect(learnerless.on_trajectory_ready)
    worker.episodes_finished.connect(learnerless.on_episodes_finished)
    learnerless.slots_released.connect(worker.on_slots_released)
    return loop, worker, learnerless, policy, pool


def test_trajectories_hold_what_the_env_returned_and_the_published_policy_chose(tmp_path):
    loop, worker, learnerless, policy, pool = sampling_on_one_loop(tmp_path, slots_per_policy=4, wanted=6)
    try:
        loop.run()
    finally:
        worker.close_envs()
        pool.close()
    assert len(learnerless.trajectories) >= 6
    for traj in learnerless.trajectories:
        obs, rnn = traj["obs"]["obs"], traj["rnn_states"]
        assert bool(traj["valids"][:ROLLOUT].all())
        assert (traj["policy_version"][:ROLLOUT] == PUBLISHED_VERSION).all(), "actions come from the published weights"
        torch.testing.assert_close(traj["rewards"][:ROLLOUT], traj["actions"][:ROLLOUT].float())
        for t in range(ROLLOUT):
            done = bool(traj["dones"][t])
            assert done == (round(float(obs[t, 0]) * EPISODE_LEN) == EPISODE_LEN - 1), (
                "the env ends episodes after 5 steps"
            )
            expected_next = 0.0 if done else float(obs[t, 0]) + 1 / EPISODE_LEN
            assert float(obs[t + 1, 0]) == pytest.approx(expected_next), (
                "obs of step t+1 are the env's answer to step t"
            )
        with torch.no_grad():
            out = policy.act({"obs": obs[:ROLLOUT]}, rnn[:ROLLOUT])
            log_prob = policy.action_distribution(out["action_logits"]).log_prob(traj["actions"][:ROLLOUT])
        torch.testing.assert_close(traj["log_prob_actions"][:ROLLOUT], log_prob, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(traj["values"][:ROLLOUT], out["values"], atol=1e-5, rtol=1e-4)
        dones = traj["dones"][:ROLLOUT, None]
        expected_rnn = torch.where(dones, torch.zeros_like(out["new_rnn_states"]), out["new_rnn_states"])
        torch.testing.assert_close(rnn[1 : ROLLOUT + 1], expected_rnn, atol=1e-5, rtol=1e-4)
    assert learnerless.episodes, "finished episodes are reported"
    for episode in learnerless.episodes:
        assert episode["len"] == EPISODE_LEN and 0 <= episode["reward"] <= 2 * EPISODE_LEN


def test_a_worker_without_free_slots_waits_until_the_learner_frees_some(tmp_path):
    loop, worker, learnerless, _, pool = sampling_on_one_loop(tmp_path, slots_per_policy=2, wanted=100, release=False)
    try:
        for obj in list(loop.objects.values()):
            obj.on_loop_started()
        for _ in range(200):
            loop.run_once(max_wait_sec=0.01)
        assert len(learnerless.trajectories) == NUM_ENVS, "one trajectory per env, then no slot is free"
        assert worker.splits[0].waiting_for_slots

        pool.release(learnerless.held)
        learnerless.slots_released.emit(protocol.SlotsReleased(0))
        for _ in range(200):
            loop.run_once(max_wait_sec=0.01)
        assert len(learnerless.trajectories) == 2 * NUM_ENVS, "released slots are filled once more"
    finally:
        worker.close_envs()
        pool.close()
