"""Per-policy hyper-parameters: what each policy of a population trains with where it differs from the flags.

A policy's current values live in `policy_{id:02d}_cfg.json` in the experiment folder (sample-factory
2.x's file name), and its env reward-shaping coefficients in `policy_{id:02d}_reward_shaping.json`.
The runner writes them before any process starts (from the flags, `--policy_hyperparams`, or the
files of an earlier run, which win); the learner and the rollout workers read them when they start,
and population-based training changes them while the run goes on. A run without a population and
without `--policy_hyperparams` writes none.

`--policy_hyperparams` is JSON, inline or in a file: `{"1": {"learning_rate": 1e-5}, "3": {"gamma": 0.98}}`.
"""

from __future__ import annotations

import json
from pathlib import Path

from sample_factory.utils.attr_dict import AttrDict
from sample_factory.utils.experiment_folder import ExperimentFolder, atomic_write_json

# What population-based training mutates (gamma only with --pbt_optimize_gamma) and what a
# per-policy override may set.
TUNABLE_HYPERPARAMS = (
    "learning_rate",
    "exploration_loss_coeff",
    "value_loss_coeff",
    "max_grad_norm",
    "ppo_clip_ratio",
    "ppo_clip_value",
    "gamma",
)


class PolicyParamsError(ValueError):
    """--policy_hyperparams or a policy's file cannot be used; the message says why, in one line."""


def policy_params_path(experiment_dir: str | Path, policy_id: int) -> Path:
    return ExperimentFolder(experiment_dir).policy_params_file(policy_id)


def reward_shaping_path(experiment_dir: str | Path, policy_id: int) -> Path:
    return ExperimentFolder(experiment_dir).reward_shaping_file(policy_id)


def parse_policy_overrides(text: str | None, num_policies: int) -> dict[int, dict[str, float]]:
    """`--policy_hyperparams`: JSON text or the path of a JSON file -> {policy_id: {name: value}}."""
    if not text:
        return {}
    source = "--policy_hyperparams"
    if not text.lstrip().startswith("{"):
        path = Path(text).expanduser()
        if not path.is_file():
            raise PolicyParamsError(f"--policy_hyperparams={text}: neither JSON nor an existing file")
        source, text = str(path), path.read_text()
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as e:
        raise PolicyParamsError(f"{source}: not valid JSON ({e})") from None
    if not isinstance(raw, dict):
        raise PolicyParamsError(f"{source}: must be a JSON object of policy id -> {{hyper-parameter: value}}")
    overrides = {}
    for key, params in raw.items():
        try:
            policy_id = int(key)
        except ValueError:
            raise PolicyParamsError(f"{source}: {key!r} is not a policy id") from None
        if not 0 <= policy_id < num_policies:
            raise PolicyParamsError(f"{source}: policy {policy_id} does not exist (--num_policies={num_policies})")
        if not isinstance(params, dict):
            raise PolicyParamsError(f"{source}: policy {policy_id} needs an object of hyper-parameter -> value")
        overrides[policy_id] = _checked(params, f"{source}, policy {policy_id}")
    return overrides


def _checked(params: dict, source: str) -> dict[str, float]:
    unknown = sorted(set(params) - set(TUNABLE_HYPERPARAMS))
    if unknown:
        raise PolicyParamsError(f"{source}: {unknown} cannot differ per policy; these can: {list(TUNABLE_HYPERPARAMS)}")
    out = {}
    for name, value in params.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise PolicyParamsError(f"{source}: {name}={value!r} is not a number")
        out[name] = float(value)
    return out


def uses_policy_files(cfg) -> bool:
    return bool(cfg.with_pbt or cfg.policy_hyperparams)


def initial_hyperparams(cfg, policy_id: int, overrides: dict[int, dict[str, float]]) -> dict[str, float]:
    """What a policy starts with in a new experiment: the flags, then its override."""
    return {**{name: float(cfg[name]) for name in TUNABLE_HYPERPARAMS}, **overrides.get(policy_id, {})}


def read_policy_file(path: Path) -> dict | None:
    """A policy file's contents, or None where there is none."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PolicyParamsError(f"{path} is not valid JSON ({e}); fix or delete it") from None
    if not isinstance(data, dict):
        raise PolicyParamsError(f"{path} holds {type(data).__name__}, not a JSON object; fix or delete it")
    return data


def read_hyperparams(experiment_dir: str | Path, policy_id: int) -> dict[str, float] | None:
    path = policy_params_path(experiment_dir, policy_id)
    data = read_policy_file(path)
    return None if data is None else _checked(data, str(path))


def write_hyperparams(experiment_dir: str | Path, policy_id: int, params: dict[str, float]):
    atomic_write_json(policy_params_path(experiment_dir, policy_id), params)


def read_reward_shaping(experiment_dir: str | Path, policy_id: int) -> dict[str, float] | None:
    return read_policy_file(reward_shaping_path(experiment_dir, policy_id))


def write_reward_shaping(experiment_dir: str | Path, policy_id: int, shaping: dict[str, float]):
    atomic_write_json(reward_shaping_path(experiment_dir, policy_id), shaping)


def with_hyperparams(cfg, params: dict[str, float] | None) -> AttrDict:
    """A copy of `cfg` with one policy's values: the run's config itself is never changed."""
    return AttrDict({**cfg, **(params or {})})
