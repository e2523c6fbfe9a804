"""The actor-critic: observation normalizer -> encoder -> core -> decoder -> value and policy heads.

Data contract (B = batch of agent steps, S = rnn_state_size_for(cfg), P = number of action parameters):
  forward(normalized_obs, rnn_states [B, S], values_only=False) returns a dict:
    "values"           [B]     critic output in NORMALIZED return units (see denormalize_values)
    "new_rnn_states"   [B, S]
    unless values_only:
    "action_logits"    [B, P]  raw distribution parameters, enough to rebuild the distribution
    "actions"          [B, *action_shape] in buffer format (action_distributions.action_buffer_spec)
    "log_prob_actions" [B]

Every caller goes through one of the entry points of `ActorCritic`, each normalize -> head -> core
-> tail written once: `act` (inference, enjoy, ONNX export: actions and values in return units),
`values_of` (the learner's bootstrap value) and `forward_sequences` (the learner's pass over
trajectories). `forward` keeps sample-factory 2.x's contract for code that calls it directly.
"""

from __future__ import annotations

import inspect

import gymnasium as gym
import torch
from torch import Tensor, nn

from sample_factory.algo.utils.running_mean_std import RunningMeanStd, RunningMeanStdDict
from sample_factory.model.action_distributions import (
    ActionDistribution,
    get_action_distribution,
    is_continuous_action_space,
)
from sample_factory.model.action_parameterization import (
    ActionParameterizationContinuousNonAdaptiveStddev,
    ActionParameterizationDefault,
)
from sample_factory.model.core import rnn_state_size
from sample_factory.model.encoder import ACTION_MASK_KEY
from sample_factory.model.model_factory import ModelFactory, global_model_factory
from sample_factory.model.model_utils import conv_memory_format, init_layer_weights, is_image_space, zero_layer_biases


def rnn_state_size_for(cfg) -> int:
    """Width of the RNN state buffer per agent: doubled with separate actor/critic weights (two cores)."""
    size = rnn_state_size(cfg)
    return size if cfg.actor_critic_share_weights else 2 * size


class ObservationNormalizer(nn.Module):
    """Prepares raw observations for the encoder; the result is what the model calls `normalized_obs`.

    Per key (except "action_mask", passed through unchanged): cast to float32; image keys
    (3-D Box) become (x - cfg.obs_subtract_mean) / cfg.obs_scale; then, with cfg.normalize_input,
    keys in cfg.normalize_input_keys (None = every non-image key) are standardized by running stats.
    """

    def __init__(self, obs_space: gym.spaces.Dict, cfg):
        super().__init__()
        self.image_keys = {key for key, space in obs_space.spaces.items() if is_image_space(space)}
        self.obs_subtract_mean = cfg.obs_subtract_mean
        self.obs_scale = cfg.obs_scale
        # The actor-critic sets it when its encoders take channels_last images (Encoder's docstring).
        self.channels_last_images = False

        self.running_mean_std: RunningMeanStdDict | None = None
        if cfg.normalize_input:
            keys = cfg.normalize_input_keys
            if keys is None:
                keys = [k for k in obs_space.spaces if k not in self.image_keys and k != ACTION_MASK_KEY]
            unknown = [k for k in keys if k not in obs_space.spaces or k == ACTION_MASK_KEY]
            if unknown:
                raise ValueError(
                    f"--normalize_input_keys has {unknown} which are not normalizable observation keys; "
                    f"choose from {[k for k in obs_space.spaces if k != ACTION_MASK_KEY]}"
                )
            if keys:
                self.running_mean_std = RunningMeanStdDict({k: obs_space[k].shape for k in keys})

    @torch.no_grad()
    def update_stats(self, obs_dict: dict[str, Tensor]) -> None:
        """Merges a batch into the running stats (a no-op without cfg.normalize_input)."""
        if self.running_mean_std is not None:
            self.running_mean_std.update(
                {k: obs_dict[k].float() for k in self.running_mean_std.keys() if k in obs_dict}
            )

    def forward(self, obs_dict: dict[str, Tensor], update_stats: bool = False) -> dict[str, Tensor]:
        """Returns a new dict; update_stats=True first merges this batch into the running stats."""
        if update_stats:
            self.update_stats(obs_dict)
        out = {}
        for key, value in obs_dict.items():
            if key == ACTION_MASK_KEY:
                out[key] = value
            elif key in self.image_keys:
                out[key] = self._scale_image(value)
            else:
                out[key] = value.float()
        if self.running_mean_std is not None:
            out = self.running_mean_std.normalize(out)
        return out

    def _scale_image(self, value: Tensor) -> Tensor:
        """One float copy, already in the encoder's memory format, scaled in place (a third of
        the time of `(x.float() - m) / s`, and no second copy when the encoder wants NHWC)."""
        if (
            self.channels_last_images
            and value.dim() >= 4
            and conv_memory_format(self.training, value.device) == torch.channels_last
        ):
            scaled = _to_channels_last_float(value)
        else:
            scaled = torch.empty(value.shape, dtype=torch.float32, device=value.device).copy_(value)
        if self.obs_subtract_mean != 0.0:
            scaled.sub_(self.obs_subtract_mean)
        if self.obs_scale != 1.0:
            scaled.mul_(1.0 / self.obs_scale)
        return scaled


