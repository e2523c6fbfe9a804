"""The registry of environments by name: `register_env("my_env", make_env_func)` makes `--env=my_env` work.

`make_env_func(full_env_name, cfg=None, env_config=None, render_mode=None) -> env`, where env follows
the gymnasium API, or the multi-agent convention of API.md (`num_agents`, `is_multiagent = True`, lists).
"""

from __future__ import annotations

from collections.abc import Callable

MakeEnvFunc = Callable[..., object]

# One registry per process, filled by the user's script. Worker processes receive a copy
# (`env_registry_snapshot()`), so envs registered inside `main()` work under the spawn start method.
_ENV_REGISTRY: dict[str, MakeEnvFunc] = {}


class UnknownEnvError(ValueError):
    pass


def register_env(env_name: str, make_env_func: MakeEnvFunc):
    if not callable(make_env_func):
        raise TypeError(f"register_env({env_name!r}, ...): make_env_func must be callable, got {make_env_func!r}")
    _ENV_REGISTRY[env_name] = make_env_func


def global_env_registry() -> dict[str, MakeEnvFunc]:
    """The registry itself, name -> make_env_func (sample-factory 2.x's accessor)."""
    return _ENV_REGISTRY


def is_registered(env_name: str) -> bool:
    return env_name in _ENV_REGISTRY


def registered_env_names() -> list[str]:
    return sorted(_ENV_REGISTRY)


def env_registry_snapshot(names: list[str] | None = None) -> dict[str, MakeEnvFunc]:
    """The registry (or the entries of `names`) to hand to worker processes: only what they make
    travels, so an unpicklable factory registered for another env does not stop a run."""
    if names is None:
        return dict(_ENV_REGISTRY)
    return {name: _ENV_REGISTRY[name] for name in names if name in _ENV_REGISTRY}


def restore_env_registry(snapshot: dict[str, MakeEnvFunc]):
    _ENV_REGISTRY.update(snapshot)


def make_env_func_for(env_name: str) -> MakeEnvFunc:
    try:
        return _ENV_REGISTRY[env_name]
    except KeyError:
        names = ", ".join(registered_env_names()) or "none"
        raise UnknownEnvError(f"unknown env {env_name!r}; registered envs: {names}") from None


class RewardShapingInterface:
    """An env (or wrapper) whose reward-shaping coefficients can be read and changed, e.g. by PBT."""

    def get_default_reward_shaping(self) -> dict | None:
        """The coefficients the env starts with (None: it has none)."""
        raise NotImplementedError

    def set_reward_shaping(self, reward_shaping: dict, agent_idx: int | slice) -> None:
        """Replaces the coefficients used for agent `agent_idx` (a slice: several agents)."""
        raise NotImplementedError


class TrainingInfoInterface:
    """An env that wants to know how far training has come (e.g. for a curriculum).

    `training_info` maps policy id -> dict of values the runner sets with `set_training_info`.
    """

    def __init__(self):
        self.training_info: dict[int, dict] = {}

    def set_training_info(self, training_info: dict[int, dict]) -> None:
        self.training_info = training_info


def find_wrapper_interface(env, interface_type: type):
    """The outermost wrapper of `env` (or the env itself) that is an `interface_type`, or None."""
    while env is not None:
        if isinstance(env, interface_type):
            return env
        inner = getattr(env, "env", None)
        if inner is env:
            break
        env = inner
    return None
