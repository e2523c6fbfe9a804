"""The MuJoCo specs and factory under sample-factory 2.x's names (`MUJOCO_ENVS`, `mujoco_env_by_name`,
`make_mujoco_env`). The envs are in `mujoco_envs.py`; 2.x's specs name the v4 tasks, which
`--mujoco_env_version=v4` selects here."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from sf_examples.mujoco.mujoco_envs import MUJOCO_ENVS as _TASKS
from sf_examples.mujoco.mujoco_envs import SF2_MUJOCO_ALIASES, make_mujoco_env


def mujoco_available() -> bool:
    return importlib.util.find_spec("mujoco") is not None


@dataclass(frozen=True)
class MujocoSpec:
    name: str
    env_id: str


MUJOCO_ENVS: list[MujocoSpec] = [
    MujocoSpec(name, _TASKS[SF2_MUJOCO_ALIASES.get(name, name)].rsplit("-", 1)[0] + "-v4")
    for name in list(_TASKS) + list(SF2_MUJOCO_ALIASES)
]


def mujoco_env_by_name(name: str) -> MujocoSpec:
    for spec in MUJOCO_ENVS:
        if spec.name == name:
            return spec
    raise KeyError(f"unknown MuJoCo env {name!r}")


__all__ = ["MUJOCO_ENVS", "MujocoSpec", "make_mujoco_env", "mujoco_available", "mujoco_env_by_name"]
