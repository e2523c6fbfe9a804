"""sample-factory 2.x's import path of the action distributions; it only re-exports
`model/action_distributions.py`."""

from sample_factory.model.action_distributions import (  # noqa: F401
    CategoricalActionDistribution,
    TupleActionDistribution,
    calc_num_action_parameters,
    get_action_distribution,
    is_continuous_action_space,
)
