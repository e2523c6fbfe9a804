"""sample-factory 2.x's import path of the model factory; it only re-exports `model/model_factory.py`."""

from sample_factory.model.model_factory import (  # noqa: F401
    ModelFactory,
    global_model_factory,
    reset_global_model_factory,
    set_global_model_factory,
)
