"""sample-factory 2.x's import path of ParallelRunner; it only re-exports `runner/runner.py`'s."""

from sample_factory.runner.runner import ParallelRunner

__all__ = ["ParallelRunner"]
