"""Coin race: a small, fast two-player zero-sum game for self-play (vector observations, numpy only).

Two players and a coin on a `SIZE` x `SIZE` grid, all placed at random. Each step both players
move (stay, up, down, left, right) at once; a player cannot step onto the other (the opponent
blocks), nor off the grid. The first to reach the coin wins: +1 for the winner, -1 for the loser;
reaching it on the same step, or nobody within `MAX_STEPS`, is a draw (0 each). A player that
wanders loses to one that runs; one that also blocks the shorter path wins more.

Each player sees itself first: [own x, own y, opponent x, opponent y, coin x, coin y, coin - own]
(2 numbers each), scaled to [0, 1]. `info["true_objective"]` at the end of a game is 1 for a win, 0.5 for a draw, 0 for a loss (what PBT ranks by and the match command counts).

A multi-agent env in this project's convention (API.md): lists in, lists out; a finished game
resets itself.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

SIZE = 7
MAX_STEPS = 20
MOVES = np.array([[0, 0], [0, 1], [0, -1], [-1, 0], [1, 0]], np.int64)


class CoinRaceEnv:
    is_multiagent = True
    num_agents = 2

    observation_space = gym.spaces.Box(-1.0, 1.0, (8,), np.float32)
    action_space = gym.spaces.Discrete(len(MOVES))

    def __init__(self, size: int = SIZE, max_steps: int = MAX_STEPS):
        self.size, self.max_steps = size, max_steps
        self.rng = np.random.default_rng()
        self.players = np.zeros((2, 2), np.int64)
        self.coin = np.zeros(2, np.int64)
        self.t = 0

    def _place(self):
        cells = self.rng.choice(self.size * self.size, size=3, replace=False)
        xy = np.stack([cells // self.size, cells % self.size], axis=1)
        self.players[:] = xy[:2]
        self.coin[:] = xy[2]
        self.t = 0

    def _observe(self) -> list[np.ndarray]:
        scale = 1.0 / (self.size - 1)
        own_first = [(self.players[0], self.players[1]), (self.players[1], self.players[0])]
        return [
            (np.concatenate([own, other, self.coin, self.coin - own]) * scale).astype(np.float32)
            for own, other in own_first
        ]

    def reset(self, seed=None, options=None):
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self._place()
        return self._observe(), [{}, {}]

    def step(self, actions):
        targets = np.clip(self.players + MOVES[np.asarray(actions, np.int64).reshape(2)], 0, self.size - 1)
        blocked = [
            np.array_equal(targets[0], self.players[1]) or np.array_equal(targets[0], targets[1]),
            np.array_equal(targets[1], self.players[0]) or np.array_equal(targets[1], targets[0]),
        ]
        for me in (0, 1):
            # both stepping onto one free cell: neither moves, unless it holds the coin (a draw)
            onto_coin = np.array_equal(targets[me], self.coin) and np.array_equal(targets[0], targets[1])
            if not blocked[me] or onto_coin:
                self.players[me] = targets[me]
        self.t += 1
        at_coin = [np.array_equal(self.players[me], self.coin) for me in (0, 1)]
        if at_coin[0] != at_coin[1]:
            rewards = [1.0, -1.0] if at_coin[0] else [-1.0, 1.0]
        else:
            rewards = [0.0, 0.0]
        over = any(at_coin) or self.t >= self.max_steps
        infos = [{}, {}]
        if over:
            for me in (0, 1):
                outcome = 0.5 + 0.5 * rewards[me]
                infos[me] = {"true_objective": outcome, "episode_extra_stats": {"win": float(outcome == 1.0)}}
            self._place()
        timed_out = over and not any(at_coin)
        terminated = [over and not timed_out] * 2
        truncated = [timed_out] * 2
        return self._observe(), rewards, terminated, truncated, infos

    def close(self):
        pass


def make_coin_race(full_env_name, cfg=None, env_config=None, render_mode=None):
    return CoinRaceEnv()