def _to_channels_last_float(images: Tensor) -> Tensor:
    """[..., C, H, W] (any strides) -> float32 with channels innermost in memory (channels_last
    once the leading dims are flattened, a view), one channel plane at a time: on CPU that beats
    torch's converting copy into a permuted layout (README, "Measurements behind the code")."""
    c, h, w = images.shape[-3:]
    nhwc = torch.empty(images.shape[:-3] + (h, w, c), dtype=torch.float32, device=images.device)
    for channel in range(c):
        nhwc[..., channel].copy_(images[..., channel, :, :])
    return nhwc.movedim(-1, -3)


class ActorCritic(nn.Module):
    """Base class: normalizers, action distribution helpers and the head -> core -> tail pipeline.

    Subclasses build the networks and implement forward_head, forward_core, forward_tail
    (and forward_core_sequence for training on trajectories).
    """

    def __init__(self, obs_space: gym.spaces.Dict, action_space: gym.Space, cfg):
        super().__init__()
        self.cfg = cfg
        self.obs_space = obs_space
        self.action_space = action_space
        self.obs_normalizer = ObservationNormalizer(obs_space, cfg)
        self.returns_normalizer: RunningMeanStd | None = RunningMeanStd(()) if cfg.normalize_returns else None

    # normalization

    def normalize_obs(self, obs_dict: dict[str, Tensor], update_stats: bool = False) -> dict[str, Tensor]:
        return self.obs_normalizer(obs_dict, update_stats)

    def normalize_values(self, values: Tensor) -> Tensor:
        """Return units -> the critic's normalized units (identity without returns normalization)."""
        return values if self.returns_normalizer is None else self.returns_normalizer.normalize(values)

    def denormalize_values(self, values: Tensor) -> Tensor:
        """The critic's normalized units -> return units."""
        return values if self.returns_normalizer is None else self.returns_normalizer.denormalize(values)

    # actions

    def get_action_parameterization(self, core_output_size: int) -> nn.Module:
        if not self.cfg.adaptive_stddev and is_continuous_action_space(self.action_space):
            return ActionParameterizationContinuousNonAdaptiveStddev(self.cfg, core_output_size, self.action_space)
        return ActionParameterizationDefault(self.cfg, core_output_size, self.action_space)

    def action_distribution(self, action_logits: Tensor, action_mask: Tensor | None = None) -> ActionDistribution:
        return get_action_distribution(self.action_space, action_logits, action_mask)

    def initialize_weights(self) -> None:
        """The value and action heads get cfg.policy_initialization (with cfg.policy_init_gain); the
        trunk's Linear/Conv layers keep torch's fan-in-scaled weights with zero biases, and RNNs
        their own initialisation.

        This is what sample-factory 2.x does in effect (its trunks are TorchScript modules, which
        its initialiser does not match), and what its users' flags were tuned on. An orthogonal
        init of a widening layer preserves the input's norm, spreading it thin: CartPole's four
        inputs reach each of 512 units at 1/6 of the fan-in scale, and a policy on the library
        defaults took five times as many episodes to start learning (ISSUE 12).
        """
        method, gain = self.cfg.policy_initialization, self.cfg.policy_init_gain
        self.apply(zero_layer_biases)
        for head in (self.critic_linear, self.action_parameterization):
            head.apply(lambda m: init_layer_weights(m, method, gain))

    # precision and kernels of the submodules that offer a choice (ConvEncoder, ModelCoreRNN)

    def store_bf16_weights(self) -> None:
        """For inference on CPU: the bf16 layers keep their weights in bf16 (not cast on every call)."""
        self._apply_to_submodules("store_bf16_weights")

    def use_reference_ops(self) -> None:
        """Plain float32 torch ops from here on, no bf16 casts and no fused GRU (for ONNX export)."""
        self._apply_to_submodules("use_reference_ops")

    def _apply_to_submodules(self, method: str) -> None:
        for module in self.modules():
            if module is not self and hasattr(module, method):
                getattr(module, method)()

    # the pipeline

    def forward_head(self, normalized_obs_dict: dict[str, Tensor]) -> Tensor:
        """normalized obs (batch B) -> features [B, F]."""
        raise NotImplementedError

    def forward_core(self, head_output: Tensor, rnn_states: Tensor) -> tuple[Tensor, Tensor]:
        """One step: [B, F], [B, S] -> core output [B, H], new rnn states [B, S]."""
        raise NotImplementedError

    def forward_core_sequence(
        self, head_output: Tensor, rnn_states: Tensor, resets: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Trajectories: head_output [T, B, F], initial rnn_states [B, S], resets [T, B] (1 = zero the
        state before step t) -> (core output [T, B, H], final rnn states [B, S])."""
        raise NotImplementedError

    def forward_tail(
        self,
        core_output: Tensor,
        values_only: bool,
        sample_actions: bool,
        action_mask: Tensor | None = None,
        deterministic: bool = False,
    ) -> dict[str, Tensor]:
        """core output [B, H] -> dict with "values" [B] and, unless values_only, "action_logits" [B, P];
        with sample_actions also "actions" (buffer format) and "log_prob_actions" [B]."""
        raise NotImplementedError

    def forward(
        self, normalized_obs_dict: dict[str, Tensor], rnn_states: Tensor, values_only: bool = False
    ) -> dict[str, Tensor]:
        x = self.forward_head(normalized_obs_dict)
        x, new_rnn_states = self.forward_core(x, rnn_states)
        result = self.forward_tail(
            x, values_only, sample_actions=True, action_mask=normalized_obs_dict.get(ACTION_MASK_KEY)
        )
        result["new_rnn_states"] = new_rnn_states
        return result

    # the entry points: raw observations in, normalized here

    def act(
        self, obs_dict: dict[str, Tensor], rnn_states: Tensor | None = None, deterministic: bool = False
    ) -> dict[str, Tensor]:
        """Raw obs (batch B), rnn_states [B, S] (None without an RNN) -> "actions", "log_prob_actions",
        "action_logits", "values" in RETURN units, "new_rnn_states"."""
        normalized = self.normalize_obs(obs_dict)
        head = self.forward_head(normalized)
        if rnn_states is None:
            rnn_states = head.new_zeros(head.shape[0], 0)
        core, new_rnn_states = self.forward_core(head, rnn_states)
        out = self.forward_tail(
            core,
            values_only=False,
            sample_actions=True,
            action_mask=normalized.get(ACTION_MASK_KEY),
            deterministic=deterministic,
        )
        out["values"] = self.denormalize_values(out["values"])
        out["new_rnn_states"] = new_rnn_states
        return out

    def values_of(self, obs_dict: dict[str, Tensor], rnn_states: Tensor) -> Tensor:
        """Raw obs (batch B), rnn_states [B, S] -> the critic's values [B] in RETURN units."""
        head = self.forward_head(self.normalize_obs(obs_dict))
        core, _ = self.forward_core(head, rnn_states)
        return self.denormalize_values(self.forward_tail(core, values_only=True, sample_actions=False)["values"])

    def forward_sequences(
        self, obs_dict: dict[str, Tensor], rnn_init: Tensor, resets: Tensor, action_mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Raw obs [N, L, ...], initial rnn states [N, S], resets [N, L] (1 = zero the state before
        step l) -> values [N, L] in NORMALIZED units, action_logits [N, L, P]."""
        n, length = resets.shape
        # Normalized before flattening: the steps of a strided [N, L] slice are copied only once.
        normalized = self.normalize_obs(obs_dict)
        head = self.forward_head({k: v.reshape((n * length,) + v.shape[2:]) for k, v in normalized.items()})
        if rnn_init.shape[-1] > 0:
            head_seq = head.reshape(n, length, -1).transpose(0, 1)
            core_seq, _ = self.forward_core_sequence(head_seq, rnn_init, resets.transpose(0, 1))
            core = core_seq.transpose(0, 1).reshape(n * length, -1)
        else:
            core, _ = self.forward_core(head, rnn_init.new_zeros(n * length, 0))
        flat_mask = None if action_mask is None else action_mask.reshape(n * length, -1)
        out = self.forward_tail(core, values_only=False, sample_actions=False, action_mask=flat_mask)
        return out["values"].reshape(n, length), out["action_logits"].reshape(n, length, -1)

    def _policy_outputs(
        self,
        decoder_output: Tensor,
        result: dict[str, Tensor],
        sample_actions: bool,
        action_mask: Tensor | None,
        deterministic: bool,
    ) -> dict[str, Tensor]:
        """Adds action_logits (and actions, log_prob_actions) to `result`; shared by subclasses."""
        action_logits, distribution = self.action_parameterization(decoder_output, action_mask)
        result["action_logits"] = action_logits
        if sample_actions:
            actions = distribution.deterministic_actions() if deterministic else distribution.sample()
            result["actions"] = actions
            result["log_prob_actions"] = distribution.log_prob(actions)
        return result


class ActorCriticSharedWeights(ActorCritic):
    """One encoder, core and decoder; critic and policy heads both read the decoder output."""

    def __init__(self, model_factory, obs_space: gym.spaces.Dict, action_space: gym.Space, cfg):
        super().__init__(obs_space, action_space, cfg)
        self.encoder = model_factory.make_model_encoder_func(cfg, obs_space)
        self.core = model_factory.make_model_core_func(cfg, self.encoder.get_out_size())
        self.decoder = model_factory.make_model_decoder_func(cfg, self.core.get_out_size())
        decoder_out_size = self.decoder.get_out_size()
        self.critic_linear = nn.Linear(decoder_out_size, 1)
        self.action_parameterization = self.get_action_parameterization(decoder_out_size)
        self.obs_normalizer.channels_last_images = self.encoder.accepts_channels_last
        self.initialize_weights()

    def forward_head(self, normalized_obs_dict: dict[str, Tensor]) -> Tensor:
        return self.encoder(normalized_obs_dict)

    def forward_core(self, head_output: Tensor, rnn_states: Tensor) -> tuple[Tensor, Tensor]:
        return self.core(head_output, rnn_states)

    def forward_core_sequence(
        self, head_output: Tensor, rnn_states: Tensor, resets: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        return self.core.forward_sequence(head_output, rnn_states, resets)

    def forward_tail(
        self,
        core_output: Tensor,
        values_only: bool,
        sample_actions: bool,
        action_mask: Tensor | None = None,
        deterministic: bool = False,
    ) -> dict[str, Tensor]:
        decoder_output = self.decoder(core_output)
        result = {"values": self.critic_linear(decoder_output).squeeze(-1)}
        if values_only:
            return result
        return self._policy_outputs(decoder_output, result, sample_actions, action_mask, deterministic)


class ActorCriticSeparateWeights(ActorCritic):
    """Actor and critic each get their own encoder, core and decoder.

    The intermediate tensors are the actor's and critic's concatenated along the last dim:
    head output [B, F_actor + F_critic], core output [B, H_actor + H_critic], and the RNN state
    [B, S_actor + S_critic] (actor first) - hence rnn_state_size_for(cfg) is twice the single-core
    size. Both cores must have the same state size.
    """

    def __init__(self, model_factory, obs_space: gym.spaces.Dict, action_space: gym.Space, cfg):
        super().__init__(obs_space, action_space, cfg)
        self.actor_encoder = model_factory.make_model_encoder_func(cfg, obs_space)
        self.critic_encoder = model_factory.make_model_encoder_func(cfg, obs_space)
        self.actor_core = model_factory.make_model_core_func(cfg, self.actor_encoder.get_out_size())
        self.critic_core = model_factory.make_model_core_func(cfg, self.critic_encoder.get_out_size())
        self.actor_decoder = model_factory.make_model_decoder_func(cfg, self.actor_core.get_out_size())
        self.critic_decoder = model_factory.make_model_decoder_func(cfg, self.critic_core.get_out_size())

        self.critic_linear = nn.Linear(self.critic_decoder.get_out_size(), 1)
        self.action_parameterization = self.get_action_parameterization(self.actor_decoder.get_out_size())
        self.obs_normalizer.channels_last_images = all(
            getattr(e, "accepts_channels_last", False) for e in (self.actor_encoder, self.critic_encoder)
        )
        self.initialize_weights()

    def forward_head(self, normalized_obs_dict: dict[str, Tensor]) -> Tensor:
        return torch.cat([self.actor_encoder(normalized_obs_dict), self.critic_encoder(normalized_obs_dict)], dim=-1)

    def _split_head(self, head_output: Tensor) -> tuple[Tensor, Tensor]:
        return head_output.split([self.actor_encoder.get_out_size(), self.critic_encoder.get_out_size()], dim=-1)

    def _split_core(self, core_output: Tensor) -> tuple[Tensor, Tensor]:
        return core_output.split([self.actor_core.get_out_size(), self.critic_core.get_out_size()], dim=-1)

    @staticmethod
    def _split_states(rnn_states: Tensor) -> tuple[Tensor, Tensor]:
        # slicing (not chunk) so that widths 0 and 1 (a stateless core's placeholder) also work
        half = rnn_states.shape[-1] // 2
        return rnn_states[..., :half], rnn_states[..., half:]

    def forward_core(self, head_output: Tensor, rnn_states: Tensor) -> tuple[Tensor, Tensor]:
        actor_x, critic_x = self._split_head(head_output)
        actor_states, critic_states = self._split_states(rnn_states)
        actor_x, actor_states = self.actor_core(actor_x, actor_states)
        critic_x, critic_states = self.critic_core(critic_x, critic_states)
        return self._join(actor_x, critic_x, actor_states, critic_states)

    def forward_core_sequence(
        self, head_output: Tensor, rnn_states: Tensor, resets: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        actor_x, critic_x = self._split_head(head_output)
        actor_states, critic_states = self._split_states(rnn_states)
        actor_x, actor_states = self.actor_core.forward_sequence(actor_x, actor_states, resets)
        critic_x, critic_states = self.critic_core.forward_sequence(critic_x, critic_states, resets)
        return self._join(actor_x, critic_x, actor_states, critic_states)

    @staticmethod
    def _join(actor_x, critic_x, actor_states, critic_states) -> tuple[Tensor, Tensor]:
        return torch.cat([actor_x, critic_x], dim=-1), torch.cat([actor_states, critic_states], dim=-1)

    def forward_tail(
        self,
        core_output: Tensor,
        values_only: bool,
        sample_actions: bool,
        action_mask: Tensor | None = None,
        deterministic: bool = False,
    ) -> dict[str, Tensor]:
        actor_x, critic_x = self._split_core(core_output)
        result = {"values": self.critic_linear(self.critic_decoder(critic_x)).squeeze(-1)}
        if values_only:
            return result
        return self._policy_outputs(self.actor_decoder(actor_x), result, sample_actions, action_mask, deterministic)


def default_make_actor_critic_func(cfg, obs_space: gym.spaces.Dict, action_space: gym.Space) -> ActorCritic:
    """sample-factory 2.x's default actor-critic factory: shared or separate weights, parts from
    the global model factory."""
    return _library_actor_critic(global_model_factory(), obs_space, action_space, cfg)


def _library_actor_critic(model_factory, obs_space, action_space, cfg) -> ActorCritic:
    cls = ActorCriticSharedWeights if cfg.actor_critic_share_weights else ActorCriticSeparateWeights
    return cls(model_factory, obs_space, action_space, cfg)


def create_actor_critic(
    cfg, obs_space: gym.spaces.Dict, action_space: gym.Space, model_factory: ModelFactory | None = None
) -> ActorCritic:
    """Builds the actor-critic through `model_factory` (default: the process-wide global_model_factory())."""
    if model_factory is None:
        model_factory = global_model_factory()
    make = model_factory.make_actor_critic_func
    if make is None:
        return _library_actor_critic(model_factory, obs_space, action_space, cfg)
    if _takes_model_factory_first(make):
        return make(model_factory, obs_space, action_space, cfg)
    return make(cfg, obs_space, action_space)


def _takes_model_factory_first(func) -> bool:
    try:
        params = list(inspect.signature(func).parameters)
    except (TypeError, ValueError):
        return False
    return bool(params) and params[0] == "model_factory"
