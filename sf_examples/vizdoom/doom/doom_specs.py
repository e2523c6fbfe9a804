"""The `doom_<scenario>` envs as data: one DoomSpec per env name, and the lookup by name.

Action spaces, rewards and limits are sample-factory 2.x's for its 20 env names (DOOM_ENV_SPECS
below; the table is in sf_examples/vizdoom/README.md): its one-button-at-a-time Discrete spaces,
its Tuples of Discretes, its Discretized turning, its reward scaling (x0.01 for doom_basic and
doom_deadly_corridor) and its step limits. Maps that ViZDoom does not ship are written by maps/.

Rewards: the scenario's own reward (plus `scenario_rewards` computed from game variables on
the generated maps) plus reward shaping (doom_reward_shaping.py), times the spec's `reward_scale`.
`info["true_objective"]` is the scaled scenario return, or the frag count in the multiplayer envs
(whose scenario reward is 0); `info["episode_extra_stats"]` has the unscaled `scenario_return`,
`kills`, `deaths`, `hits`, `damage`, `final_health` (and `frags` in matches).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from sf_examples.vizdoom.doom.doom_reward_shaping import (
    BATTLE_SHAPING,
    DEATHMATCH_SHAPING,
    MONSTER_FIGHT_SHAPING,
    NO_SHAPING,
)

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
    game variables computed by DoomPlayer (doom_reward_shaping.py's terms: the generated maps have no ACS
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
