"""Atari 2600 games (the Arcade Learning Environment) as `atari_<game>` envs.

Every single-player game that ale-py ships is registered under its ROM id: `atari_breakout`,
`atari_pong`, `atari_space_invaders`, ... The preprocessing is the one of the DQN paper (Mnih et
al. 2015) as PPO implementations use it, written here as small gymnasium wrappers, bottom to top:

    AtariEnv (ale-py, frameskip=1, grayscale screen, sticky actions, 108k-frame cap)
    NoopResetEnv          up to `noop_max` NOOP frames after each reset (random start states)
    MaxAndSkipEnv         each action repeated `frameskip` times, rewards summed, pixel-wise max of
                       the last two frames (sprites that flicker on alternate frames stay visible)
    FireResetEnv    games that wait for FIRE get it at the start of the game and of every life
    GameScore          the full-game score and length -> info["episode_extra_stats"], info["true_objective"]
    EpisodicLifeEnv       (training) a lost life ends the learner's episode; the game itself goes on
    Resize84           84x84 grayscale (cv2.INTER_AREA)
    ClipRewardEnv   (training) rewards become -1, 0 or +1
    StackFrames        the last `framestack` frames, channels first: uint8 [4, 84, 84], newest last

How the real game score is surfaced. With episodic life the learner, and therefore the runner,
see one episode per life, and with reward clipping they see clipped rewards: the runner's
`reward` is "clipped return of one life". `GameScore` sits below both wrappers, adds up the raw
rewards of the whole game, and only when the game is really over (game over or the frame cap)
puts `episode_extra_stats = {"game_score", "game_frames"}` and `true_objective = game_score`
into the info of that last step. The runner averages those over games: TensorBoard shows
`episode/true_objective` and `episode_extra/game_score` (the real score), PBT optimises it, and
the Atari defaults pick the best checkpoint by it (`--save_best_metric=game_score`). `enjoy`
registers the evaluation variant (`evaluation=True`): no episodic life and no reward clipping, so
the returns it prints are real game scores.

Sticky actions: `repeat_action_probability=0.25` by default (ALE v5, Machado et al. 2018): at
every emulator frame the previous action is repeated with that probability, so a policy cannot
memorise an open-loop action sequence. `--atari_repeat_action_probability=0` gives the
deterministic "NoFrameskip-v4" setting of older papers.

ale_py is imported where an env is made (and where the game list is read), never at import time
of this module: spawned rollout workers import it themselves when they build their envs.
"""

from __future__ import annotations

from collections import deque
from functools import lru_cache

import gymnasium as gym
import numpy as np

from sample_factory.envs.env_wrappers import (
    FIRE_ACTION,
    ClipRewardEnv,
    EpisodicLifeEnv,
    FireResetEnv,
    MaxAndSkipEnv,
    NoopResetEnv,
)

ATARI_ENV_PREFIX = "atari_"
OBS_SIZE = 84

# Defaults of the preprocessing (the --atari_* flags of atari_params.py override them).
DEFAULT_NOOP_MAX = 30
DEFAULT_REPEAT_ACTION_PROBABILITY = 0.25
DEFAULT_MAX_EPISODE_FRAMES = 108_000  # 30 minutes of play at 60 frames per second
DEFAULT_FRAMESKIP = 4
DEFAULT_FRAMESTACK = 4


def _import_ale():
    try:
        import ale_py
    except ImportError:
        raise ImportError('Atari envs need ale-py (it ships the ROMs): pip install "ale-py>=0.11"') from None
    return ale_py


# --- names ----------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def atari_game_ids() -> tuple[str, ...]:
    """ROM ids of every single-player game ale-py ships, in ale-py's order.

    ale-py's ROM list also holds a few games without a single-player mode (they cannot be loaded
    as a one-agent env); ale-py leaves those out of its `ALE/<Name>-v5` registrations, and so do we.
    """
    ale_py = _import_ale()
    gym.register_envs(ale_py)
    single_player = {
        spec.kwargs.get("game") for spec in gym.registry.values() if spec.namespace == "ALE" and spec.version == 5
    }
    return tuple(rom for rom in ale_py.roms.get_all_rom_ids() if rom in single_player)


