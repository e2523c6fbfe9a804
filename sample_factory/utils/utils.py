"""sample-factory 2.x's grab-bag of helpers that user scripts import (`log`, `experiment_dir`,
`str2bool`, ...). It re-exports this project's homes of them; the few helpers of its own are
the ones 2.x scripts call that have no other home."""

from __future__ import annotations

import importlib.util
import logging
import os
import tempfile
from pathlib import Path

from sample_factory.cfg.cfg import str2bool  # noqa: F401
from sample_factory.utils.experiment_folder import ExperimentFolder
from sample_factory.utils.logging_setup import setup_logging

# 2.x's `log` prints from the first import on; so does this one.
setup_logging()
log = logging.getLogger("sample_factory")


def ensure_dir_exists(path) -> str:
    os.makedirs(path, exist_ok=True)
    return str(path)


def maybe_ensure_dir_exists(path, mkdir: bool) -> str:
    return ensure_dir_exists(path) if mkdir else str(path)


def safe_ensure_dir_exists(path) -> str:
    """As ensure_dir_exists; several processes may create the folder at once."""
    return ensure_dir_exists(path)


def experiments_dir(cfg, mkdir: bool = True) -> str:
    """`--train_dir`."""
    return maybe_ensure_dir_exists(Path(cfg.train_dir), mkdir)


def experiment_dir(cfg, mkdir: bool = True) -> str:
    """`--train_dir/--experiment`, as a string (2.x's return type), created unless mkdir=False."""
    return maybe_ensure_dir_exists(ExperimentFolder.from_cfg(cfg).path, mkdir)


def summaries_dir(experiment_dir_, mkdir: bool = True) -> str:
    """Where the TensorBoard files go: `<experiment>/.summary` (one folder per policy inside)."""
    return maybe_ensure_dir_exists(ExperimentFolder(experiment_dir_).summaries_dir, mkdir)


def cfg_file(cfg) -> str:
    return str(ExperimentFolder.from_cfg(cfg).config_file)


def project_tmp_dir(mkdir: bool = True) -> str:
    return maybe_ensure_dir_exists(Path(tempfile.gettempdir()) / f"sf2_{os.environ.get('USER', 'user')}", mkdir)


def is_module_available(module_name: str) -> bool:
    return importlib.util.find_spec(module_name) is not None


def set_attr_if_exists(obj, attr_name: str, attr_value) -> None:
    if hasattr(obj, attr_name):
        setattr(obj, attr_name, attr_value)


def static_vars(**kwargs):
    """Decorator: attributes on the function object, as C's static locals."""

    def decorate(func):
        for key, value in kwargs.items():
            setattr(func, key, value)
        return func

    return decorate
