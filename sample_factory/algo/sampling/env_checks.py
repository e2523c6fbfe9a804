"""What a rollout worker checks of what its envs return, before anything reaches the shared buffers.

- The first observation of every env (and of an env made anew) against the env's declared space:
  its keys, each key's shape and dtype. A mismatch is an ObservationError naming env, key,
  expected and got (numpy would otherwise broadcast a (1,) into a (4,), or turn a None into NaN).
- Every step's rewards and floating-point observations must be finite (`find_non_finite`):
  a NaN or inf reaching the buffers would poison the weights through the loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np


class ObservationError(ValueError):
    """An env returned an observation its own observation space does not allow."""


def _dtype_fits(got: np.dtype, expected: np.dtype) -> bool:
    """Values of `got` fit in `expected` without changing kind (float64 into float32 is fine; a float,
    an object or a string into an integer space is not)."""
    if got == expected:
        return True
    if got.kind in "OUSV" or (expected.kind in "biu" and got.kind not in "biu"):
        return False
    return np.can_cast(got, expected, casting="same_kind") or (got.kind in "biu" and expected.kind in "biu")


def check_obs_against_space(obs: dict, obs_space: gym.spaces.Dict, where: str, batch_shape: tuple = ()):
    """Raises ObservationError naming the first key of `obs` its space does not allow.

    `batch_shape` is the leading shape of a vector env's observations (its number of envs).
    """
    missing = [key for key in obs_space.spaces if key not in obs]
    extra = [key for key in obs if key not in obs_space.spaces]
    if missing or extra:
        raise ObservationError(
            f"{where} returned observation keys {sorted(obs)}; its observation space has {sorted(obs_space.spaces)}"
            + (f" (missing {missing})" if missing else "")
            + (f" (not in the space: {extra})" if extra else "")
        )
    for key, space in obs_space.spaces.items():
        value = np.asarray(obs[key])
        expected_shape = tuple(batch_shape) + tuple(space.shape)
        if value.shape != expected_shape:
            raise ObservationError(
                f"{where} returned observation {key!r} of shape {value.shape}; its observation space says "
                f"{expected_shape}"
            )
        if space.dtype is not None and not _dtype_fits(value.dtype, np.dtype(space.dtype)):
            raise ObservationError(
                f"{where} returned observation {key!r} of dtype {value.dtype}; its observation space says "
                f"{np.dtype(space.dtype)}"
            )


@dataclass
class NonFinite:
    agents: np.ndarray  # agent indices of the split whose step held a NaN or inf
    bad_obs: np.ndarray  # the subset whose observation held one
    first_agent: int  # the first of them
    first_what: str  # what it returned: "reward nan" or "observation 'obs' inf"


def find_non_finite(rewards: np.ndarray, obs: dict) -> NonFinite | None:
    """The agents whose reward or floating-point observation is NaN or infinite, or None.

    One vectorized check per array on the hot path; the details are computed only when one fails.
    """
    bad_reward = None if np.isfinite(rewards).all() else ~np.isfinite(rewards)
    bad_obs_keys = [
        key for key, arr in obs.items() if arr.dtype.kind == "f" and not np.isfinite(arr).all()
    ]  # integer images cannot hold NaN: skipped at no cost
    if bad_reward is None and not bad_obs_keys:
        return None
    num_agents = len(rewards)
    bad_obs = np.zeros(num_agents, bool)
    first = None
    for key in bad_obs_keys:
        rows = ~np.isfinite(obs[key].reshape(num_agents, -1)).all(axis=1)
        if first is None:
            agent = int(np.flatnonzero(rows)[0])
            value = obs[key].reshape(num_agents, -1)[agent]
            first = (agent, f"observation {key!r} {value[~np.isfinite(value)][0]}")
        bad_obs |= rows
    bad = bad_obs.copy()
    if bad_reward is not None:
        agent = int(np.flatnonzero(bad_reward)[0])
        if first is None or agent <= first[0]:
            first = (agent, f"reward {rewards[agent]}")
        bad |= bad_reward
    return NonFinite(np.flatnonzero(bad), np.flatnonzero(bad_obs), first[0], first[1])


def zero_non_finite(rewards: np.ndarray, obs: dict, found: NonFinite):
    """Replaces the NaN and inf of these agents by 0, in place."""
    rewards[found.agents] = np.nan_to_num(rewards[found.agents], nan=0.0, posinf=0.0, neginf=0.0)
    for arr in obs.values():
        if arr.dtype.kind == "f":
            arr[found.bad_obs] = np.nan_to_num(arr[found.bad_obs], nan=0.0, posinf=0.0, neginf=0.0)


class NonFiniteError(ObservationError):
    """An env returned a NaN or infinite reward or observation, with --strict_env_checks=True."""
