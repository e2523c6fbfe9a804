"""sample-factory 2.x checkpoints: recognized, converted on load, and converted back.

The file names and folders are the same on both sides (`checkpoint_p<policy>/checkpoint_<train
step, 9 digits>_<env steps>.pth`); the content differs:

| 2.x                                                     | here                                        |
|---------------------------------------------------------|---------------------------------------------|
| `train_step`, `env_steps`, `best_performance`, `curr_lr` at the top | `training_state` dict, `format_version` |
| `...running_mean_std.running_mean_std.<key>.running_mean / running_var` | `...running_mean_std.stats.<key>.mean / var` |
| `returns_normalizer.running_mean / running_var` [1], counts [1] | `returns_normalizer.mean / var` [], counts []|
| vector encoders `...mlp_head.<i>`                       | `...mlp.<i>`                                |
| conv encoders `...enc.conv_head.<i>`, `...enc.mlp_layers.<i>` | `...conv_head.<i>`, `...mlp.<i>`       |
| RNN cores `core.core.*` (and `actor_core.core.*`, ...)  | `core.rnn.*`                                |

Adam's state is keyed by parameter order, which is the same on both sides (encoder, core,
decoder, critic head, action head), so it converts with the weights.
"""

from __future__ import annotations

import re

# (2.x pattern, this project's replacement) applied in order to every model key
_KEY_RULES = [
    (r"\.running_mean_std\.running_mean_std\.", ".running_mean_std.stats."),
    (r"\.running_mean$", ".mean"),
    (r"\.running_var$", ".var"),
    (r"\.enc\.conv_head\.", ".conv_head."),
    (r"\.enc\.mlp_layers\.", ".mlp."),
    (r"\.mlp_head\.", ".mlp."),
    (r"(^|\.)(core)\.core\.", r"\1\2.rnn."),
    (r"(^|\.)(actor_core|critic_core)\.core\.", r"\1\2.rnn."),
]
_REVERSE_RULES = [
    (r"\.running_mean_std\.stats\.", ".running_mean_std.running_mean_std."),
    (r"(normalizer(\..*)?)\.mean$", r"\1.running_mean"),
    (r"(normalizer(\..*)?)\.var$", r"\1.running_var"),
    (r"\.conv_head\.", ".enc.conv_head."),
    (r"(^|\.)(core|actor_core|critic_core)\.rnn\.", r"\1\2.core."),
]
_SCALAR_KEYS = re.compile(r"(^returns_normalizer\.(mean|var|count)$)|(\.count$)")


def is_sf2_checkpoint(state: dict) -> bool:
    return "format_version" not in state and "model" in state and "train_step" in state and "env_steps" in state


def sf2_key_to_here(key: str) -> str:
    for pattern, replacement in _KEY_RULES:
        key = re.sub(pattern, replacement, key)
    return key


def here_key_to_sf2(key: str, conv_encoders: set[str]) -> str:
    """`conv_encoders`: the `...encoders.<name>` prefixes that are conv encoders (their mlp is enc.mlp_layers)."""
    match = re.search(r"^(.*\.encoders\.[^.]+)\.mlp\.(.*)$", key)
    if match:
        prefix, rest = match.groups()
        middle = ".enc.mlp_layers." if prefix in conv_encoders else ".mlp_head."
        return prefix + middle + rest
    for pattern, replacement in _REVERSE_RULES:
        key = re.sub(pattern, replacement, key)
    return key


def from_sf2(state: dict, format_version: int) -> dict:
    """A 2.x checkpoint as this project's checkpoint dict."""
    model = {}
    for key, tensor in state["model"].items():
        new_key = sf2_key_to_here(key)
        if _SCALAR_KEYS.search(new_key) and tensor.numel() == 1:
            tensor = tensor.reshape(())
        model[new_key] = tensor
    converted = {
        "format_version": format_version,
        "model": model,
        "training_state": {
            "policy_version": int(state["train_step"]),
            "train_step": int(state["train_step"]),
            "env_steps": int(state["env_steps"]),
            **({"learning_rate": float(state["curr_lr"])} if "curr_lr" in state else {}),
        },
        "converted_from": "sample-factory 2.x",
    }
    if "optimizer" in state:
        converted["optimizer"] = state["optimizer"]
    return converted


def to_sf2(state: dict) -> dict:
    """This project's checkpoint dict as 2.x writes it."""
    model_state = state["model"]
    conv_encoders = {key.split(".conv_head.")[0] for key in model_state if ".conv_head." in key}
    model = {}
    for key, tensor in model_state.items():
        new_key = here_key_to_sf2(key, conv_encoders)
        if _SCALAR_KEYS.search(key) and tensor.dim() == 0:
            tensor = tensor.reshape(1)
        model[new_key] = tensor
    training = state.get("training_state", {})
    converted = {
        "train_step": int(training.get("train_step", 0)),
        "env_steps": int(training.get("env_steps", 0)),
        "best_performance": float(training.get("best_performance", -1e9)),
        "model": model,
        "curr_lr": float(training.get("learning_rate", 0.0)),
    }
    if "optimizer" in state:
        converted["optimizer"] = state["optimizer"]
    return converted
