"""One player's engine: the settings the command line decides, the spaces, and DoomPlayer.

Every env renders at 160x120 (`RES_160X120`; 16:9 or 16:10 with `--wide_aspect_ratio`) and
delivers `--res_w` x `--res_h` (128x72) with `cv2.resize(INTER_NEAREST)`. Measured on the
2-core dev machine (`python -m sf_examples.vizdoom.doom.doom_timing`, doom_basic, frameskip 4): the
engine takes ~360 us per env step; a 160x120 -> 128x72 INTER_AREA resize ~100 us, INTER_NEAREST
~13 us (whole preprocessing with the CHW transpose and measurements: 138 vs 37 us per step).
Nearest keeps thin details (the 8-pixel-wide monster of doom_basic) as sharp as area does.
Frameskip (`--env_frameskip`, 4 for Doom) runs inside the engine: `make_action(buttons, frameskip)`
(multi-agent matches excepted, see DoomPlayer.step).

Observations: a Dict with `obs` (uint8 image, channels first unless `--pixel_format=HWC`) and,
where 2.x adds a measurements vector (its battles and matches; DoomSpec.measurements), `measurements`
(float32[8]: health/100, armor/100, selected weapon/7, its ammo/50, bullets/200, shells/50,
rockets/50, cells/300; 2.x's has 23 values of its own). The default model encodes them with the
conv encoder and an MLP respectively, so no custom model is needed.

An episode ends when the scenario ends it (goal reached, death, its time limit, the match's
`+timelimit`): `terminated=True`, as in ViZDoom's own gymnasium wrapper: the time limit is part of
each scenario's task. The spec's `max_env_steps` (2.x's TimeLimitWrapper) truncates instead.
In multiplayer matches a dead agent respawns on its next step, or after the spec's respawn delay
(2 s in doom_duel, doom_duel_bots and doom_deathmatch_full, as in 2.x), and plays on (its death
is counted and shaped).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import gymnasium as gym
import numpy as np

from sf_examples.vizdoom.doom.doom_action_space import DoomActionSpace
from sf_examples.vizdoom.doom.doom_engine import EngineGuard, close_game, import_vizdoom
from sf_examples.vizdoom.doom.doom_reward_shaping import TRACKED_VARIABLES, VAR_INDEX, RewardShaping
from sf_examples.vizdoom.doom.doom_specs import DOOM_ENVS_BY_NAME, DoomSpec

RENDER_RESOLUTION = (160, 120)
# 16:9 and 16:10 renders for --wide_aspect_ratio (a wider field of view, not a stretched 4:3 one)
WIDE_RESOLUTIONS = ((256, 144), (256, 160))
INTERPOLATIONS = {"nearest": cv2.INTER_NEAREST, "area": cv2.INTER_AREA, "linear": cv2.INTER_LINEAR}

# (game variable, divisor): small floats for the measurements MLP
MEASUREMENTS = (
    ("HEALTH", 100.0),
    ("ARMOR", 100.0),
    ("SELECTED_WEAPON", 7.0),
    ("SELECTED_WEAPON_AMMO", 50.0),
    ("AMMO2", 200.0),
    ("AMMO3", 50.0),
    ("AMMO5", 50.0),
    ("AMMO6", 300.0),
)
MEASUREMENT_LIMIT = 10.0
_MEASUREMENT_INDEX = np.array([VAR_INDEX[name] for name, _ in MEASUREMENTS])
_MEASUREMENT_SCALE = np.array([1.0 / scale for _, scale in MEASUREMENTS])


def _refuse_unsupported_players(cfg, get):
    """2.x's flags for humans joining a match and adaptive bots: accepted at their defaults only."""
    if get("num_humans", 0) != 0:
        raise ValueError(f"--num_humans={get('num_humans', 0)}: human players are not supported (use 0)")
    if get("start_bot_difficulty", None) is not None:
        raise ValueError("--start_bot_difficulty: the scenarios here have no adaptive bots (leave it unset)")
    num_agents = get("num_agents", -1)
    env = get("env", None)
    spec = DOOM_ENVS_BY_NAME.get(env) if env else None
    if num_agents != -1 and spec is not None and num_agents != spec.num_agents:
        raise ValueError(
            f"--num_agents={num_agents}: {env} has {spec.num_agents} learning agent(s); other counts"
            " (seats for humans) are not supported (use -1)"
        )


