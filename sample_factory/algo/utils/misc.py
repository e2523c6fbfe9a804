"""Constants and the run status at sample-factory 2.x's import path."""

from __future__ import annotations

EPS = 1e-8

EPISODIC = "episodic"
LEARNER_ENV_STEPS = "learner_env_steps"
TRAIN_STATS = "train"
TIMING_STATS = "timing"
STATS_KEY = "stats"
SAMPLES_COLLECTED = "samples_collected"
POLICY_ID_KEY = "policy_id"


class ExperimentStatus:
    """What `runner.init()` and `runner.run()` return, with 2.x's values.

    `run_rl` and the command line map INTERRUPTED (stopped by Ctrl-C or SIGTERM after saving) to
    exit code 0: a run that saved and stopped on request ended normally.
    """

    SUCCESS = 0
    FAILURE = 1
    INTERRUPTED = 2
