"""sample-factory 2.x's import path of `EnvInfo`; it only re-exports `envs/create_env.py`.

Here the spaces are learned from a throw-away env in the main process (no separate process, no
cache file), so `obtain_env_info_in_a_separate_process` is that same call under 2.x's name.
"""

from __future__ import annotations

from sample_factory.envs.create_env import EnvInfo, env_info_of, obtain_env_info

ENV_INFO_PROTOCOL_VERSION = 1


def extract_env_info(env, cfg) -> EnvInfo:
    """The EnvInfo of an env that is already made."""
    return env_info_of(env, cfg)


def obtain_env_info_in_a_separate_process(cfg) -> EnvInfo:
    return obtain_env_info(cfg)


__all__ = [
    "ENV_INFO_PROTOCOL_VERSION",
    "EnvInfo",
    "extract_env_info",
    "obtain_env_info",
    "obtain_env_info_in_a_separate_process",
]
