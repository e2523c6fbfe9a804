"""`run_rl(cfg)`: train until a stop condition; returns an exit status (0 = success, 2 = bad config)."""

from __future__ import annotations

import logging
import pickle
import random
import shutil
import sys
import time

import numpy as np
import torch

from sample_factory.algo.sampling.auto_tune import auto_tune
from sample_factory.algo.shared_buffers import InsufficientMemoryError
from sample_factory.cfg.arguments import user_chosen_flags
from sample_factory.cfg.experiment import SavedConfigError, experiment_dir, merge_with_saved_cfg
from sample_factory.cfg.policy_params import PolicyParamsError
from sample_factory.cfg.validate import ConfigError, verify_cfg
from sample_factory.envs.create_env import EnvCreationError, EnvInfo, obtain_env_info
from sample_factory.envs.env_utils import UnknownEnvError, make_env_func_for
from sample_factory.model.model_factory import global_model_factory
from sample_factory.pbt.population_based_training import PopulationBasedTraining
from sample_factory.runner.runner import ParallelRunner, Runner, SerialRunner
from sample_factory.utils.attr_dict import AttrDict
from sample_factory.utils.checkpoint import CheckpointError
from sample_factory.utils.experiment_folder import ExperimentFolder, atomic_write
from sample_factory.utils.logging_setup import setup_logging

log = logging.getLogger(__name__)

BAD_CONFIG_STATUS = 2


def _seed_everything(seed: int | None):
    if seed is None:
        return
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def cached_env_info(cfg) -> EnvInfo:
    """--use_env_info_cache: the spaces saved in the experiment folder by an earlier start, else
    learned from a probe env and saved. A cache from other env flags is the user's to delete."""
    path = ExperimentFolder.from_cfg(cfg).env_info_cache
    if path.is_file():
        try:
            with open(path, "rb") as f:
                info = pickle.load(f)
            log.info("Env info from %s (--use_env_info_cache)", path)
            return info
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError) as e:
            log.warning("Ignoring the env info cache %s (%s)", path, e)
    info = obtain_env_info(cfg)
    atomic_write(path, lambda f: pickle.dump(info, f))
    return info


def _check_sendable_to_workers(cfg):
    """Worker processes receive the env factory and the model factory by pickling: a lambda or a
    function defined inside another cannot travel, which would fail deep inside process start."""
    what = {
        "the make_env_func of " + repr(cfg.env): make_env_func_for(cfg.env),
        "the model factory": global_model_factory(),
    }
    for name, obj in what.items():
        try:
            pickle.dumps(obj)
        except Exception as e:
            raise ConfigError(
                [
                    f"{name} cannot be sent to worker processes ({type(e).__name__}: {e}): define it at module"
                    " level, or run with --serial_mode=True"
                ]
            ) from None


def make_runner(cfg) -> tuple[AttrDict, Runner]:
    """Validates the config and builds the runner: (the run's final config, the runner), as in
    sample-factory 2.x. Raises ConfigError or UnknownEnvError."""
    verify_cfg(cfg)
    env_info = cached_env_info(cfg) if cfg.use_env_info_cache else obtain_env_info(cfg)
    if cfg.auto_tune:
        cfg, _ = auto_tune(cfg, env_info, keep=user_chosen_flags(cfg))
    verify_cfg(cfg, env_info)
    if not cfg.serial_mode:
        _check_sendable_to_workers(cfg)
    exp_dir = experiment_dir(cfg)
    if cfg.restart_behavior == "overwrite" and exp_dir.exists():
        shutil.rmtree(exp_dir)
    elif cfg.restart_behavior == "restart" and exp_dir.exists():
        kept = exp_dir.with_name(f"{exp_dir.name}_old_{time.strftime('%Y%m%d_%H%M%S')}")
        exp_dir.rename(kept)
        log.info("Kept the previous experiment as %s; starting from scratch", kept)
    _seed_everything(cfg.seed)
    runner = (SerialRunner if cfg.serial_mode else ParallelRunner)(cfg, env_info, exp_dir)
    if cfg.with_pbt:
        runner.register_observer(PopulationBasedTraining(cfg, runner))
    return cfg, runner


def run_rl(cfg) -> int:
    setup_logging()
    try:
        if cfg.restart_behavior == "resume":
            cfg = merge_with_saved_cfg(cfg)
        cfg, runner = make_runner(cfg)
    except ConfigError as e:
        for error in e.errors:
            print(f"error: {error}", file=sys.stderr)
        return BAD_CONFIG_STATUS
    except UnknownEnvError as e:
        print(f"error: {e}", file=sys.stderr)
        return BAD_CONFIG_STATUS
    except (CheckpointError, EnvCreationError, SavedConfigError, InsufficientMemoryError, PolicyParamsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    setup_logging(log_file=ExperimentFolder.from_cfg(cfg).log_file if cfg.log_to_file else None)
    return runner.run()
