"""Imports point down the layers (DESIGN.md, "Layout"), function-local imports included:

utils <- signal_slot <- algo/utils <- model, envs <- cfg <- algo (learning, sampling, protocol)
<- runner, pbt <- train, enjoy, eval, league, benchmark, export_onnx, plot, launcher

The league's pure parts sit low so the rollout worker can score games: league.games and league.elo
beside algo/utils, league.opponents (a component on the runner's loop) beside runner.

A module may import its own layer and the layers below it; nothing in sample_factory imports
sf_examples (env families plug in through entry points).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "sample_factory"

# (dotted prefix, layer); the longest matching prefix wins.
LAYERS = [
    ("sample_factory.utils", 0),
    ("sample_factory.signal_slot", 1),
    ("sample_factory.algo.utils", 2),
    ("sample_factory.model", 3),
    ("sample_factory.envs", 3),
    ("sample_factory.cfg", 4),
    ("sample_factory.algo", 5),
    ("sample_factory.runner", 6),
    ("sample_factory.pbt", 6),
    ("sample_factory.train", 7),
    ("sample_factory.enjoy", 7),
    ("sample_factory.eval", 7),
    ("sample_factory.league", 7),  # the match and league commands
    ("sample_factory.league.elo", 2),
    ("sample_factory.league.games", 2),
    ("sample_factory.league.snapshots", 2),
    ("sample_factory.league.opponents", 6),
    ("sample_factory.benchmark", 7),
    ("sample_factory.export_onnx", 7),
    ("sample_factory.convert_checkpoint", 7),
    ("sample_factory.huggingface", 7),
    ("sample_factory.plot", 7),
    ("sample_factory.launcher", 7),
    ("sample_factory", 8),  # the package's __init__
]
# sample-factory 2.x's import paths whose sensible home is elsewhere: thin modules that only
# re-export, for users' scripts. They sit on top, so nothing in the package depends on them.
REEXPORTS = [
    "sample_factory.algo.utils.action_distributions",
    "sample_factory.algo.utils.context",
    "sample_factory.algo.utils.env_info",
    "sample_factory.algo.runners",
    "sample_factory.utils.utils",
    "sample_factory.match",  # `python -m sample_factory.match`; the command lives in league/match.py
]
LAYERS += [(module, 8) for module in REEXPORTS]


def layer_of(module: str) -> int:
    matches = [(len(prefix), layer) for prefix, layer in LAYERS if module == prefix or module.startswith(prefix + ".")]
    assert matches, f"{module} is in no layer: add it to LAYERS"
    return max(matches)[1]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in the file, at any depth; `from a import b` counts as a.b
    when a.b is a module of the package, else as a."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                is_module = (PACKAGE.parent / Path(*candidate.split("."))).with_suffix(".py").exists()
                found.append((node.lineno, candidate if is_module else node.module))
    return found


def upward_imports() -> list[str]:
    problems: list[str] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        importer = module_name(path)
        for line, imported in sorted(set(imported_modules(path))):
            if imported.startswith("sf_examples"):
                problems.append(f"{importer}:{line} imports {imported} (examples plug in through entry points)")
            elif imported.startswith("sample_factory") and layer_of(imported) > layer_of(importer):
                problems.append(f"{importer}:{line} imports {imported}, a higher layer")
    return problems


def test_every_import_points_down_the_layers():
    problems = upward_imports()
    assert not problems, "\n".join(problems)


def test_the_check_sees_an_upward_import(tmp_path, monkeypatch):
    """The checker itself: a function-local import of a higher layer is caught."""
    package = tmp_path / "sample_factory"
    (package / "utils").mkdir(parents=True)
    (package / "runner").mkdir()
    (package / "__init__.py").write_text("")
    (package / "utils" / "__init__.py").write_text("")
    (package / "runner" / "__init__.py").write_text("")
    (package / "runner" / "runner.py").write_text("X = 1\n")
    (package / "utils" / "helpers.py").write_text(
        "def f():\n    from sample_factory.runner.runner import X\n    return X\n"
    )
    monkeypatch.setattr(__import__(__name__), "PACKAGE", package)
    assert upward_imports() == ["sample_factory.utils.helpers:2 imports sample_factory.runner.runner, a higher layer"]


@pytest.mark.parametrize(
    ("module", "layer"), [("sample_factory.algo.utils.rl_utils", 2), ("sample_factory.algo.learning.learner", 5)]
)
def test_longest_prefix_decides_the_layer(module, layer):
    assert layer_of(module) == layer


@pytest.mark.parametrize("module", REEXPORTS)
def test_a_reexport_module_says_so(module):
    path = PACKAGE.parent / (module.replace(".", "/") + ".py")
    if not path.exists():
        path = path.with_suffix("") / "__init__.py"
    for file in [path] if path.name != "__init__.py" else sorted(path.parent.glob("*.py")):
        docstring = ast.get_docstring(ast.parse(file.read_text())) or ""
        assert "re-export" in docstring or file.name == "__init__.py", f"{file} does not say it only re-exports"