@dataclass(frozen=True)
class DoomSettings:
    """What the command line decides about a Doom env (doom_params.py has the flags)."""

    res_w: int = 128
    res_h: int = 72
    wide_aspect_ratio: bool = False
    frameskip: int = 4
    pixel_format: str = "CHW"
    interpolation: str = "nearest"
    num_bots: int | None = None  # None: the spec's
    timelimit_min: float | None = None  # None: the spec's
    record_to: str | None = None  # folder of .lmp demos, one per episode and player

    @classmethod
    def from_cfg(cls, cfg) -> DoomSettings:
        if cfg is None:
            return cls()

        def get(name, default):
            value = cfg.get(name, default) if hasattr(cfg, "get") else getattr(cfg, name, default)
            return default if value is None else value

        num_bots = get("num_bots", -1)
        timelimit = get("timelimit", 0.0)
        _refuse_unsupported_players(cfg, get)
        return cls(
            res_w=int(get("res_w", cls.res_w)),
            res_h=int(get("res_h", cls.res_h)),
            wide_aspect_ratio=bool(get("wide_aspect_ratio", cls.wide_aspect_ratio)),
            frameskip=max(1, int(get("env_frameskip", cls.frameskip))),
            pixel_format=str(get("pixel_format", cls.pixel_format)),
            interpolation=str(get("doom_resize_interpolation", cls.interpolation)),
            num_bots=None if num_bots < 0 else int(num_bots),
            timelimit_min=float(timelimit) if timelimit > 0 else None,
            record_to=get("record_to", None),
        )

    @property
    def render_resolution(self) -> tuple[int, int]:
        if not self.wide_aspect_ratio:
            return RENDER_RESOLUTION
        aspect = self.res_w / self.res_h
        return min(WIDE_RESOLUTIONS, key=lambda wh: abs(wh[0] / wh[1] - aspect))


def observation_space(settings: DoomSettings, measurements: bool = True) -> gym.spaces.Dict:
    h, w = settings.res_h, settings.res_w
    image_shape = (3, h, w) if settings.pixel_format == "CHW" else (h, w, 3)
    spaces = {"obs": gym.spaces.Box(0, 255, shape=image_shape, dtype=np.uint8)}
    if measurements:
        spaces["measurements"] = gym.spaces.Box(
            -MEASUREMENT_LIMIT, MEASUREMENT_LIMIT, shape=(len(MEASUREMENTS),), dtype=np.float32
        )
    return gym.spaces.Dict(spaces)


def make_action_space(spec: DoomSpec) -> DoomActionSpace:
    return DoomActionSpace(spec.buttons, spec.action_kind, spec.continuous_turn_deg, spec.turn_bins, spec.turn_max_deg)


@dataclass
class _EpisodeStats:
    scenario_return: float = 0.0
    deaths: int = 0
    steps: int = 0


