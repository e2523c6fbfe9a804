"""Command-line parsing: `parse_sf_args` then env-specific flags, then `parse_full_cfg`."""

from __future__ import annotations

import argparse
import sys

from sample_factory.cfg.cfg import (
    add_basic_args,
    add_env_args,
    add_eval_args,
    add_model_args,
    add_pbt_args,
    add_rl_args,
)
from sample_factory.cfg.experiment import experiment_dir, merge_with_saved_cfg
from sample_factory.utils.attr_dict import AttrDict
from sample_factory.utils.experiment_folder import ExperimentFolder


class SfArgumentParser(argparse.ArgumentParser):
    """argparse with a one-line error message (exit code 2) instead of the usage dump.

    Once the library has added its flags (`library_flags_added()`), it remembers the names a
    script sets with `set_defaults`: those are the script's choices, kept like typed flags.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.script_defaults: set[str] = set()
        self._recording_defaults = False

    def library_flags_added(self):
        self._recording_defaults = True

    def set_defaults(self, **kwargs):
        if self._recording_defaults:
            self.script_defaults.update(kwargs)
        super().set_defaults(**kwargs)

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def make_parser(evaluation: bool = False) -> SfArgumentParser:
    parser = SfArgumentParser(
        prog=_program_name(),
        description="sample_factory: asynchronous PPO at the speed of the simulator",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        allow_abbrev=False,
    )
    add_basic_args(parser)
    add_rl_args(parser)
    add_model_args(parser)
    add_env_args(parser)
    add_pbt_args(parser)
    if evaluation:
        add_eval_args(parser)
    parser.library_flags_added()
    return parser


def _program_name() -> str:
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name:
        return f"python -m {spec.name.removesuffix('.__main__')}"
    return None


def parse_sf_args(argv: list[str] | None = None, evaluation: bool = False):
    """Returns `(parser, partial_cfg)`: `partial_cfg.env` is known, unknown flags are tolerated
    so that an env-specific script can add its own flags before `parse_full_cfg`."""
    if argv is None:
        argv = sys.argv[1:]
    parser = make_parser(evaluation)
    partial, _ = parser.parse_known_args(argv)
    return parser, AttrDict(vars(partial))


def parse_full_cfg(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> AttrDict:
    """Final parse: unknown flags are an error. `cfg.cli_args` holds the flags typed on the
    command line (they override a resumed experiment's saved config); `cfg.script_defaults`
    names the flags whose default the script changed with `parser.set_defaults`."""
    if argv is None:
        argv = sys.argv[1:]
    args = parser.parse_args(argv)
    cfg = AttrDict(vars(args))
    # The only keys that are not flags (cfg/experiment.py's INVOCATION_KEYS): cli_args and
    # command_line are sample-factory 2.x's, which users' scripts read.
    cfg.cli_args = _typed_flags(parser, argv)
    cfg.script_defaults = sorted(getattr(parser, "script_defaults", set()) & set(vars(args)))
    cfg.command_line = " ".join(argv)
    return cfg


def user_chosen_flags(cfg) -> set[str]:
    """Flags the user chose: typed on the command line, given a default by the script
    (`parser.set_defaults`), or holding a value other than the library's default (a cfg edited
    in code). The rest are the library's defaults, which --auto_tune may replace."""
    library = make_parser(evaluation=False)
    flags = [action for action in library._actions if action.dest != "help"]
    changed = {action.dest for action in flags if cfg[action.dest] != action.default}
    return set(cfg.cli_args) | set(cfg.script_defaults) | changed


def _typed_flags(parser: argparse.ArgumentParser, argv: list[str]) -> dict:
    """The values of the flags present in argv, parsed: only these override a saved config."""
    defaults_off = {action.dest: None for action in parser._actions if action.dest != "help"}
    sentinel_parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    for action in parser._actions:
        if action.dest == "help":
            continue
        kwargs = {"dest": action.dest, "default": argparse.SUPPRESS}
        if action.nargs == 0:
            kwargs["action"] = "store_const"
            kwargs["const"] = action.const
        else:
            kwargs["type"] = action.type
            kwargs["nargs"] = action.nargs
        sentinel_parser.add_argument(*action.option_strings, **kwargs)
    typed, _ = sentinel_parser.parse_known_args(argv)
    return {k: v for k, v in vars(typed).items() if k in defaults_off}


def default_cfg(env: str = "env", argv: list[str] | None = None, evaluation: bool = False) -> AttrDict:
    """A complete cfg with every default (for tests and embedding)."""
    argv = [f"--env={env}"] + list(argv or [])
    parser, _ = parse_sf_args(argv, evaluation)
    return parse_full_cfg(parser, argv)


def load_from_checkpoint(cfg) -> AttrDict:
    """sample-factory 2.x's call: the experiment's saved config with the flags typed now on top.

    Raises FileNotFoundError naming the file when the experiment has no saved config.
    """
    path = ExperimentFolder(experiment_dir(cfg)).config_file
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: no saved config for --experiment={cfg.experiment}")
    return merge_with_saved_cfg(cfg)


def maybe_load_from_checkpoint(cfg) -> AttrDict:
    """The saved config merged as in `load_from_checkpoint` (and filled in with the flags it
    lacks) when there is one; else `cfg` unchanged."""
    return merge_with_saved_cfg(cfg)
