"""A trained policy loaded for evaluation: the model of a checkpoint, in eval mode, with its spaces.

`load_checkpoint_for_eval` reads the experiment's checkpoint of `--policy_index`
(`--load_checkpoint_kind`); `load_policy_file` any checkpoint or league snapshot by path;
`policy_from_checkpoint` builds the model and checks that the weights fit it. Failures a user can
fix raise EvalError with a one-line message.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from sample_factory.cfg.experiment import experiment_dir
from sample_factory.envs.create_env import as_dict_space, obtain_env_info
from sample_factory.eval import EvalError
from sample_factory.eval.config import eval_cfg
from sample_factory.model.actor_critic import ActorCritic, create_actor_critic, rnn_state_size_for
from sample_factory.utils.checkpoint import CheckpointError, checkpoint_dir, incompatibilities, load_latest_checkpoint
from sample_factory.utils.device import policy_device

log = logging.getLogger(__name__)


@dataclass
class LoadedPolicy:
    cfg: object  # the merged config (saved + typed now)
    model: ActorCritic  # in eval mode, on `device`
    device: torch.device
    obs_space: gym.spaces.Dict
    action_space: gym.Space
    rnn_state_size: int  # width S of the flat RNN state; 0 without memory
    checkpoint_path: Path
    env_steps: int | None  # env steps the checkpoint was trained for, when it says


def load_checkpoint_for_eval(cfg, device: torch.device) -> tuple[dict, Path]:
    """The state and path of the experiment's checkpoint of `--policy_index` (an eval config)."""
    directory = checkpoint_dir(experiment_dir(cfg), cfg.policy_index)
    try:
        loaded = load_latest_checkpoint(directory, device, kind=cfg.load_checkpoint_kind)
    except CheckpointError as e:
        raise EvalError(str(e)) from None
    if loaded is None:
        raise EvalError(
            f"no checkpoint of policy {cfg.policy_index} in {directory}: train the experiment first (or check --policy_index)"
        )
    state, path = loaded
    if "model" not in state:
        raise EvalError(f"checkpoint {path} has no model weights")
    return state, path


def load_policy_file(path: Path, device: torch.device, what: str | None = None) -> dict:
    """The state in a checkpoint or league snapshot file; `what` names it in the error (default: the path)."""
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as e:
        raise EvalError(f"could not load {what or path}: {type(e).__name__}: {e}") from None


def build_model_from_checkpoint(cfg, state: dict, path: Path, obs_space, action_space, device) -> ActorCritic:
    model = create_actor_critic(cfg, obs_space, action_space).to(device)
    problems = incompatibilities(state["model"], model)
    if problems:
        shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
        raise EvalError(
            f"checkpoint {path} does not fit the model built from the config "
            f"(was a model flag typed now that differs from training?): {shown}"
        )
    model.load_state_dict(state["model"])
    model.eval()
    return model


def policy_from_checkpoint(
    cfg, state: dict, path: Path, obs_space, action_space, device, policy_id: int
) -> LoadedPolicy:
    """The model of `state` (policy `policy_id`'s, for the log line), for the given spaces."""
    obs_space = as_dict_space(obs_space)
    model = build_model_from_checkpoint(cfg, state, path, obs_space, action_space, device)
    env_steps = (state.get("training_state") or {}).get("env_steps")
    trained = f", trained for {env_steps} env steps" if env_steps is not None else ""
    log.info("Loaded %s (policy %d%s)", path, policy_id, trained)
    return LoadedPolicy(cfg, model, device, obs_space, action_space, rnn_state_size_for(cfg), path, env_steps)


def load_policy_for_eval(cfg) -> LoadedPolicy:
    """Merged config + model with the checkpoint's weights; the spaces come from a throw-away env.

    Raises EvalError (experiment, checkpoint, or config problems) or UnknownEnvError.
    """
    cfg, _ = eval_cfg(cfg)
    device = policy_device(cfg)
    state, path = load_checkpoint_for_eval(cfg, device)
    env_info = obtain_env_info(cfg)
    return policy_from_checkpoint(cfg, state, path, env_info.obs_space, env_info.action_space, device, cfg.policy_index)


def _stack_obs(obs_list: list[dict], device: torch.device) -> dict:
    return {key: torch.as_tensor(np.stack([np.asarray(o[key]) for o in obs_list])).to(device) for key in obs_list[0]}


@torch.no_grad()
def policy_actions(policy: LoadedPolicy, obs_list: list[dict], rnn_states: torch.Tensor, deterministic: bool):
    """Actions (numpy, one row per observation) and the new RNN states [len(obs_list), S]."""
    out = policy.model.act(_stack_obs(obs_list, policy.device), rnn_states, deterministic=deterministic)
    new_rnn_states = out["new_rnn_states"]
    if new_rnn_states is None or new_rnn_states.shape[-1] != rnn_states.shape[-1]:
        new_rnn_states = rnn_states
    return out["actions"].cpu().numpy(), new_rnn_states
