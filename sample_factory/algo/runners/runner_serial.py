"""sample-factory 2.x's import path of SerialRunner; it only re-exports `runner/runner.py`'s."""

from sample_factory.runner.runner import SerialRunner

__all__ = ["SerialRunner"]
