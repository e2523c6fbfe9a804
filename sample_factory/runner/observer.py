"""`AlgoObserver`: code that watches a run from the runner's loop (PBT, custom summaries, a
curriculum), registered with `runner.register_observer(observer)` as in sample-factory 2.x.

Every hook runs in the main process, between the runner's own messages: a slow hook delays
reports and stop requests, not sampling or training. An exception in a hook stops the run with
a failure status, naming the observer and the hook.
"""

from __future__ import annotations


class AlgoObserver:
    def on_init(self, runner) -> None:
        """The runner and its components exist; nothing runs yet."""

    def on_connect_components(self, runner) -> None:
        """Every signal of the run is connected: an observer may connect its own slots now."""

    def on_start(self, runner) -> None:
        """Every process has started."""

    def on_training_step(self, runner, training_iteration_since_resume: int) -> None:
        """A learner finished a training iteration (counted over all policies since this process started)."""

    def extra_summaries(self, runner, policy_id: int, env_steps: int, writer) -> None:
        """At each report: write extra TensorBoard scalars of `policy_id` with `writer` (a SummaryWriter)."""

    def on_stop(self, runner) -> None:
        """The run has stopped: every process is joined, final checkpoints are written."""
