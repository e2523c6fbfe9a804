"""Reward shaping for Doom: coefficients over changes of game variables, added to the scenario reward.

The env rewards an agent with `scenario reward + RewardShaping.shaped_reward(...)`. The scenario
reward (the .cfg/.wad's own: living reward, kill rewards, death penalty...) is never altered, and
`info["true_objective"]` is always computed without shaping, so PBT can evolve the coefficients
(`get_coefficients()` / `set_coefficients()`) while it ranks policies by the task itself.

Each coefficient multiplies one per-step quantity (all are 0 on a step where nothing happened):

| name           | per step quantity                                                                |
|----------------|----------------------------------------------------------------------------------|
| `kill`         | monsters killed (KILLCOUNT increase)                                             |
| `frag`         | frags scored (FRAGCOUNT change; a suicide is -1)                                 |
| `hit`          | hits landed (HITCOUNT increase)                                                  |
| `damage`       | damage dealt, in hit points (DAMAGECOUNT increase)                               |
| `damage_taken` | damage taken, in hit points (DAMAGE_TAKEN increase)                              |
| `health`       | health change while alive (medkits +, wounds -)                                  |
| `health_gain`  | health gained while alive (medkits), >= 0                                        |
| `health_loss`  | health lost while alive (wounds), >= 0: 2.x's schemes weigh gains and losses apart |
| `health_pickup`| 1 on a step whose health rose while alive (a medkit, whatever its size: 2.x's gathering shaping) |
| `armor`        | armor change while alive                                                         |
| `ammo`         | ammo picked up (increases of bullets, shells, rockets, cells; firing is not counted) |
| `death`        | 1 on the step the agent dies                                                     |

`health`, `armor` and `ammo` count only while the agent stays alive: neither dying nor health
going from <= 0 back to 100 at the respawn is a change the agent earned.

A variable that moves by more than IMPLAUSIBLE_DELTA in one step (no pickup, hit or frag does) is
not a change the agent earned either: that term counts 0 and a warning names the variable and its
two values (the first few times). Why: a doom_duel PBT run once showed a mean shaped return of 156
while frags and damage were ordinary, which only a wild variable value can explain.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping

log = logging.getLogger(__name__)

IMPLAUSIBLE_DELTA = 10_000.0
MAX_WARNINGS = 5
_warnings_given = 0

# Game variables every Doom env tracks (ViZDoom GameVariable names), in this order.
TRACKED_VARIABLES = (
    "HEALTH",
    "ARMOR",
    "SELECTED_WEAPON",
    "SELECTED_WEAPON_AMMO",
    "AMMO2",  # bullets (pistol, chaingun)
    "AMMO3",  # shells
    "AMMO5",  # rockets
    "AMMO6",  # cells (plasma gun, BFG)
    "KILLCOUNT",
    "FRAGCOUNT",
    "DEATHCOUNT",
    "HITCOUNT",
    "DAMAGECOUNT",
    "DAMAGE_TAKEN",
)
VAR_INDEX = {name: i for i, name in enumerate(TRACKED_VARIABLES)}
AMMO_VARIABLES = ("AMMO2", "AMMO3", "AMMO5", "AMMO6")

SHAPING_TERMS = (
    "kill",
    "frag",
    "hit",
    "damage",
    "damage_taken",
    "health",
    "health_gain",
    "health_loss",
    "health_pickup",
    "armor",
    "ammo",
    "death",
)

NO_SHAPING: dict[str, float] = {}

# Fighting scenarios: kills and damage dealt are what the scenario rewards sparsely or not at all.
MONSTER_FIGHT_SHAPING = {"kill": 1.0, "damage": 0.01, "health": 0.005, "armor": 0.005, "ammo": 0.0002, "death": -1.0}
DEATHMATCH_SHAPING = {"frag": 1.0, "damage": 0.01, "health": 0.005, "armor": 0.005, "ammo": 0.0002, "death": -0.5}
# sample-factory 2.x's battle scheme as it acts on the battle maps, where of its variables only health
# (and the selected weapon) exist: +0.005 per hit point gained, -0.003 per hit point lost. Its
# 0.0002 per step for holding the pistol with ammo is left out (at most ~0.1 an episode).
BATTLE_SHAPING = {"health_gain": 0.005, "health_loss": -0.003}


class RewardShaping:
    """Coefficients (name -> float, see the module docstring) applied to game-variable changes."""

    def __init__(self, coefficients: Mapping[str, float] | None = None):
        self._coefficients: dict[str, float] = {}
        self.set_coefficients(coefficients or {})

    def get_coefficients(self) -> dict[str, float]:
        """Every term with its coefficient (0.0 for terms not in use); a copy."""
        return {name: self._coefficients.get(name, 0.0) for name in SHAPING_TERMS}

    def set_coefficients(self, coefficients: Mapping[str, float]):
        """Replaces the given coefficients; the others keep their values. Unknown names are an error."""
        unknown = sorted(set(coefficients) - set(SHAPING_TERMS))
        if unknown:
            raise KeyError(f"unknown reward shaping terms {unknown}; known terms: {list(SHAPING_TERMS)}")
        for name, value in coefficients.items():
            value = float(value)
            if not math.isfinite(value):
                raise ValueError(f"reward shaping coefficient {name}={value} must be finite")
            self._coefficients[name] = value

    def terms(self, prev_vars, new_vars, died: bool, alive_throughout: bool | None = None) -> dict[str, float]:
        """The per-step quantities of the module docstring, from two snapshots of TRACKED_VARIABLES.

        `alive_throughout` (default: not died) is False for a step in which the agent was dead at
        either end (it died, or it respawned); health, armor and ammo changes then count 0.
        """
        if alive_throughout is None:
            alive_throughout = not died

        def delta(name: str) -> float:
            i = VAR_INDEX[name]
            change = float(new_vars[i] - prev_vars[i])
            if math.isfinite(change) and abs(change) <= IMPLAUSIBLE_DELTA:
                return change
            _warn_implausible(name, prev_vars[i], new_vars[i])
            return 0.0

        terms = {
            "kill": max(0.0, delta("KILLCOUNT")),
            "frag": delta("FRAGCOUNT"),
            "hit": max(0.0, delta("HITCOUNT")),
            "damage": max(0.0, delta("DAMAGECOUNT")),
            "damage_taken": max(0.0, delta("DAMAGE_TAKEN")),
            "death": 1.0 if died else 0.0,
            "health": 0.0,
            "health_gain": 0.0,
            "health_loss": 0.0,
            "health_pickup": 0.0,
            "armor": 0.0,
            "ammo": 0.0,
        }
        if alive_throughout:
            terms["health"] = delta("HEALTH")
            terms["health_gain"] = max(0.0, terms["health"])
            terms["health_loss"] = max(0.0, -terms["health"])
            terms["health_pickup"] = 1.0 if terms["health"] > 0 else 0.0
            terms["armor"] = delta("ARMOR")
            terms["ammo"] = sum(max(0.0, delta(name)) for name in AMMO_VARIABLES)
        return terms

    def shaped_reward(self, prev_vars, new_vars, died: bool, alive_throughout: bool | None = None) -> float:
        """The shaping added to the scenario reward for one step."""
        if not any(self._coefficients.values()):
            return 0.0
        terms = self.terms(prev_vars, new_vars, died, alive_throughout)
        return float(sum(coeff * terms[name] for name, coeff in self._coefficients.items() if coeff))


def _warn_implausible(name: str, before, after):
    global _warnings_given
    if _warnings_given < MAX_WARNINGS:
        _warnings_given += 1
        log.warning("Reward shaping: %s went from %s to %s in one step; that change counts 0", name, before, after)
