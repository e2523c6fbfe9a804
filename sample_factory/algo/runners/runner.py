"""sample-factory 2.x's import path of the runner and its observer; it only re-exports
`runner/runner.py` and `runner/observer.py`."""

from sample_factory.runner.observer import AlgoObserver
from sample_factory.runner.runner import Runner

__all__ = ["AlgoObserver", "Runner"]