def atari_env_names() -> list[str]:
    return [ATARI_ENV_PREFIX + rom for rom in atari_game_ids()]


# sample-factory 2.x's names that are not the ROM id without underscores (atari_spaceinvaders is)
_SF2_IRREGULAR_NAMES = {
    "asteroid": "asteroids",
    "kongfumaster": "kung_fu_master",
    "montezuma": "montezuma_revenge",
    "privateye": "private_eye",
}


def sf2_atari_aliases() -> dict[str, str]:
    """sample-factory 2.x's env names -> the ROM id they play, where the name differs from ours."""
    roms = atari_game_ids()
    aliases = {ATARI_ENV_PREFIX + rom.replace("_", ""): rom for rom in roms if "_" in rom}
    aliases.update({ATARI_ENV_PREFIX + name: rom for name, rom in _SF2_IRREGULAR_NAMES.items() if rom in roms})
    return aliases


def game_of(full_env_name: str) -> str:
    if not full_env_name.startswith(ATARI_ENV_PREFIX):
        raise ValueError(f"{full_env_name!r} is not an Atari env name (they look like atari_breakout)")
    game = sf2_atari_aliases().get(full_env_name, full_env_name[len(ATARI_ENV_PREFIX) :])
    if game not in atari_game_ids():
        raise ValueError(f"{full_env_name!r}: ale-py has no game {game!r}; known: {', '.join(atari_env_names())}")
    return game


def register_atari_envs(evaluation: bool = False) -> list[str]:
    """Registers `atari_<game>` for every game, and sample-factory 2.x's names where they differ
    (`atari_spaceinvaders` plays `space_invaders`); returns the names.

    `evaluation=True` registers the variant that plays full games with real rewards (for enjoy).
    """
    from sample_factory.envs.env_utils import register_env

    make = make_atari_env_for_eval if evaluation else make_atari_env
    names = atari_env_names() + sorted(sf2_atari_aliases())
    for name in names:
        register_env(name, make)
    return names


# --- env factory ----------------------------------------------------------------------------------


def _cfg_value(cfg, key: str, default):
    value = cfg.get(key) if cfg is not None else None
    return default if value is None else value


def make_atari_env(
    full_env_name: str, cfg=None, env_config=None, render_mode=None, evaluation: bool = False
) -> gym.Env:
    """The `make_env_func` of every `atari_<game>` name: the ALE game with the wrappers above.

    Reads `env_frameskip`, `env_framestack` and the `atari_*` flags from cfg (defaults without it).
    """
    game = game_of(full_env_name)
    _import_ale()
    from ale_py.env import AtariEnv

    frameskip = int(_cfg_value(cfg, "env_frameskip", DEFAULT_FRAMESKIP))
    framestack = int(_cfg_value(cfg, "env_framestack", DEFAULT_FRAMESTACK))
    noop_max = int(_cfg_value(cfg, "atari_noop_max", DEFAULT_NOOP_MAX))
    sticky = float(_cfg_value(cfg, "atari_repeat_action_probability", DEFAULT_REPEAT_ACTION_PROBABILITY))
    max_frames = int(_cfg_value(cfg, "atari_max_episode_frames", DEFAULT_MAX_EPISODE_FRAMES))
    episodic_life = bool(_cfg_value(cfg, "atari_episodic_life", True)) and not evaluation

    env = AtariEnv(
        game=game,
        obs_type="grayscale",  # ALE's own luminance screen: no RGB->gray conversion per frame
        frameskip=1,  # MaxAndSkipEnv below repeats actions (ALE's own skip would not max-pool)
        repeat_action_probability=sticky,
        full_action_space=False,
        max_num_frames_per_episode=max_frames if max_frames > 0 else None,
        render_mode=render_mode,
    )
    return wrap_atari(
        env,
        frameskip=frameskip,
        framestack=framestack,
        noop_max=noop_max,
        episodic_life=episodic_life,
        clip_rewards=not evaluation,
        fire_at_life_start=needs_fire(env),
    )


