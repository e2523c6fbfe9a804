"""Size limits that keep components small enough to read: a file is one job, the runner only orchestrates.

A file over the limit is split by what it does; only data tables (specs of envs, one entry
each) are exempt, and they are named here.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_FILE_LINES = 500
MAX_RUNNER_CLASS_LINES = 300
# Files that are mostly a table of data, with the reason.
DATA_TABLES: dict[str, str] = {}


def library_files() -> list[Path]:
    return sorted(p for folder in ("sample_factory", "sf_examples") for p in (ROOT / folder).rglob("*.py"))


def test_no_library_file_is_over_the_limit():
    too_long = []
    for path in library_files():
        name = str(path.relative_to(ROOT))
        lines = len(path.read_text().splitlines())
        if lines > MAX_FILE_LINES and name not in DATA_TABLES:
            too_long.append(f"{name}: {lines} lines")
    assert not too_long, f"over {MAX_FILE_LINES} lines (split by job): {too_long}"


def test_the_runner_only_orchestrates():
    path = ROOT / "sample_factory" / "runner" / "runner.py"
    (runner,) = [n for n in ast.parse(path.read_text()).body if isinstance(n, ast.ClassDef) and n.name == "Runner"]
    lines = runner.end_lineno - runner.lineno + 1
    assert lines <= MAX_RUNNER_CLASS_LINES, f"Runner is {lines} lines: move what is not orchestration out"


def test_data_tables_named_here_exist_and_are_over_the_limit():
    for name in DATA_TABLES:
        path = ROOT / name
        assert path.is_file(), f"{name} is named as a data table but does not exist"
        assert len(path.read_text().splitlines()) > MAX_FILE_LINES, f"{name} is within the limit: drop it here"
