"""The Doom env specs and factories under sample-factory 2.x's names, as the Hugging Face course
uses them:

    for env_spec in DOOM_ENVS:
        register_env(env_spec.name, functools.partial(make_doom_env_from_spec, env_spec))

The specs themselves are in `doom_specs.py`, the envs in `doom_envs.py`.
"""

from __future__ import annotations

from sf_examples.vizdoom.doom.doom_envs import make_doom_env
from sf_examples.vizdoom.doom.doom_specs import DOOM_ENV_SPECS, DoomSpec, doom_env_spec

DOOM_ENVS: list[DoomSpec] = list(DOOM_ENV_SPECS)


def doom_env_by_name(name: str) -> DoomSpec:
    """The spec of a `doom_*` env; KeyError naming the known ones otherwise."""
    return doom_env_spec(name)


def make_doom_env_from_spec(spec: DoomSpec, _env_name: str, cfg=None, env_config=None, render_mode=None, **kwargs):
    """2.x's signature: the spec first, then what every make_env_func receives (the name is the spec's)."""
    return make_doom_env(spec.name, cfg, env_config, render_mode)


__all__ = ["DOOM_ENVS", "DoomSpec", "doom_env_by_name", "make_doom_env", "make_doom_env_from_spec"]
