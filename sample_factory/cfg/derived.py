"""Values derived from the config, each computed here and nowhere else."""

from __future__ import annotations


def effective_recurrence(cfg) -> int:
    """The length of the sequences an RNN trains on: --recurrence, or the rollout with an RNN, 1 without."""
    if cfg.recurrence > 0:
        return cfg.recurrence
    return cfg.rollout if cfg.use_rnn else 1
