"""The model factory: where users plug in their own encoder, core, decoder or actor-critic.

sample-factory 2.x users import it as `sample_factory.algo.utils.context`, which re-exports it.
"""

from __future__ import annotations

from collections.abc import Callable

from sample_factory.model.core import make_default_core
from sample_factory.model.decoder import make_default_decoder
from sample_factory.model.encoder import make_default_encoder


def _default_encoder(cfg, obs_space):
    return make_default_encoder(cfg, obs_space)


def _default_core(cfg, input_size):
    return make_default_core(cfg, input_size)


def _default_decoder(cfg, decoder_input_size):
    return make_default_decoder(cfg, decoder_input_size)


class ModelFactory:
    """Holds the four functions that build a model; each can be replaced with register_*.

    make_model_encoder_func(cfg, obs_space) -> Encoder
    make_model_core_func(cfg, input_size) -> ModelCore
    make_model_decoder_func(cfg, decoder_input_size) -> Decoder
    make_actor_critic_func(cfg, obs_space, action_space) -> ActorCritic, as in sample-factory 2.x;
        None (the default) builds actor_critic.default_make_actor_critic_func's model. A function
        of an earlier version of this project, (model_factory, obs_space, action_space, cfg), is
        recognized by its first parameter's name and called so.
    """

    def __init__(self):
        self.make_model_encoder_func: Callable = _default_encoder
        self.make_model_core_func: Callable = _default_core
        self.make_model_decoder_func: Callable = _default_decoder
        self.make_actor_critic_func: Callable | None = None

    def register_encoder_factory(self, make_encoder_func: Callable) -> None:
        self.make_model_encoder_func = make_encoder_func

    def register_model_core_factory(self, make_core_func: Callable) -> None:
        self.make_model_core_func = make_core_func

    def register_decoder_factory(self, make_decoder_func: Callable) -> None:
        self.make_model_decoder_func = make_decoder_func

    def register_actor_critic_factory(self, make_actor_critic_func: Callable) -> None:
        self.make_actor_critic_func = make_actor_critic_func


# The documented API needs one factory per process (users register into it before run_rl);
# tests reset it with reset_global_model_factory().
_global_model_factory: ModelFactory | None = None


def global_model_factory() -> ModelFactory:
    global _global_model_factory
    if _global_model_factory is None:
        _global_model_factory = ModelFactory()
    return _global_model_factory


def reset_global_model_factory() -> None:
    """Forget every registration (the next global_model_factory() call builds a fresh default factory)."""
    global _global_model_factory
    _global_model_factory = None


def set_global_model_factory(model_factory: ModelFactory) -> None:
    """Installs a factory received from the parent process (custom models under spawn)."""
    global _global_model_factory
    _global_model_factory = model_factory
