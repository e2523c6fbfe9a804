"""sample-factory 2.x's import path of the model factory and the env registry; it only re-exports
`model/model_factory.py` and `envs/env_utils.global_env_registry`."""

from sample_factory.envs.env_utils import global_env_registry  # noqa: F401
from sample_factory.model.model_factory import (  # noqa: F401
    ModelFactory,
    global_model_factory,
    reset_global_model_factory,
    set_global_model_factory,
)