class DoomPlayer:
    """One DoomGame: configure, start, step with engine frameskip, observe, shape, count.

    Not thread-safe: every call for one player comes from one thread (its own, in a match).
    `timing` accumulates seconds spent in the engine and in preprocessing (resize, measurements).
    """

    def __init__(
        self,
        spec: DoomSpec,
        settings: DoomSettings,
        action_space: DoomActionSpace,
        shaping: RewardShaping,
        engines: EngineGuard,
        player_idx: int = 0,
        num_players: int = 1,
        num_bots: int = 0,
        port: int | None = None,
    ):
        self.spec = spec
        self.settings = settings
        self.action_space = action_space
        self.shaping = shaping
        self.scenario_terms = RewardShaping(spec.scenario_rewards)
        self.engines = engines
        self.player_idx = player_idx
        self.num_players = num_players
        self.num_bots = num_bots
        self.port = port
        self.config_path = engines.config_path(f"player{player_idx}")
        self.game = None
        self.timing = {"engine_sec": 0.0, "preprocess_sec": 0.0, "steps": 0}

        self._interpolation = INTERPOLATIONS[settings.interpolation]
        self._resize = settings.render_resolution != (settings.res_w, settings.res_h)
        self._chw = settings.pixel_format == "CHW"
        self._vars = np.zeros(len(TRACKED_VARIABLES))
        self._episode_start_vars = self._vars
        self._episode = _EpisodeStats()
        self._dead = False
        self._last_obs: dict | None = None
        self._last_screen: np.ndarray | None = None
        self._demos_recorded = 0

    def _demo_path(self) -> str:
        folder = Path(self.settings.record_to)
        folder.mkdir(parents=True, exist_ok=True)
        self._demos_recorded += 1
        name = f"{self.spec.name}_p{self.player_idx}_{os.getpid()}_{self._demos_recorded:05d}.lmp"
        return str(folder / name)

    # ----- start and configuration

    def start(self, seed: int | None = None):
        vzd = import_vizdoom()
        game = vzd.DoomGame()
        try:
            self._configure(game, vzd, seed)
            self.engines.start_game(game, self.config_path)
        except BaseException:
            close_game(game)
            raise
        self.game = game

    def _configure(self, game, vzd, seed: int | None):
        spec = self.spec
        if spec.config is not None:
            game.load_config(os.path.join(vzd.scenarios_path, spec.config))
        if spec.wad is not None:
            game.set_doom_scenario_path(os.path.join(vzd.scenarios_path, spec.wad))
        if spec.generated_map is not None:
            from sf_examples.vizdoom.doom.maps import scenario_wad_path

            game.set_doom_scenario_path(str(scenario_wad_path(spec.generated_map)))
        if spec.doom_map is not None:
            game.set_doom_map(spec.doom_map)
        if spec.living_reward is not None:
            game.set_living_reward(spec.living_reward)
        if spec.death_penalty is not None:
            game.set_death_penalty(spec.death_penalty)
        for setting, value in spec.game_settings.items():
            if setting == "doom_skill":  # the DoomGame setter takes 1-5 as the .cfg does
                game.set_doom_skill(int(value))
            else:
                getattr(game, f"set_{setting}")(value)
        game.set_window_visible(False)
        game.set_sound_enabled(False)
        game.set_mode(vzd.Mode.PLAYER)  # synchronous: the engine waits for every action
        width, height = self.settings.render_resolution
        game.set_screen_resolution(getattr(vzd.ScreenResolution, f"RES_{width}X{height}"))
        game.set_screen_format(vzd.ScreenFormat.RGB24)
        game.set_available_buttons([getattr(vzd.Button, name) for name in self.action_space.buttons])
        game.set_available_game_variables([getattr(vzd.GameVariable, name) for name in TRACKED_VARIABLES])
        if seed is not None:
            game.set_seed(int(seed) % 2**32)
        if spec.multiplayer:
            self._configure_multiplayer(game)

    def _configure_multiplayer(self, game):
        game.set_render_hud(False)
        game.set_render_crosshair(True)
        game.set_death_penalty(0.0)
        game.set_living_reward(0.0)
        game.set_episode_timeout(0)  # the match's +timelimit ends episodes
        timelimit = self.settings.timelimit_min or self.spec.timelimit_min
        if self.player_idx == 0:
            game.add_game_args(
                f"-host {self.num_players} -port {self.port} -deathmatch +timelimit {timelimit:g} "
                "+sv_forcerespawn 1 +sv_noautoaim 1 +sv_respawnprotect 1 +sv_spawnfarthest 1 +sv_nocrouch 1 "
                f"+viz_respawn_delay {self.spec.respawn_delay_sec} +viz_nocheat 1"
            )
        else:
            game.add_game_args(f"-join 127.0.0.1 -port {self.port}")
        game.add_game_args(f"+name Agent{self.player_idx} +colorset {self.player_idx}")

    def close(self):
        game, self.game = self.game, None
        close_game(game)

    # ----- episodes

    def new_episode(self, seed: int | None = None) -> dict:
        game = self.game
        if seed is not None:
            game.set_seed(int(seed) % 2**32)
        if self.settings.record_to:
            game.new_episode(self._demo_path())
        else:
            game.new_episode()
        if self.player_idx == 0 and self.num_bots > 0:
            game.send_game_command("removebots")
            for _ in range(self.num_bots):
                game.send_game_command("addbot")
        state = game.get_state()
        self._vars = self._read_vars(state)
        self._episode_start_vars = self._vars
        self._episode = _EpisodeStats()
        self._dead = False
        return self._observe(state)

    def step(self, action, tic_barrier: threading.Barrier | None = None) -> tuple[dict, float, bool, bool, dict]:
        """One env step (frameskip tics): (obs, reward, terminated, truncated, info).

        Terminated: the engine ended the episode (goal, death, the scenario's tic timeout, the
        match's time limit). Truncated: the spec's `max_env_steps` (2.x's TimeLimitWrapper) ran out first.

        Alone, the engine skips the frames itself (`make_action(buttons, frameskip)`). With a
        `tic_barrier` (the players of one match), every tic is a `make_action(buttons, 1)` after
        all players reached the barrier: ViZDoom's synchronous netgame deadlocks now and then
        when the players of a match skip several tics per call (measured with 1.3.2: one run in
        two hangs within 4 steps; tic by tic never did in thousands of tics).
        """
        game = self.game
        buttons = self.action_space.to_buttons(action)
        started = time.perf_counter()
        # A dead player is not respawned with respawn_player(), which would run tics of its own
        # while the other players of a match wait: with +sv_forcerespawn and +viz_respawn_delay 0
        # the next make_action respawns it.
        if tic_barrier is None:
            scenario_reward = game.make_action(buttons, self.settings.frameskip)
        else:
            scenario_reward = 0.0
            try:
                for _ in range(self.settings.frameskip):
                    tic_barrier.wait()
                    if not game.is_episode_finished():  # every player waits at each tic's barrier
                        scenario_reward += game.make_action(buttons, 1)
            except BaseException:
                tic_barrier.abort()  # the other players stop waiting for this one
                raise
        finished = game.is_episode_finished()
        dead = game.is_player_dead()
        state = None if finished else game.get_state()
        self.timing["engine_sec"] += time.perf_counter() - started

        new_vars = self._read_vars(state)
        died = dead and not self._dead
        alive_throughout = not (dead or self._dead)  # health etc. deltas across a death/respawn are no reward
        scenario_reward += self.scenario_terms.shaped_reward(self._vars, new_vars, died, alive_throughout)
        shaping = self.shaping.shaped_reward(self._vars, new_vars, died, alive_throughout)
        reward = self.spec.reward_scale * (scenario_reward + shaping)
        self._vars = new_vars
        self._dead = dead
        episode = self._episode
        episode.scenario_return += scenario_reward
        episode.deaths += int(died)
        episode.steps += 1
        truncated = not finished and 0 < self.spec.max_env_steps <= episode.steps

        obs = self._observe(state) if state is not None else self._last_obs
        info = {}
        if finished or truncated:
            info = {"episode_extra_stats": self._episode_stats(), "true_objective": self._true_objective()}
        self.timing["steps"] += 1
        return obs, float(reward), finished, truncated, info

    def _read_vars(self, state) -> np.ndarray:
        if state is not None:
            return np.asarray(state.game_variables, dtype=np.float64)
        vzd = import_vizdoom()  # after the episode's end there is no state, the variables remain readable
        return np.array([self.game.get_game_variable(getattr(vzd.GameVariable, name)) for name in TRACKED_VARIABLES])

    def _observe(self, state) -> dict:
        started = time.perf_counter()
        screen = state.screen_buffer  # (H, W, 3) RGB at the render resolution
        self._last_screen = screen
        image = screen
        if self._resize:
            image = cv2.resize(image, (self.settings.res_w, self.settings.res_h), interpolation=self._interpolation)
        if self._chw:
            image = np.ascontiguousarray(image.transpose(2, 0, 1))
        measurements = np.clip(
            self._vars[_MEASUREMENT_INDEX] * _MEASUREMENT_SCALE, -MEASUREMENT_LIMIT, MEASUREMENT_LIMIT
        )
        self._last_obs = {"obs": image}
        if self.spec.measurements:
            self._last_obs["measurements"] = measurements.astype(np.float32)
        self.timing["preprocess_sec"] += time.perf_counter() - started
        return self._last_obs

    def _delta(self, name: str) -> float:
        i = VAR_INDEX[name]
        return float(self._vars[i] - self._episode_start_vars[i])

    def _episode_stats(self) -> dict:
        stats = {
            "scenario_return": self._episode.scenario_return,
            "kills": self._delta("KILLCOUNT"),
            "deaths": float(self._episode.deaths),
            "hits": self._delta("HITCOUNT"),
            "damage": self._delta("DAMAGECOUNT"),
            "final_health": float(self._vars[VAR_INDEX["HEALTH"]]),
        }
        if self.spec.multiplayer:
            stats["frags"] = self._delta("FRAGCOUNT")
        return stats

    def _true_objective(self) -> float:
        if self.spec.objective == "frags":
            return self._delta("FRAGCOUNT")
        return self.spec.reward_scale * self._episode.scenario_return

    def screen(self) -> np.ndarray | None:
        """The last frame at the render resolution, (H, W, 3) RGB."""
        return None if self._last_screen is None else self._last_screen.copy()
