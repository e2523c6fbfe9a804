"""ViZDoom envs: the single-agent env, the multi-agent match, and the `doom_<scenario>` registry.

The envs are made of the spec table (doom_specs.py: one DoomSpec per env name, its buttons,
rewards and limits) and one DoomPlayer per agent (doom_player.py: settings, spaces, the engine
with its frameskip, observations, shaping and episode stats). Their public names (DoomSpec,
DOOM_ENV_SPECS, doom_env_spec, DoomSettings, DoomPlayer, ...) can be imported from here too.

Multiplayer: `doom_deathmatch_bots` is one agent hosting a deathmatch against `--num_bots`
built-in bots (7), `doom_duel_bots` against 1. `doom_duel` (2 agents), `doom_deathmatch_full`
(4 agents + 4 bots), `doom_dm` and `doom_dwango5` (8 agents) are multi-agent envs
(`is_multiagent`): a host and clients of one networked game on localhost, each DoomGame in its
own thread (ViZDoom releases the GIL while it waits for the engine, and the lock-step netgame
needs every player's action in parallel). In a match the players advance tic by tic in step with each other (a Python loop over
the frameskip: skipping several tics per call deadlocks ViZDoom's synchronous netgame now and
then). Both use cig.wad (map02 for the bots, map01 for the duel); the host's UDP port is one the
OS reports free, and a start that fails (the port was taken meanwhile) is retried with a new port.

Engine processes die with their env (doom_engine.py): `close()` (also at exit), and a watchdog
child process that kills the engines and removes their /dev/shm segments if the env's process
dies without closing (SIGKILL, OOM, segfault). The engine itself writes an empty `_vizdoom/`
folder into the working directory.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import logging
import os
import queue
import threading
from collections.abc import Callable, Mapping
from typing import ClassVar

import gymnasium as gym
import numpy as np

from sample_factory.envs.env_utils import RewardShapingInterface, register_env
from sf_examples.vizdoom.doom.doom_engine import EngineGuard, close_at_exit, free_udp_port
from sf_examples.vizdoom.doom.doom_player import DoomPlayer, DoomSettings, make_action_space, observation_space
from sf_examples.vizdoom.doom.doom_reward_shaping import RewardShaping
from sf_examples.vizdoom.doom.doom_specs import DOOM_ENV_SPECS, DOOM_ENVS_BY_NAME, DoomSpec, doom_env_spec

__all__ = [
    "DOOM_ENVS_BY_NAME",
    "DOOM_ENV_SPECS",
    "DoomEnv",
    "DoomMultiAgentEnv",
    "DoomPlayer",
    "DoomSettings",
    "DoomSpec",
    "doom_env_spec",
    "make_action_space",
    "make_doom_env",
    "observation_space",
    "register_doom_envs",
]

log = logging.getLogger(__name__)

PLAYER_TIMEOUT_SEC = 60.0  # longest a player may take to start, reset or step before the env gives up
MULTIPLAYER_START_ATTEMPTS = 3


class _HumanRenderer:
    """A pygame window for render_mode='human' (pygame comes with vizdoom)."""

    SCALE = 4

    def __init__(self, title: str):
        import pygame

        self.pygame = pygame
        self.title = title
        self.window = None

    def show(self, frame: np.ndarray):
        pygame = self.pygame
        h, w = frame.shape[:2]
        if self.window is None:
            pygame.display.init()  # only the display: no audio device is needed
            self.window = pygame.display.set_mode((w * self.SCALE, h * self.SCALE))
            pygame.display.set_caption(self.title)
        surface = pygame.surfarray.make_surface(np.ascontiguousarray(frame.transpose(1, 0, 2)))
        self.window.blit(pygame.transform.scale(surface, self.window.get_size()), (0, 0))
        pygame.display.flip()
        pygame.event.pump()

    def close(self):
        if self.window is not None:
            self.pygame.display.quit()
            self.window = None


class _DoomEnvBase(RewardShapingInterface):
    """What the single-agent env and the match share: spaces, shaping, rendering, closing."""

    metadata: ClassVar[dict] = {"render_modes": ["human", "rgb_array"]}

    def __init__(self, spec: DoomSpec, settings: DoomSettings, render_mode: str | None = None):
        self.doom_spec = spec
        self.settings = settings
        self.render_mode = render_mode
        self.doom_action_space = make_action_space(spec)
        self.action_space = self.doom_action_space.space
        self.observation_space = observation_space(settings, spec.measurements)
        # One set of coefficients per agent: the agents of a match may belong to different policies.
        self.agent_shaping = [RewardShaping(spec.reward_shaping) for _ in range(spec.num_agents)]
        self.engines: EngineGuard | None = None
        self.players: list[DoomPlayer] = []
        self._human = None
        self._atexit_hook: Callable | None = None
        self._closed = False

    def get_coefficients(self, agent_idx: int = 0) -> dict[str, float]:
        """The reward shaping coefficients of an agent (every term, 0.0 for those not in use)."""
        return self.agent_shaping[agent_idx].get_coefficients()

    def set_coefficients(self, coefficients: Mapping[str, float], agent_idx: int | slice = slice(None)):
        """Changes the given coefficients of an agent (default: of every agent)."""
        agents = self.agent_shaping[agent_idx] if isinstance(agent_idx, slice) else [self.agent_shaping[agent_idx]]
        for shaping in agents:
            shaping.set_coefficients(coefficients)

    # RewardShapingInterface (sample_factory.envs.env_utils), through which PBT evolves the coefficients

    def get_default_reward_shaping(self) -> dict[str, float]:
        return RewardShaping(self.doom_spec.reward_shaping).get_coefficients()

    def set_reward_shaping(self, reward_shaping: dict, agent_idx: int | slice) -> None:
        self.set_coefficients(reward_shaping, agent_idx)

    def _new_engines(self):
        # Each engine creates ./_vizdoom at start; two of a match racing to create it made one fail
        # ("File exists") and the other wait out the network sync, then crash the process.
        os.makedirs("_vizdoom", exist_ok=True)
        self.engines = EngineGuard()
        if self._atexit_hook is None:
            self._atexit_hook = close_at_exit(self)

    def timing(self) -> dict:
        """Seconds spent in the engine (make_action, respawn) and in preprocessing, summed over players."""
        total = {"engine_sec": 0.0, "preprocess_sec": 0.0, "steps": 0}
        for player in self.players:
            for key in total:
                total[key] += player.timing[key]
        return total

    def render(self):
        frame = self.players[0].screen() if self.players else None
        if frame is None:
            return None
        if self.render_mode == "human":
            if self._human is None:
                self._human = _HumanRenderer(self.doom_spec.name)
            self._human.show(frame)
            return None
        return frame

    def _close_players(self):
        raise NotImplementedError

    def close(self):
        if self._closed:
            return
        self._closed = True
        try:
            self._close_players()
        finally:
            if self.engines is not None:
                self.engines.close()
            if self._human is not None:
                self._human.close()
            if self._atexit_hook is not None:
                atexit.unregister(self._atexit_hook)
                self._atexit_hook = None

    def __del__(self):
        if not getattr(self, "_closed", True):
            self.close()


class DoomEnv(_DoomEnvBase, gym.Env):
    """A single-agent Doom env (gymnasium API): a scenario, or one agent hosting a match with bots.

    The engine starts on the first reset(), so the throw-away env that only reads the spaces
    never starts one.
    """

    def __init__(self, spec: DoomSpec, settings: DoomSettings, render_mode: str | None = None):
        if spec.num_agents != 1:
            raise ValueError(f"{spec.name} has {spec.num_agents} agents: use DoomMultiAgentEnv")
        super().__init__(spec, settings, render_mode)
        self.num_bots = spec.num_bots if settings.num_bots is None else settings.num_bots

    @property
    def player(self) -> DoomPlayer | None:
        return self.players[0] if self.players else None

    def _start(self, seed):
        self._new_engines()
        attempts = MULTIPLAYER_START_ATTEMPTS if self.doom_spec.multiplayer else 1
        for attempt in range(attempts):
            port = free_udp_port() if self.doom_spec.multiplayer else None
            player = DoomPlayer(
                self.doom_spec,
                self.settings,
                self.doom_action_space,
                self.agent_shaping[0],
                self.engines,
                num_bots=self.num_bots,
                port=port,
            )
            try:
                player.start(seed)
                self.players = [player]
                return
            except Exception as e:
                player.close()
                if attempt + 1 == attempts:
                    raise
                log.warning("%s: the engine did not start (%s), retrying with another port", self.doom_spec.name, e)

    def reset(self, seed: int | None = None, options=None):
        if self._closed:
            raise RuntimeError(f"{self.doom_spec.name}: reset() after close()")
        if not self.players:
            self._start(seed)
            seed = None  # already applied before the engine started
        obs = self.player.new_episode(seed)
        return obs, {}

    def step(self, action):
        if not self.players:
            raise RuntimeError(f"{self.doom_spec.name}: call reset() before step()")
        obs, reward, terminated, truncated, info = self.player.step(action)
        if self.render_mode == "human":
            self.render()
        return obs, reward, terminated, truncated, info

    def _close_players(self):
        for player in self.players:
            player.close()


class _PlayerThread:
    """Runs every call for one player in one dedicated thread (a DoomGame stays in its thread)."""

    def __init__(self, name: str):
        self._calls: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def _loop(self):
        while True:
            item = self._calls.get()
            if item is None:
                return
            fn, args, future = item
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args))
                except BaseException as e:  # noqa: BLE001 -- handed to the caller
                    future.set_exception(e)

    def submit(self, fn, *args) -> concurrent.futures.Future:
        future = concurrent.futures.Future()
        self._calls.put((fn, args, future))
        return future

    def stop(self, timeout_sec: float):
        self._calls.put(None)
        self._thread.join(timeout_sec)
        return not self._thread.is_alive()


class DoomMultiAgentEnv(_DoomEnvBase):
    """Several agents in one deathmatch (API.md's multi-agent convention: lists in, lists out).

    Agent 0 hosts the networked game, the others join it on localhost; each agent's DoomGame
    lives in its own thread. All agents' episodes end together (the match's time limit) and the
    env starts the next match itself, so `step` returns the first observations of the new match
    along with the finished match's infos.
    """

    is_multiagent = True

    def __init__(self, spec: DoomSpec, settings: DoomSettings, render_mode: str | None = None):
        super().__init__(spec, settings, render_mode)
        self.num_agents = spec.num_agents
        self.num_bots = spec.num_bots if settings.num_bots is None else settings.num_bots
        self._threads: list[_PlayerThread] = []
        self._tic_barrier: threading.Barrier | None = None

    def _all(self, method: str, per_player_args: list[tuple]) -> list:
        """Calls `method` on every player in its thread, in parallel; the results in agent order."""
        futures = [
            t.submit(getattr(p, method), *args) for t, p, args in zip(self._threads, self.players, per_player_args)
        ]
        done, not_done = concurrent.futures.wait(
            futures, timeout=PLAYER_TIMEOUT_SEC, return_when=concurrent.futures.FIRST_EXCEPTION
        )
        failed = [f for f in done if f.exception() is not None]
        if failed or not_done:
            # a player that failed leaves the others blocked in the lock-step game: unblock them
            if self._tic_barrier is not None:
                self._tic_barrier.abort()
            for player in self.players:
                self.engines.kill_engine(player.config_path)
            concurrent.futures.wait(futures, timeout=PLAYER_TIMEOUT_SEC)
            if failed:
                raise failed[0].exception()
            raise TimeoutError(
                f"{self.doom_spec.name}: {method}() of {len(not_done)} player(s) took more than {PLAYER_TIMEOUT_SEC}s"
            )
        return [f.result() for f in futures]

    def _start(self, seed):
        for attempt in range(MULTIPLAYER_START_ATTEMPTS):
            self._new_engines()
            port = free_udp_port()
            self.players = [
                DoomPlayer(
                    self.doom_spec,
                    self.settings,
                    self.doom_action_space,
                    self.agent_shaping[i],
                    self.engines,
                    player_idx=i,
                    num_players=self.num_agents,
                    num_bots=self.num_bots if i == 0 else 0,
                    port=port,
                )
                for i in range(self.num_agents)
            ]
            self._threads = [_PlayerThread(f"{self.doom_spec.name}-agent{i}") for i in range(self.num_agents)]
            self._tic_barrier = threading.Barrier(self.num_agents, timeout=PLAYER_TIMEOUT_SEC)
            try:
                self._all("start", [(seed,)] * self.num_agents)
                return
            except Exception as e:
                self._close_players()
                self.engines.close()
                if attempt + 1 == MULTIPLAYER_START_ATTEMPTS:
                    raise
                log.warning("%s: the match did not start (%s), retrying with another port", self.doom_spec.name, e)

    def reset(self, seed: int | None = None, options=None):
        if self._closed:
            raise RuntimeError(f"{self.doom_spec.name}: reset() after close()")
        if not self.players:
            self._start(seed)
            seed = None
        obs = self._all("new_episode", [(seed,)] * self.num_agents)
        return obs, [{} for _ in range(self.num_agents)]

    def step(self, actions):
        if not self.players:
            raise RuntimeError(f"{self.doom_spec.name}: call reset() before step()")
        results = self._all("step", [(a, self._tic_barrier) for a in actions])
        obs = [r[0] for r in results]
        rewards = [r[1] for r in results]
        finished = [r[2] or r[3] for r in results]
        infos = [r[4] for r in results]
        if any(finished):  # the match is over for everyone: start the next one
            obs = self._all("new_episode", [(None,)] * self.num_agents)
            finished = [True] * self.num_agents
        if self.render_mode == "human":
            self.render()
        return obs, rewards, finished, [False] * self.num_agents, infos

    def _close_players(self):
        if self._threads:
            futures = [t.submit(p.close) for t, p in zip(self._threads, self.players)]
            _, not_done = concurrent.futures.wait(futures, timeout=PLAYER_TIMEOUT_SEC)
            if not_done:  # a player stuck in the engine: kill the engines, then its close() returns
                for player in self.players:
                    self.engines.kill_engine(player.config_path)
                concurrent.futures.wait(futures, timeout=PLAYER_TIMEOUT_SEC)
            for thread in self._threads:
                thread.stop(PLAYER_TIMEOUT_SEC)
        self._threads = []
        self.players = []


def make_doom_env(full_env_name: str, cfg=None, env_config=None, render_mode=None):
    """The make_env_func of every `doom_*` env (register_doom_envs)."""
    spec = doom_env_spec(full_env_name)
    settings = DoomSettings.from_cfg(cfg)
    if spec.num_agents > 1:
        return DoomMultiAgentEnv(spec, settings, render_mode)
    return DoomEnv(spec, settings, render_mode)


def register_doom_envs():
    for name in DOOM_ENVS_BY_NAME:
        register_env(name, make_doom_env)
