"""The Atari specs and factory under sample-factory 2.x's names (`ATARI_ENVS`, `atari_env_by_name`,
`make_atari_env(env_name, cfg, env_config, render_mode)`). The envs are in `atari_envs.py`.

A spec's `env_id` names the game as gym's `<Game>NoFrameskip-v4`, the setting 2.x trained on; here
that setting is `--atari_repeat_action_probability=0` (no sticky actions) on the same game.
"""

from __future__ import annotations

from dataclasses import dataclass

from sf_examples.atari.atari_envs import (
    ATARI_ENV_PREFIX,
    atari_env_names,
    make_atari_env,
    sf2_atari_aliases,
)

ATARI_W = ATARI_H = 84


@dataclass(frozen=True)
class AtariSpec:
    name: str
    env_id: str
    default_timeout: int | None = None


def _gym_v4_id(rom: str) -> str:
    return "".join(part.capitalize() for part in rom.split("_")) + "NoFrameskip-v4"


def _specs() -> list[AtariSpec]:
    """One spec per name, ours and 2.x's; none without ale-py (the game list comes from it)."""
    try:
        rom_of = {name: name[len(ATARI_ENV_PREFIX) :] for name in atari_env_names()}
    except ImportError:
        return []
    rom_of.update(sf2_atari_aliases())
    return [AtariSpec(name, _gym_v4_id(rom)) for name, rom in rom_of.items()]


ATARI_ENVS: list[AtariSpec] = _specs()


def atari_env_by_name(name: str) -> AtariSpec:
    for spec in ATARI_ENVS:
        if spec.name == name:
            return spec
    raise KeyError(f"unknown Atari env {name!r}")


__all__ = ["ATARI_ENVS", "ATARI_H", "ATARI_W", "AtariSpec", "atari_env_by_name", "make_atari_env"]
