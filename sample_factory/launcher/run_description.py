"""A sweep described in Python, with sample-factory 2.x's names.

A sweep module exposes `RUN_DESCRIPTION = RunDescription(run_name, experiments)`; each
`Experiment(name, cmd, param_generator)` adds one run per parameter combination to its base
command. `ParamGrid([(name, values), ...])` is the cartesian product; a tuple of names takes
tuples of values together (`(("use_rnn", "recurrence"), ([False, 1], [True, 16]))`).

A run is named `<index>_<experiment>_<short param>_<value>...` (2.x's names) and gets
`--experiment=<name> --train_dir=<train_dir>/<run_name>/<experiment>_<suffix>`, so its folder is
`<train_dir>/<run_name>/<experiment>_<suffix>/<name>` as in 2.x.
"""

from __future__ import annotations

import itertools
import random
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

LAUNCHER_DIR = "_launcher"  # beside the runs of one experiment: each run's status record and log
MAX_NAME_LEN = 100


class ParamGenerator:
    """Yields one dict of parameters per run."""

    def generate_params(self, randomize: bool = False) -> Iterator[dict]:
        raise NotImplementedError


class ParamList(ParamGenerator):
    """The combinations as given: a list of dicts."""

    def __init__(self, combinations: list[dict]):
        self.combinations = list(combinations)

    def generate_params(self, randomize: bool = False) -> Iterator[dict]:
        combinations = random.sample(self.combinations, len(self.combinations)) if randomize else self.combinations
        yield from (dict(c) for c in combinations)


class ParamGrid(ParamGenerator):
    """Every combination of the values, the first parameter varying slowest."""

    def __init__(self, grid_tuples):
        self.grid = list(grid_tuples)
        for names, values in self.grid:
            if isinstance(names, (list, tuple)):
                bad = [v for v in values if not isinstance(v, (list, tuple)) or len(v) != len(names)]
                if bad:
                    raise ValueError(f"ParamGrid: {names} takes {len(names)}-tuples of values, got {bad[0]!r}")

    def generate_params(self, randomize: bool = False) -> Iterator[dict]:
        combinations = list(itertools.product(*(values for _, values in self.grid)))
        if randomize:
            random.shuffle(combinations)
        for combination in combinations:
            params = {}
            for (names, _), value in zip(self.grid, combination):
                if isinstance(names, (list, tuple)):
                    params.update(zip(names, value))
                else:
                    params[names] = value
            yield params


def shorthands(names: list[str]) -> list[str]:
    """2.x's short parameter names: initials of the leading words, then 3+ letters of the last.

    `learning_rate` -> `l.rat`, `seed` -> `see`; the last word grows until the names differ.
    """
    taken: list[str] = []
    for name in names:
        words = re.split(r"[._-]", name)
        initials, last = [w[:1] for w in words[:-1]], words[-1]
        length = min(3, len(last))
        short = ".".join(initials + [last[:length]])
        while short in taken and length <= len(last):
            length += 1
            short = ".".join(initials + [last[:length]])
        taken.append(short)
    return taken


def _path_safe(value) -> str:
    return re.sub(r"[\s/\\]+", "-", str(value))


def command_argv(cmd: str, python: str) -> list[str]:
    """A command line as arguments, a leading `python` replaced by `python` (the interpreter that runs
    the sweep, so a run uses the same environment as its launcher)."""
    tokens = shlex.split(cmd)
    if tokens and re.fullmatch(r"python[0-9.]*", tokens[0]):
        tokens[0] = python
    return tokens


