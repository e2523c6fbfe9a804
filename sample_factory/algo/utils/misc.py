"""Constants and the run status at sample-factory 2.x's import path."""

from __future__ import annotations

from sample_factory.utils.status import ExperimentStatus  # noqa: F401 (2.x's import path)

EPS = 1e-8

EPISODIC = "episodic"
LEARNER_ENV_STEPS = "learner_env_steps"
TRAIN_STATS = "train"
TIMING_STATS = "timing"
STATS_KEY = "stats"
SAMPLES_COLLECTED = "samples_collected"
POLICY_ID_KEY = "policy_id"