def make_atari_env_for_eval(full_env_name: str, cfg=None, env_config=None, render_mode=None) -> gym.Env:
    """Full games with unclipped rewards: what `enjoy` plays and reports."""
    return make_atari_env(full_env_name, cfg, env_config, render_mode, evaluation=True)


def needs_fire(env: gym.Env) -> bool:
    """Games whose action 1 is FIRE and that have more than FIRE/NOOP (Breakout, Beam Rider, ...)
    may sit still until FIRE is pressed; pressing it at the start of a life costs nothing in others."""
    meanings = env.unwrapped.get_action_meanings()
    return len(meanings) >= 3 and meanings[FIRE_ACTION] == "FIRE"


def wrap_atari(
    env: gym.Env,
    frameskip: int = DEFAULT_FRAMESKIP,
    framestack: int = DEFAULT_FRAMESTACK,
    noop_max: int = DEFAULT_NOOP_MAX,
    episodic_life: bool = True,
    clip_rewards: bool = True,
    fire_at_life_start: bool = False,
) -> gym.Env:
    """The preprocessing stack of the module docstring around an ALE env made with frameskip=1."""
    if noop_max > 0:
        env = NoopResetEnv(env, noop_max)
    env = MaxAndSkipEnv(env, frameskip)
    if fire_at_life_start:
        env = FireResetEnv(env)
    env = GameScore(env)
    if episodic_life:
        env = EpisodicLifeEnv(env)
    env = Resize84(env)
    if clip_rewards:
        env = ClipRewardEnv(env)
    return StackFrames(env, framestack)


# --- wrappers -------------------------------------------------------------------------------------


class GameScore(gym.Wrapper):
    """Adds up the raw rewards of the whole game; at game end (terminated or truncated, i.e. game
    over or the frame cap) reports them as `info["episode_extra_stats"]` and `info["true_objective"]`.

    It must sit below EpisodicLifeEnv and reward clipping: it sees every life and the real rewards.
    """

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.score = 0.0
        self.steps = 0

    def reset(self, *, seed=None, options=None):
        self.score = 0.0
        self.steps = 0
        return self.env.reset(seed=seed, options=options)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.score += float(reward)
        self.steps += 1
        if terminated or truncated:
            # ale-py counts the emulator frames of the game (no-ops and skipped frames included)
            frames = info.get("episode_frame_number", self.steps)
            info = {
                **info,
                "true_objective": self.score,
                "episode_extra_stats": {"game_score": self.score, "game_frames": float(frames)},
            }
        return obs, reward, terminated, truncated, info


class Resize84(gym.ObservationWrapper):
    """84x84 grayscale uint8 (INTER_AREA averages the pixels each output pixel covers)."""

    def __init__(self, env: gym.Env, size: int = OBS_SIZE):
        super().__init__(env)
        import cv2

        self._cv2 = cv2
        self.size = size
        self.observation_space = gym.spaces.Box(0, 255, shape=(size, size), dtype=np.uint8)

    def observation(self, observation):
        frame = np.asarray(observation)
        if frame.ndim == 3:
            frame = self._cv2.cvtColor(frame, self._cv2.COLOR_RGB2GRAY)
        return self._cv2.resize(frame, (self.size, self.size), interpolation=self._cv2.INTER_AREA)


class StackFrames(gym.Wrapper):
    """The last `k` frames as one uint8 array [k, H, W], oldest first, newest last; after a reset
    every slot holds the first frame."""

    def __init__(self, env: gym.Env, k: int = DEFAULT_FRAMESTACK):
        super().__init__(env)
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        self.k = k
        height, width = env.observation_space.shape
        self.observation_space = gym.spaces.Box(0, 255, shape=(k, height, width), dtype=np.uint8)
        self._frames: deque = deque(maxlen=k)

    def _obs(self) -> np.ndarray:
        return np.stack(self._frames)

    def reset(self, *, seed=None, options=None):
        obs, info = self.env.reset(seed=seed, options=options)
        for _ in range(self.k):
            self._frames.append(obs)
        return self._obs(), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._frames.append(obs)
        return self._obs(), reward, terminated, truncated, info