@dataclass
class SweepRun:
    """One command of a sweep, and where it keeps its files."""

    name: str
    cmd: str  # the whole command line, --experiment and --train_dir included
    params: dict
    root_dir: str  # <run_name>/<experiment>_<suffix>, relative to the launcher's --train_dir
    train_dir: Path
    env_vars: dict = field(default_factory=dict)

    @property
    def sweep_dir(self) -> Path:
        return self.train_dir / self.root_dir

    @property
    def experiment_dir(self) -> Path:
        return self.sweep_dir / self.name

    @property
    def status_path(self) -> Path:
        return self.sweep_dir / LAUNCHER_DIR / f"{self.name}.json"

    @property
    def log_path(self) -> Path:
        return self.sweep_dir / LAUNCHER_DIR / f"{self.name}.log"

    def argv(self, python: str) -> list[str]:
        return command_argv(self.cmd, python)


class Experiment:
    def __init__(self, name: str, cmd: str, param_generator=(), env_vars: dict | None = None):
        """`cmd`: the base command; `param_generator`: parameter dicts, one run each (a ParamGrid's
        `generate_params()`, or the ParamGrid itself)."""
        if isinstance(param_generator, ParamGenerator):
            param_generator = param_generator.generate_params()
        self.base_name = name
        self.cmd = cmd
        self.params = list(param_generator)
        self.env_vars = env_vars

    def generate_experiments(self, experiment_arg_name: str, customize_experiment_name: bool, param_prefix: str):
        """Yields (command, run name) per parameter combination (one run when there are none)."""
        for index, params in enumerate(self.params or [{}]):
            tokens = [self.cmd] + [shlex.quote(f"{param_prefix}{k}={v}") for k, v in params.items()]
            if customize_experiment_name:
                parts = [f"{short}_{_path_safe(v)}" for short, v in zip(shorthands(list(params)), params.values())]
                name = "_".join([f"{index:02d}", self.base_name, *parts])
            else:
                name = f"{index:02d}_{self.base_name}"
            tokens.append(f"{experiment_arg_name}={name}")
            yield " ".join(tokens), name


class RunDescription:
    def __init__(
        self,
        run_name: str,
        experiments: list[Experiment],
        experiment_arg_name: str = "--experiment",
        experiment_dir_arg_name: str = "--train_dir",
        customize_experiment_name: bool = True,
        param_prefix: str = "--",
    ):
        """
        run_name: the sweep's name and its folder under the launcher's --train_dir.
        experiment_arg_name / experiment_dir_arg_name: the flags that name a run and its train dir.
        customize_experiment_name: put each run's parameters in its name.
        param_prefix: "--" for sample_factory commands; "" for apps such as Hydra.
        """
        self.run_name = run_name
        self.experiments = experiments
        self.experiment_suffix = ""
        self.experiment_arg_name = experiment_arg_name
        self.experiment_dir_arg_name = experiment_dir_arg_name
        self.customize_experiment_name = customize_experiment_name
        self.param_prefix = param_prefix

    def runs(self, train_dir) -> list[SweepRun]:
        train_dir = Path(train_dir)
        runs = []
        for experiment in self.experiments:
            root_dir = f"{self.run_name}/{experiment.base_name}_{self.experiment_suffix}"
            generated = experiment.generate_experiments(
                self.experiment_arg_name, self.customize_experiment_name, self.param_prefix
            )
            for (cmd, name), params in zip(generated, experiment.params or [{}]):
                if len(name) > MAX_NAME_LEN:
                    raise ValueError(f"run name {name!r} is over {MAX_NAME_LEN} characters: shorten the parameters")
                cmd += f" {self.experiment_dir_arg_name}={shlex.quote(str(train_dir / root_dir))}"
                runs.append(SweepRun(name, cmd, dict(params), root_dir, train_dir, dict(experiment.env_vars or {})))
        names = [r.root_dir + "/" + r.name for r in runs]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"two runs of the sweep share the folder {duplicated[0]}: give experiments distinct names")
        return runs

    def generate_experiments(self, train_dir, makedirs: bool = True):
        """2.x's interface: yields (command, run name, root dir, env vars) per run."""
        for run in self.runs(train_dir):
            if makedirs:
                run.sweep_dir.mkdir(parents=True, exist_ok=True)
            yield run.cmd, run.name, run.root_dir, run.env_vars or None
