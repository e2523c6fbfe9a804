"""MuJoCo locomotion and control tasks (gymnasium's v5 envs) as `mujoco_<task>` envs.

`mujoco_halfcheetah` -> HalfCheetah-v5, `mujoco_hopper` -> Hopper-v5, ... (MUJOCO_ENVS below);
sample-factory 2.x's names (`mujoco_walker`, ...) are aliases, and `--mujoco_env_version=v4`
selects the v4 tasks 2.x trained on, so results compare with its published ones.
Episodes are cut at gymnasium's time limit (1000 steps for locomotion): that is a truncation,
so the defaults bootstrap from the value there (`--value_bootstrap=True`).

Actions: the Gaussian policy samples unbounded actions; `ClipActionToBounds` clips them to the
action space before the simulator sees them (the learner keeps the unclipped sample, so the
log-probabilities stay those of the distribution that produced it).

Rendering: `render_mode="rgb_array"` needs an OpenGL context. Without a display MuJoCo's default
(GLFW) cannot make one, so the factory picks EGL (GPU or Mesa, no display needed) unless
MUJOCO_GL is already set or a display exists. mujoco and gymnasium's mujoco envs are imported
when the env is made.

MuJoCo's own warnings (e.g. a deprecated attribute in gymnasium's HalfCheetah model) would go to
a MUJOCO_LOG.TXT in the working directory; the factory sends them to Python logging instead,
once per message, unless the user installed a warning handler already.
"""

from __future__ import annotations

import logging
import os

import gymnasium as gym
import numpy as np

log = logging.getLogger(__name__)

MUJOCO_ENV_PREFIX = "mujoco_"

MUJOCO_ENVS = {
    "mujoco_halfcheetah": "HalfCheetah-v5",
    "mujoco_hopper": "Hopper-v5",
    "mujoco_walker2d": "Walker2d-v5",
    "mujoco_ant": "Ant-v5",
    "mujoco_humanoid": "Humanoid-v5",
    "mujoco_humanoidstandup": "HumanoidStandup-v5",
    "mujoco_swimmer": "Swimmer-v5",
    "mujoco_reacher": "Reacher-v5",
    "mujoco_pusher": "Pusher-v5",
    "mujoco_inverted_pendulum": "InvertedPendulum-v5",
    "mujoco_inverted_double_pendulum": "InvertedDoublePendulum-v5",
}
# sample-factory 2.x's names of the same tasks
SF2_MUJOCO_ALIASES = {
    "mujoco_walker": "mujoco_walker2d",
    "mujoco_standup": "mujoco_humanoidstandup",
    "mujoco_pendulum": "mujoco_inverted_pendulum",
    "mujoco_doublependulum": "mujoco_inverted_double_pendulum",
}
MUJOCO_VERSIONS = ("v5", "v4")  # --mujoco_env_version: v4 is what sample-factory 2.x trained and published


def mujoco_env_names() -> list[str]:
    return list(MUJOCO_ENVS) + list(SF2_MUJOCO_ALIASES)


def register_mujoco_envs() -> list[str]:
    from sample_factory.envs.env_utils import register_env

    for name in mujoco_env_names():
        register_env(name, make_mujoco_env)
    return mujoco_env_names()


def use_headless_gl_if_needed(render_mode: str | None):
    """EGL for off-screen rendering when there is no display and the user chose no backend."""
    if render_mode == "rgb_array" and "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY"):
        os.environ["MUJOCO_GL"] = "egl"


def route_mujoco_warnings_to_logging():
    """MuJoCo warnings go to this module's logger (each distinct message once) instead of MUJOCO_LOG.TXT."""
    import mujoco

    if mujoco.get_mju_user_warning() is not None:
        return  # the user's handler, or ours from an earlier env of this process
    seen: set[str] = set()

    def warn(message: str):
        if message not in seen:
            seen.add(message)
            log.warning("MuJoCo: %s", message)

    mujoco.set_mju_user_warning(warn)


def make_mujoco_env(full_env_name: str, cfg=None, env_config=None, render_mode=None) -> gym.Env:
    try:
        gym_id = MUJOCO_ENVS[SF2_MUJOCO_ALIASES.get(full_env_name, full_env_name)]
    except KeyError:
        raise ValueError(f"unknown MuJoCo env {full_env_name!r}; known: {', '.join(mujoco_env_names())}") from None
    version = (cfg.get("mujoco_env_version") if cfg is not None else None) or MUJOCO_VERSIONS[0]
    gym_id = gym_id.rsplit("-", 1)[0] + "-" + version
    use_headless_gl_if_needed(render_mode)
    try:
        route_mujoco_warnings_to_logging()
        env = gym.make(gym_id, render_mode=render_mode)
    except (ImportError, gym.error.DependencyNotInstalled) as e:
        raise ImportError(f'{full_env_name} needs MuJoCo: pip install "gymnasium[mujoco]" ({e})') from None
    return ClipActionToBounds(env)


class ClipActionToBounds(gym.ActionWrapper):
    """Clips a Box action to the action space's [low, high] (the space itself is unchanged)."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        space = env.action_space
        if not isinstance(space, gym.spaces.Box):
            raise TypeError(f"ClipActionToBounds needs a Box action space, got {space}")
        self._low, self._high = space.low, space.high

    def action(self, action):
        return np.clip(np.asarray(action, dtype=self._low.dtype), self._low, self._high)
