"""Model cards, pushing an experiment folder to the Hugging Face Hub and loading one from it,
with sample-factory 2.x's names (`generate_model_card`, `push_to_hf`, `load_from_hf`).

What is pushed is the experiment folder as training left it (config.json, checkpoint_p*/, the
TensorBoard files, replay.mp4 when enjoy recorded one) plus a README.md model card, so that
`load_from_hf` followed by enjoy or a resumed training works on the other side.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from sample_factory.utils.experiment_folder import ExperimentFolder, atomic_write_text

log = logging.getLogger(__name__)

LIBRARY_NAME = "sample-factory"


class HubError(RuntimeError):
    """A hub operation that failed; the message names the repository and the reason."""


def _hub():
    try:
        import huggingface_hub
    except ImportError:
        raise HubError("the Hugging Face Hub needs huggingface_hub: pip install huggingface_hub") from None
    return huggingface_hub


def generate_model_card(
    dir_path: str | Path,
    algo: str,
    env: str,
    repo_name: str,
    rewards: list[float] | None = None,
    enjoy_name: str | None = None,
    train_name: str | None = None,
) -> Path:
    """Writes `dir_path/README.md`: the hub's metadata (library, tags, mean reward) and how to use it."""
    dir_path = Path(dir_path)
    enjoy_name = enjoy_name or "sf_examples.<env_module>.enjoy_<env>"
    train_name = train_name or "sf_examples.<env_module>.train_<env>"
    experiment = dir_path.name
    metrics = ""
    if rewards:
        mean, std = float(sum(rewards) / len(rewards)), float(_std(rewards))
        metrics = f"""model-index:
- name: {algo}
  results:
  - task:
      type: reinforcement-learning
      name: reinforcement-learning
    dataset:
      name: {env}
      type: {env}
    metrics:
    - type: mean_reward
      value: {mean:.2f} +/- {std:.2f}
      name: mean_reward
      verified: false
"""
    card = f"""---
library_name: {LIBRARY_NAME}
tags:
- deep-reinforcement-learning
- reinforcement-learning
- {LIBRARY_NAME}
{metrics}---

A(n) **{algo}** model trained on the **{env}** environment.

Download it with
```
python -m sample_factory.huggingface.load_from_hub -r {repo_name}
```

Play it with
```
python -m {enjoy_name} --algo={algo} --env={env} --train_dir=./train_dir --experiment={repo_name.split("/")[-1]}
```

Resume its training with
```
python -m {train_name} --algo={algo} --env={env} --train_dir=./train_dir --experiment={repo_name.split("/")[-1]} --restart_behavior=resume --train_for_env_steps=10000000000
```
(the experiment folder was `{experiment}` when it was pushed).
"""
    return atomic_write_text(ExperimentFolder(dir_path).model_card, card)


def _std(values: list[float]) -> float:
    mean = sum(values) / len(values)
    return (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5


def push_to_hf(dir_path: str | Path, repo_name: str) -> str:
    """Creates the repository if needed and uploads the experiment folder; returns the repo's URL."""
    hub = _hub()
    dir_path = Path(dir_path)
    config_file = ExperimentFolder(dir_path).config_file
    if not config_file.is_file():
        raise HubError(f"{dir_path} is not an experiment folder (no {config_file.name})")
    try:
        api = hub.HfApi()
        url = api.create_repo(repo_id=repo_name, exist_ok=True)
        api.upload_folder(repo_id=repo_name, folder_path=str(dir_path), commit_message=f"Upload {LIBRARY_NAME} model")
    except Exception as e:
        raise HubError(f"could not push {dir_path} to {repo_name}: {type(e).__name__}: {e}") from None
    log.info("Pushed %s to %s", dir_path, url)
    return str(url)


def load_from_hf(dir_path: str | Path, repo_id: str, **snapshot_kwargs) -> Path:
    """Downloads `repo_id` into `dir_path/<repo name>` (an experiment folder) and returns that path.

    `snapshot_kwargs` go to `huggingface_hub.snapshot_download` (revision, cache_dir, ...);
    HF_HUB_OFFLINE=1 loads from the local cache only.
    """
    hub = _hub()
    try:
        snapshot = Path(hub.snapshot_download(repo_id=repo_id, **snapshot_kwargs))
    except Exception as e:
        raise HubError(f"could not load {repo_id}: {type(e).__name__}: {e}") from None
    target = Path(dir_path) / repo_id.split("/")[-1]
    shutil.copytree(snapshot, target, dirs_exist_ok=True)
    config_file = ExperimentFolder(target).config_file
    if not config_file.is_file():
        raise HubError(f"{repo_id} holds no {config_file.name}: it is not a {LIBRARY_NAME} experiment")
    log.info("Loaded %s into %s (env %s)", repo_id, target, json.loads(config_file.read_text()).get("env"))
    return target
