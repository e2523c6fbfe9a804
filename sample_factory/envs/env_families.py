"""Env families (VizDoom, Atari, ...) announce themselves as entry points, so generic commands
like `python -m sample_factory.benchmark --env=doom_basic` find their envs, flags and defaults
without the library importing any example code.

An entry point in the group `sample_factory.env_families` is named after the env-name prefix it
serves (`doom` serves `doom_*`; `gymnasium` serves any registered gymnasium id) and points to
`setup(parser, partial_cfg)`, which registers the envs and adds flags and defaults to the parser.
"""

from __future__ import annotations

from importlib.metadata import entry_points

ENTRY_POINT_GROUP = "sample_factory.env_families"
FALLBACK_FAMILY = "gymnasium"


def setup_env_family(parser, partial_cfg) -> str | None:
    """Runs the setup of the family that serves `partial_cfg.env`; returns its name (None if none)."""
    families = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    env = partial_cfg.env or ""
    matching = [name for name in families if env.startswith(name + "_")]
    name = max(matching, key=len) if matching else (FALLBACK_FAMILY if FALLBACK_FAMILY in families else None)
    if name is None:
        return None
    families[name].load()(parser, partial_cfg)
    return name
