"""PettingZoo parallel envs train through the documented adapter, agents that finish early included."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from training import train_until

pettingzoo = pytest.importorskip("pettingzoo", reason="PettingZoo envs need pettingzoo: pip install pettingzoo")

from pettingzoo.utils.env import ParallelEnv  # noqa: E402

from sample_factory.envs.env_utils import register_env  # noqa: E402
from sample_factory.envs.pettingzoo_envs import PettingZooParallelEnv  # noqa: E402
from sf_examples.train_gym_env import parse_gym_args  # noqa: E402

pytestmark = pytest.mark.timeout(120)

CYCLES = 10


class PointAtTarget(ParallelEnv):
    """Each agent sees a target (Discrete(3), one-hot after the adapter) and earns 1 for choosing it.
    `agent_1` leaves after half the episode; the others play all CYCLES steps."""

    metadata = {"name": "point_at_target_v0"}

    def __init__(self):
        self.possible_agents = ["agent_0", "agent_1", "agent_2"]
        self._rng = np.random.default_rng()

    def observation_space(self, agent):
        return gym.spaces.Discrete(3)

    def action_space(self, agent):
        return gym.spaces.Discrete(3)

    def _observe(self):
        self.targets = {a: int(self._rng.integers(3)) for a in self.agents}
        return dict(self.targets)

    def reset(self, seed=None, options=None):
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self.agents = list(self.possible_agents)
        self.t = 0
        return self._observe(), {a: {} for a in self.agents}

    def step(self, actions):
        rewards = {a: float(actions[a] == self.targets[a]) for a in self.agents}
        self.t += 1
        terminated = {a: (a == "agent_1" and self.t >= CYCLES // 2) for a in self.agents}
        truncated = {a: self.t >= CYCLES for a in self.agents}
        infos = {a: {} for a in self.agents}
        self.agents = [a for a in self.agents if not (terminated[a] or truncated[a])]
        obs = self._observe() if self.agents else {}
        return obs, rewards, terminated, truncated, infos


def make_point_at_target(full_env_name, cfg=None, env_config=None, render_mode=None):
    return PettingZooParallelEnv(PointAtTarget())


def test_the_adapter_reports_early_finishers_once_then_inactive():
    env = make_point_at_target("pz")
    obs, _ = env.reset(seed=0)
    assert env.num_agents == 3 and obs[0].shape == (3,) and obs[0].sum() == 1.0
    dones, actives = [], []
    for _ in range(CYCLES):
        obs, rewards, terminated, truncated, infos = env.step([np.argmax(o) for o in obs])
        dones.append([t or tr for t, tr in zip(terminated, truncated)])
        actives.append([info.get("is_active", True) for info in infos])
        assert all(r in (0.0, 1.0) for r in rewards)
    assert [d[1] for d in dones] == [False] * 4 + [True] + [False] * 4 + [False]
    assert [a[1] for a in actives] == [True] * 5 + [False] * 5
    assert dones[-1] == [True, False, True], "the last step ends the others' episodes; agent_1 is long done"
    assert len(obs) == 3 and all(o is not None for o in obs), "and the env has reset itself"


@pytest.mark.parametrize("serial", [True, False], ids=["serial", "parallel"])
def test_a_pettingzoo_env_trains(tmp_path, serial):
    register_env("point_at_target", make_point_at_target)
    cfg = parse_gym_args(
        ["--env=point_at_target", f"--train_dir={tmp_path}", "--experiment=pz", f"--serial_mode={serial}",
         "--train_for_env_steps=200000", "--num_envs_per_worker=4", "--rollout=16", "--batch_size=256", "--seed=1"]
    )  # fmt: skip
    # A random policy earns a third: ~3.3 for agents that play 10 steps, ~1.7 for agent_1.
    result = train_until(cfg, goal_reward=7.0, min_episodes=60)
    assert result["status"] == 0
    assert result["steps_to_goal"] is not None, f"mean return {result['policies'][0]['mean_reward']:.2f} < 7"
