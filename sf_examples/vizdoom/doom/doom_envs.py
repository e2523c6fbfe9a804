"""ViZDoom envs: the `doom_<scenario>` registry, the single-agent env and the multi-agent match.

Every env renders at 160x120 (`RES_160X120`; 16:9 or 16:10 with `--wide_aspect_ratio`) and
delivers `--res_w` x `--res_h` (128x72) with `cv2.resize(INTER_NEAREST)`. Measured on the
2-core dev machine (`python -m sf_examples.vizdoom.doom.doom_timing`, doom_basic, frameskip 4): the
engine takes ~360 us per env step; a 160x120 -> 128x72 INTER_AREA resize ~100 us, INTER_NEAREST
~13 us (whole preprocessing with the CHW transpose and measurements: 138 vs 37 us per step).
Nearest keeps thin details (the 8-pixel-wide monster of doom_basic) as sharp as area does.
Frameskip (`--env_frameskip`, 4 for Doom) runs inside the engine: `make_action(buttons, frameskip)`
(multi-agent matches excepted, see below).

Observations: a Dict with `obs` (uint8 image, channels first unless `--pixel_format=HWC`) and,
where 2.x adds a measurements vector (its battles and matches; DoomSpec.measurements), `measurements`
(float32[8]: health/100, armor/100, selected weapon/7, its ammo/50, bullets/200, shells/50,
rockets/50, cells/300; 2.x's has 23 values of its own). The default model encodes them with the
conv encoder and an MLP respectively, so no custom model is needed.

Action spaces, rewards and limits are sample-factory 2.x's for its 20 env names (DOOM_ENV_SPECS
below; the table is in sf_examples/vizdoom/README.md): its one-button-at-a-time Discrete spaces,
its Tuples of Discretes, its Discretized turning, its reward scaling (x0.01 for doom_basic and
doom_deadly_corridor) and its step limits. Maps that ViZDoom does not ship are written by maps/.

Rewards: the scenario's own reward (plus `scenario_rewards` computed here from game variables on
the generated maps) plus reward shaping (doom_reward_shaping.py), times the spec's `reward_scale`.
`info["true_objective"]` is the scaled scenario return, or the frag count in the multiplayer envs
(whose scenario reward is 0); `info["episode_extra_stats"]` has the unscaled `scenario_return`,
`kills`, `deaths`, `hits`, `damage`, `final_health` (and `frags` in matches).

An episode ends when the scenario ends it (goal reached, death, its time limit, the match's
`+timelimit`): `terminated=True`, as in ViZDoom's own gymnasium wrapper: the time limit is part of
each scenario's task. The spec's `max_env_steps` (2.x's TimeLimitWrapper) truncates instead.
In multiplayer matches a dead agent respawns on its next step, or after the spec's respawn delay
(2 s in doom_duel, doom_duel_bots and doom_deathmatch_full, as in 2.x), and plays on (its death
is counted and shaped).

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
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import ClassVar

import cv2
import gymnasium as gym
import numpy as np

from sample_factory.envs.env_utils import RewardShapingInterface, register_env
from sf_examples.vizdoom.doom.doom_action_space import DoomActionSpace
from sf_examples.vizdoom.doom.doom_engine import (
    EngineGuard,
    close_at_exit,
    close_game,
    free_udp_port,
    import_vizdoom,
)
from sf_examples.vizdoom.doom.doom_reward_shaping import (
    BATTLE_SHAPING,
    DEATHMATCH_SHAPING,
    MONSTER_FIGHT_SHAPING,
    NO_SHAPING,
    TRACKED_VARIABLES,
    VAR_INDEX,
    RewardShaping,
)

log = logging.getLogger(__name__)

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

PLAYER_TIMEOUT_SEC = 60.0  # longest a player may take to start, reset or step before the env gives up
MULTIPLAYER_START_ATTEMPTS = 3

TURN = ("TURN_LEFT", "TURN_RIGHT")
STRAFE = ("MOVE_LEFT", "MOVE_RIGHT")
FORWARD_BACK = ("MOVE_FORWARD", "MOVE_BACKWARD")
ATTACK = ("ATTACK",)
WEAPONS = tuple(f"SELECT_WEAPON{i}" for i in range(1, 8))
DEATHMATCH_BUTTONS = (FORWARD_BACK, STRAFE, TURN, ATTACK, ("SPEED",), WEAPONS)


@dataclass(frozen=True)
class DoomSpec:
    """One `doom_<scenario>` env: the scenario files, its buttons, rewards and players.

    Rewards: every step's reward is `reward_scale * (scenario reward + shaping)`, the way 2.x
    wraps the shaped env in its RewardScalingWrapper. The scenario reward is the engine's (the
    .cfg/.wad's living reward, kill rewards, death penalty) plus `scenario_rewards`, terms over
    game variables computed here (doom_reward_shaping.py's terms: the generated maps have no ACS
    to add their rewards in the engine). `info["true_objective"]` is `reward_scale` x the episode's
    scenario return (2.x's scale, what its reports show), or the frags in matches;
    `episode_extra_stats["scenario_return"]` is the unscaled scenario return.
    """

    name: str
    config: str | None  # .cfg in vizdoom.scenarios_path; None: a generated map (maps/), `game_settings` say the rest
    buttons: tuple  # groups of mutually exclusive buttons (doom_action_space.py)
    action_kind: str = "discrete"
    continuous_turn_deg: float = 0.0
    turn_bins: int = 0  # > 0: 2.x's Discretized turning over +-turn_max_deg per tic
    turn_max_deg: float = 0.0
    reward_shaping: Mapping[str, float] = field(default_factory=lambda: MappingProxyType(dict(NO_SHAPING)))
    scenario_rewards: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    reward_scale: float = 1.0  # 2.x's reward_scaling
    max_env_steps: int = 0  # 2.x's default_timeout: the episode is truncated after this many env steps (0: never)
    objective: str = "scenario_return"  # or "frags": what info["true_objective"] reports
    wad: str | None = None  # overrides the .cfg's scenario
    doom_map: str | None = None
    generated_map: str | None = None  # a map written by maps/ (its name there); its WAD is built at first use
    # DoomGame settings after the .cfg, by setter name: {"render_hud": True} calls game.set_render_hud(True)
    game_settings: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))
    multiplayer: bool = False
    num_agents: int = 1
    num_bots: int = 0
    # the measurements vector beside the image: 2.x has one (its own, 23 values) only in the envs it
    # wraps with DoomAdditionalInput (battles and matches); its other envs see the image alone
    measurements: bool = True
    timelimit_min: float = 0.0  # multiplayer match length
    respawn_delay_sec: int = 0  # multiplayer: seconds a dead player waits before it respawns
    # the scenario's own rewards, replacing the .cfg's (None: keep them)
    living_reward: float | None = None
    death_penalty: float | None = None
    # training defaults of this env on top of doom_override_defaults' (doom_params.py)
    train_defaults: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))

    def __reduce__(self):
        # Read-only mappings do not pickle; a spec travels to worker processes by its name.
        return doom_env_spec, (self.name,)


def _shaping(coefficients) -> Mapping[str, float]:
    return MappingProxyType(dict(coefficients))


def _render(hud: bool, crosshair: bool = False, weapon: bool = True) -> dict:
    """The rendering options of a 2.x .cfg (decals and particles are off in all of them)."""
    return {
        "render_hud": hud,
        "render_crosshair": crosshair,
        "render_weapon": weapon,
        "render_decals": False,
        "render_particles": False,
        "render_screen_flashes": True,
    }


def _settings(**settings) -> Mapping[str, object]:
    return MappingProxyType(settings)


def _gathering_spec(name: str, config: str) -> DoomSpec:
    return DoomSpec(
        name,
        config,
        (TURN + FORWARD_BACK,),
        reward_shaping=_shaping({"health_pickup": 1.0}),
        living_reward=0.01,
        death_penalty=0.0,
        game_settings=_settings(**_render(hud=False, weapon=False)),
        measurements=False,
    )


# 2.x's deathmatch buttons (doom_action_space_full_discretized): fwd/back, right/left strafe (in
# that order), weapons 1-7, attack, sprint, [use,] and the turn in 21 steps of +-12.5 deg per tic
FULL_DEATHMATCH_BUTTONS = (FORWARD_BACK, ("MOVE_RIGHT", "MOVE_LEFT"), WEAPONS, ATTACK, ("SPEED",))
FULL_DEATHMATCH_BUTTONS_WITH_USE = (*FULL_DEATHMATCH_BUTTONS, ("USE",))
DEATHMATCH_TURN = {"turn_bins": 21, "turn_max_deg": 12.5}
# 2.x's battle buttons (doom_action_space_discretized_no_weap): fwd/back, right/left, attack, sprint,
# and the turn in 11 steps of +-10 deg per tic
BATTLE_BUTTONS = (FORWARD_BACK, ("MOVE_RIGHT", "MOVE_LEFT"), ATTACK, ("SPEED",))
BATTLE_TURN = {"turn_bins": 11, "turn_max_deg": 10.0}
# 2.x's doom_action_space() for doom_dm / doom_dwango5: fwd/back, right/left, prev/next weapon,
# attack, sprint and a continuous turn (Box, x7.5 deg per tic). 2.x's own cig.cfg and dwango5_dm.cfg
# list other buttons (turn left/right, no delta) than this space flattens to, so there its actions
# press the wrong buttons; here the space drives the buttons it names.
DM_BUTTONS = (
    FORWARD_BACK,
    ("MOVE_RIGHT", "MOVE_LEFT"),
    ("SELECT_PREV_WEAPON", "SELECT_NEXT_WEAPON"),
    ATTACK,
    ("SPEED",),
)


def _battle_spec(
    name: str, generated_map: str, buttons, action_kind: str, turn: dict, shaping, measurements: bool = True
) -> DoomSpec:
    """2.x's battle task (maps/battle.py): +1 per imp killed, a minute (2100 tics) an episode, skill 2."""
    return DoomSpec(
        name,
        None,
        buttons,
        action_kind=action_kind,
        **turn,
        reward_shaping=_shaping(shaping),
        scenario_rewards=_shaping({"kill": 1.0}),
        max_env_steps=2100,  # 2.x's; the 2100-tic episode ends first (525 steps at frameskip 4)
        generated_map=generated_map,
        doom_map="map01",
        living_reward=0.0,
        death_penalty=0.0,
        game_settings=_settings(episode_timeout=2100, doom_skill=2, **_render(hud=True, crosshair=True)),
        measurements=measurements,
    )


def _two_colors_spec(name: str, generated_map: str) -> DoomSpec:
    """2.x's two-colours task (maps/two_colors.py): 0.01 per tic alive, +1 per heal as shaping."""
    return DoomSpec(
        name,
        None,
        (TURN, FORWARD_BACK),  # 2.x's doom_action_space_basic
        action_kind="tuple",
        reward_shaping=_shaping({"health_pickup": 1.0}),
        generated_map=generated_map,
        doom_map="map01",
        living_reward=0.01,
        death_penalty=0.0,
        game_settings=_settings(episode_timeout=2100, doom_skill=3, **_render(hud=False, weapon=False)),
        measurements=False,
    )


def _match_spec(name: str, buttons, num_agents: int, num_bots: int, **kwargs) -> DoomSpec:
    """A 2.x deathmatch: frags are the objective, shaped by frags, damage, health and pickups."""
    settings = {"config": "multi.cfg", "doom_map": "map01", "generated_map": "arena", **kwargs}
    turn = {} if "continuous_turn_deg" in kwargs else DEATHMATCH_TURN
    return DoomSpec(
        name,
        buttons=buttons,
        action_kind="tuple",
        **turn,
        reward_shaping=_shaping(DEATHMATCH_SHAPING),
        objective="frags",
        multiplayer=True,
        num_agents=num_agents,
        num_bots=num_bots,
        timelimit_min=4.0,
        **settings,
    )


DOOM_ENV_SPECS = (
    # ----- as sample-factory 2.x defines them (its doom_utils.DOOM_ENVS): its buttons, action
    # spaces, reward scaling, step limits and .cfg rendering options, on ViZDoom's maps (the .wad
    # files 2.x ships for these are byte for byte ViZDoom's, except health_gathering_supreme's).
    DoomSpec(
        "doom_basic",
        "basic.cfg",
        (STRAFE + ATTACK,),  # Discrete(4): none, left, right, attack
        reward_scale=0.01,  # 2.x's: a kill is +1.01 minus 0.01 per tic, a return of ~0.7-0.9 when solved
        max_env_steps=300,  # 2.x's limit; the scenario ends itself after 300 tics (75 steps) before it
        game_settings=_settings(**_render(hud=True)),
        measurements=False,
        # A tiny task: many small updates beat few large ones. On 2 CPU cores batch 2048 gets only
        # 61 updates in 500k frames and does not move the policy; batch 256 with lr 5e-4 reached a
        # mean return of 0.70 (70 on the unscaled reward of the time) in ~300k frames.
        train_defaults=MappingProxyType({"batch_size": 256, "learning_rate": 5e-4}),
    ),
    DoomSpec(
        "doom_defend_the_center",
        "defend_the_center.cfg",
        (TURN, ATTACK),
        action_kind="tuple",  # Tuple(Discrete(3), Discrete(2)): turn, attack
        game_settings=_settings(**_render(hud=True)),
        measurements=False,
        # Measured over 1M frames on 2 cores (with Discrete(6) actions then): batch 2048, lr 1e-4
        # goes from 0.5 to 2.9 kills; batch 256, lr 5e-4 from 0.7 to 7.8.
        train_defaults=MappingProxyType({"batch_size": 256, "learning_rate": 5e-4}),
    ),
    DoomSpec(
        "doom_defend_the_line",
        "defend_the_line.cfg",
        (TURN, ATTACK),
        action_kind="tuple",
        game_settings=_settings(**_render(hud=True)),
        measurements=False,
    ),
    # As sample-factory 2.x trains them (and the Hugging Face course scores them): one of four
    # buttons or none, 0.01 per tic alive and no death penalty (the return is ~seconds survived / 0.35),
    # and +1 for every medkit picked up as shaping; true_objective is the unshaped return.
    _gathering_spec("doom_health_gathering", "health_gathering.cfg"),
    _gathering_spec("doom_health_gathering_supreme", "health_gathering_supreme.cfg"),
    DoomSpec(
        "doom_my_way_home",
        "my_way_home.cfg",
        (TURN, FORWARD_BACK),  # 2.x's doom_action_space_basic: Tuple(turn, forward/backward)
        action_kind="tuple",
        game_settings=_settings(**_render(hud=False)),
        measurements=False,
    ),
    # sample-factory 2.x's one-button-at-a-time variants (its buttons, ViZDoom's maps and rewards)
    DoomSpec(
        "doom_my_way_home_flat_actions",
        "my_way_home.cfg",
        (TURN + FORWARD_BACK,),
        game_settings=_settings(**_render(hud=False)),
        measurements=False,
    ),
    DoomSpec(
        "doom_defend_the_center_flat_actions",
        "defend_the_center.cfg",
        (TURN + ATTACK,),
        game_settings=_settings(**_render(hud=True)),
        measurements=False,
    ),
    DoomSpec(
        "doom_deadly_corridor",
        "deadly_corridor.cfg",
        (TURN, FORWARD_BACK, STRAFE, ATTACK),  # 2.x's doom_action_space_extended, in its order
        action_kind="tuple",
        reward_scale=0.01,  # 2.x's: the scenario pays the distance gained towards the vest, -100 for dying
        game_settings=_settings(**_render(hud=True)),
        measurements=False,
    ),
    # ----- 2.x's scenarios on maps written here (maps/): its buttons, spaces, rewards and limits
    _two_colors_spec("doom_two_colors_easy", "two_colors_easy"),
    _two_colors_spec("doom_two_colors_hard", "two_colors_hard"),
    _battle_spec("doom_battle", "battle", BATTLE_BUTTONS + (TURN,), "tuple", BATTLE_TURN, BATTLE_SHAPING),
    _battle_spec("doom_battle2", "battle2", BATTLE_BUTTONS + (TURN,), "tuple", BATTLE_TURN, BATTLE_SHAPING),
    # 2.x's benchmark: battle with one of 8 buttons or none, no shaping (throughput comparisons)
    _battle_spec(
        "doom_benchmark",
        "battle",
        (("MOVE_FORWARD", "MOVE_BACKWARD", "MOVE_RIGHT", "MOVE_LEFT", "TURN_RIGHT", "TURN_LEFT", "ATTACK", "SPEED"),),
        "discrete",
        {},
        NO_SHAPING,
        measurements=False,  # 2.x: "without extra input spaces for measurements"
    ),
    # ----- this project's own, not in 2.x
    DoomSpec("doom_predict_position", "predict_position.cfg", (TURN, ATTACK)),
    DoomSpec("doom_take_cover", "take_cover.cfg", (STRAFE,)),
    DoomSpec(
        "doom_deathmatch",
        "deathmatch.cfg",
        DEATHMATCH_BUTTONS,
        action_kind="multidiscrete",
        reward_shaping=_shaping(MONSTER_FIGHT_SHAPING),
    ),
    # ----- 2.x's multiplayer names: 2.x's action spaces and match settings, on cig.wad (ViZDoom's)
    # where 2.x plays dwango5.wad / ssl2.wad, which are not ours to ship
    DoomSpec(
        "doom_deathmatch_bots",
        "multi.cfg",
        FULL_DEATHMATCH_BUTTONS,
        action_kind="tuple",
        **DEATHMATCH_TURN,
        reward_shaping=_shaping(DEATHMATCH_SHAPING),
        objective="frags",
        wad="cig.wad",
        doom_map="map02",
        multiplayer=True,
        num_bots=7,
        timelimit_min=4.0,
    ),
    DoomSpec(
        "doom_duel",
        "multi.cfg",
        FULL_DEATHMATCH_BUTTONS_WITH_USE,
        action_kind="tuple",
        **DEATHMATCH_TURN,
        reward_shaping=_shaping(DEATHMATCH_SHAPING),
        objective="frags",
        wad="cig.wad",
        doom_map="map01",
        multiplayer=True,
        num_agents=2,
        timelimit_min=4.0,
        respawn_delay_sec=2,
    ),
    # 2.x's other matches, on the deathmatch map written here (maps/arena.py) where 2.x has ssl2.wad,
    # freedm.wad and dwango5.wad; doom_dm is on cig.wad's map01 as in 2.x
    _match_spec("doom_duel_bots", FULL_DEATHMATCH_BUTTONS_WITH_USE, 1, 1, respawn_delay_sec=2),
    _match_spec("doom_deathmatch_full", FULL_DEATHMATCH_BUTTONS_WITH_USE, 4, 4, respawn_delay_sec=2),
    _match_spec("doom_dwango5", DM_BUTTONS + (TURN,), 8, 0, continuous_turn_deg=7.5),
    _match_spec("doom_dm", DM_BUTTONS + (TURN,), 8, 0, continuous_turn_deg=7.5, generated_map=None, wad="cig.wad"),
)
DOOM_ENVS_BY_NAME: Mapping[str, DoomSpec] = MappingProxyType({spec.name: spec for spec in DOOM_ENV_SPECS})


def doom_env_spec(name: str) -> DoomSpec:
    try:
        return DOOM_ENVS_BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown Doom env {name!r}; Doom envs: {', '.join(DOOM_ENVS_BY_NAME)}") from None


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
