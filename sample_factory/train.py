"""`run_rl(cfg)`: train until a stop condition; returns an exit status (0 = success, 2 = bad config)."""

from __future__ import annotations

import json
import logging
import random
import shutil
import sys
from pathlib import Path

import numpy as np
import torch

from sample_factory.cfg.validate import ConfigError, verify_cfg
from sample_factory.envs.create_env import obtain_env_info
from sample_factory.envs.env_utils import UnknownEnvError
from sample_factory.runner.runner import Runner
from sample_factory.utils.attr_dict import AttrDict
from sample_factory.utils.logging_setup import setup_logging

log = logging.getLogger(__name__)

BAD_CONFIG_STATUS = 2


def experiment_dir(cfg) -> Path:
    return Path(cfg.train_dir) / cfg.experiment


def _resumed_cfg(cfg) -> AttrDict:
    """A resumed experiment keeps its saved config; only flags typed now override it."""
    saved_path = experiment_dir(cfg) / "config.json"
    if cfg.restart_behavior != "resume" or not saved_path.is_file():
        return cfg
    saved = AttrDict(json.loads(saved_path.read_text()))
    overrides = {k: v for k, v in cfg.get("cli_args", {}).items() if saved.get(k) != v}
    merged = AttrDict({**cfg, **saved, **overrides})
    merged.cli_args = cfg.get("cli_args", {})
    for key, value in overrides.items():
        log.info("Overriding saved %s=%r with %r", key, saved.get(key), value)
    return merged


def _seed_everything(seed: int | None):
    if seed is None:
        return
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def make_runner(cfg) -> Runner:
    """Validates the config and builds the runner; raises ConfigError or UnknownEnvError."""
    verify_cfg(cfg)
    env_info = obtain_env_info(cfg)
    verify_cfg(cfg, env_info)
    exp_dir = experiment_dir(cfg)
    if cfg.restart_behavior == "overwrite" and exp_dir.exists():
        shutil.rmtree(exp_dir)
    _seed_everything(cfg.seed)
    return Runner(cfg, env_info, exp_dir)


def run_rl(cfg) -> int:
    setup_logging()
    try:
        cfg = _resumed_cfg(cfg)
        runner = make_runner(cfg)
    except ConfigError as e:
        for error in e.errors:
            print(f"error: {error}", file=sys.stderr)
        return BAD_CONFIG_STATUS
    except UnknownEnvError as e:
        print(f"error: {e}", file=sys.stderr)
        return BAD_CONFIG_STATUS
    setup_logging(log_file=experiment_dir(cfg) / "sf_log.txt")
    return runner.run()
