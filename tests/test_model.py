"""Tests of the actor-critic model: encoders, cores, action distributions, normalizers, factory."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

from sample_factory.algo.utils.context import global_model_factory, reset_global_model_factory
from sample_factory.algo.utils.running_mean_std import RunningMeanStd, RunningMeanStdDict
from sample_factory.model.action_distributions import (
    action_buffer_spec,
    calc_num_action_parameters,
    get_action_distribution,
)
from sample_factory.model.actor_critic import (
    ActorCriticSeparateWeights,
    ActorCriticSharedWeights,
    create_actor_critic,
    rnn_state_size_for,
)
from sample_factory.model.core import ModelCoreRNN, make_default_core, rnn_state_size
from sample_factory.model.encoder import ConvEncoder, Encoder, make_default_encoder
from sample_factory.model.gru_sequence import gru_sequence
from sample_factory.utils.attr_dict import AttrDict

BATCH = 4


def make_cfg(**overrides) -> AttrDict:
    """Every model flag, with tiny layer sizes so tests stay fast."""
    cfg = AttrDict(
        encoder_mlp_layers=[16, 16],
        encoder_conv_architecture="convnet_simple",
        encoder_conv_mlp_layers=[16],
        encoder_conv_bf16=False,
        model_bf16=False,
        use_rnn=True,
        rnn_size=8,
        rnn_type="gru",
        rnn_num_layers=1,
        decoder_mlp_layers=[],
        nonlinearity="elu",
        policy_initialization="orthogonal",
        policy_init_gain=1.0,
        actor_critic_share_weights=True,
        adaptive_stddev=True,
        initial_stddev=1.0,
        continuous_tanh_scale=0.0,
        normalize_input=False,
        normalize_input_keys=None,
        obs_subtract_mean=0.0,
        obs_scale=1.0,
        normalize_returns=True,
    )
    cfg.update(overrides)
    return cfg


@pytest.fixture(autouse=True)
def fresh_model_factory():
    reset_global_model_factory()
    torch.manual_seed(0)
    yield
    reset_global_model_factory()


def vector_obs_space(dim: int = 5) -> gym.spaces.Dict:
    return gym.spaces.Dict({"obs": gym.spaces.Box(-1.0, 1.0, shape=(dim,), dtype=np.float32)})


def sample_obs(obs_space: gym.spaces.Dict, batch: int = BATCH) -> dict:
    return {key: torch.as_tensor(np.stack([space.sample() for _ in range(batch)])) for key, space in obs_space.items()}


def run_model(model, obs_space, batch: int = BATCH, obs=None):
    obs = sample_obs(obs_space, batch) if obs is None else obs
    rnn_states = torch.zeros(batch, rnn_state_size_for(model.cfg))
    return model(model.normalize_obs(obs), rnn_states)


# action spaces and model output shapes

ACTION_SPACES = {
    "discrete": gym.spaces.Discrete(3),
    "multi_discrete": gym.spaces.MultiDiscrete([2, 3, 4]),
    "box": gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32),
    "tuple": gym.spaces.Tuple([gym.spaces.Discrete(3), gym.spaces.Box(-1.0, 1.0, shape=(2,)), gym.spaces.Discrete(2)]),
}


@pytest.mark.parametrize("name", list(ACTION_SPACES))
def test_buffer_spec_and_num_params(name):
    expected = {
        "discrete": (((), torch.int64), 3),
        "multi_discrete": (((3,), torch.int64), 9),
        "box": (((2,), torch.float32), 4),
        "tuple": (((4,), torch.float32), 3 + 4 + 2),
    }[name]
    space = ACTION_SPACES[name]
    assert (action_buffer_spec(space), calc_num_action_parameters(space)) == expected


@pytest.mark.parametrize("name", list(ACTION_SPACES))
@pytest.mark.parametrize("rnn_type", ["gru", "lstm"])
def test_forward_shapes(name, rnn_type):
    action_space = ACTION_SPACES[name]
    cfg = make_cfg(rnn_type=rnn_type)
    obs_space = vector_obs_space()
    model = create_actor_critic(cfg, obs_space, action_space)
    out = run_model(model, obs_space)

    action_shape, action_dtype = action_buffer_spec(action_space)
    assert out["values"].shape == (BATCH,)
    assert out["action_logits"].shape == (BATCH, calc_num_action_parameters(action_space))
    assert out["actions"].shape == (BATCH, *action_shape)
    assert out["actions"].dtype == action_dtype
    assert out["log_prob_actions"].shape == (BATCH,)
    assert torch.isfinite(out["log_prob_actions"]).all()
    assert out["new_rnn_states"].shape == (BATCH, rnn_state_size(cfg))
    assert rnn_state_size(cfg) == (16 if rnn_type == "lstm" else 8)

    # the stored logits rebuild the same distribution: same log-prob for the same actions
    dist = model.action_distribution(out["action_logits"])
    assert torch.allclose(dist.log_prob(out["actions"]), out["log_prob_actions"])
    if name in ("discrete", "multi_discrete"):  # Gaussian samples are unclipped by design
        assert all(action_space.contains(a) for a in out["actions"].numpy())


def test_values_only_and_deterministic():
    cfg = make_cfg(use_rnn=False)
    obs_space = vector_obs_space()
    model = create_actor_critic(cfg, obs_space, gym.spaces.Discrete(4))
    obs = model.normalize_obs(sample_obs(obs_space))
    out = model(obs, torch.zeros(BATCH, 0), values_only=True)
    assert set(out) == {"values", "new_rnn_states"}

    x, _ = model.forward_core(model.forward_head(obs), torch.zeros(BATCH, 0))
    tail = model.forward_tail(x, values_only=False, sample_actions=True, deterministic=True)
    assert torch.equal(tail["actions"], tail["action_logits"].argmax(dim=1))
    no_sample = model.forward_tail(x, values_only=False, sample_actions=False)
    assert set(no_sample) == {"values", "action_logits"}


@pytest.mark.parametrize("share_weights", [True, False])
def test_every_entry_point_computes_the_same_policy(share_weights):
    """act (inference, enjoy, ONNX), values_of (bootstrap) and forward_sequences (training) agree."""
    cfg = make_cfg(actor_critic_share_weights=share_weights, normalize_input=True)
    obs_space = vector_obs_space()
    model = create_actor_critic(cfg, obs_space, gym.spaces.Discrete(4))
    model.returns_normalizer.update(torch.randn(64) * 10 + 3)  # values in return units differ from normalized ones
    model.obs_normalizer(sample_obs(obs_space, 32), update_stats=True)
    model.eval()
    n, length = 3, 5
    obs = {"obs": torch.randn(n, length, 5)}
    rnn = torch.randn(n, rnn_state_size_for(cfg))
    resets = torch.zeros(n, length)
    resets[1, 2] = 1.0
    with torch.no_grad():
        values_n, logits = model.forward_sequences(obs, rnn, resets)
        state = rnn
        for t in range(length):
            state = state * (1.0 - resets[:, t : t + 1])
            step = {"obs": obs["obs"][:, t]}
            out = model.act(step, state, deterministic=True)
            torch.testing.assert_close(out["action_logits"], logits[:, t])
            torch.testing.assert_close(out["values"], model.denormalize_values(values_n[:, t]))
            torch.testing.assert_close(model.values_of(step, state), out["values"])
            assert torch.equal(out["actions"], logits[:, t].argmax(dim=1))
            state = out["new_rnn_states"]


def test_act_without_rnn_takes_no_states():
    cfg = make_cfg(use_rnn=False)
    obs_space = vector_obs_space()
    model = create_actor_critic(cfg, obs_space, gym.spaces.Discrete(4))
    out = model.act(sample_obs(obs_space))
    assert out["actions"].shape == (BATCH,) and out["new_rnn_states"].shape == (BATCH, 0)


# encoders


@pytest.mark.parametrize(
    "arch, image_shape",
    [("convnet_simple", (3, 72, 128)), ("convnet_atari", (4, 84, 84)), ("resnet_impala", (4, 84, 84))],
)
def test_dict_obs_with_image(arch, image_shape):
    cfg = make_cfg(encoder_conv_architecture=arch, obs_subtract_mean=128.0, obs_scale=128.0)
    obs_space = gym.spaces.Dict(
        {
            "obs": gym.spaces.Box(0, 255, shape=image_shape, dtype=np.uint8),
            "measurements": gym.spaces.Box(-1.0, 1.0, shape=(3,), dtype=np.float32),
        }
    )
    encoder = make_default_encoder(cfg, obs_space)
    assert isinstance(encoder.encoders["obs"], ConvEncoder)
    assert encoder.get_out_size() == 16 + 16

    model = create_actor_critic(cfg, obs_space, gym.spaces.Discrete(3))
    obs = sample_obs(obs_space, batch=2)
    normalized = model.normalize_obs(obs)
    assert normalized["obs"].dtype == torch.float32
    assert normalized["obs"].min() >= -1.0 and normalized["obs"].max() < 1.0
    assert model.forward_head(normalized).shape == (2, 32)
    out = run_model(model, obs_space, batch=2, obs=obs)
    assert out["actions"].shape == (2,)


def test_conv_architectures_have_expected_shapes():
    cfg = make_cfg(encoder_conv_mlp_layers=[])
    sizes = {}
    for arch in ("convnet_simple", "convnet_atari", "resnet_impala"):
        cfg.encoder_conv_architecture = arch
        sizes[arch] = ConvEncoder(cfg, (4, 84, 84)).get_out_size()
    # 84 -> 20 -> 9 -> 4 (simple) / 7 (atari); impala: 84 -> 42 -> 21 -> 11
    assert sizes == {"convnet_simple": 128 * 4 * 4, "convnet_atari": 64 * 7 * 7, "resnet_impala": 32 * 11 * 11}


def test_too_small_image_gives_clear_error():
    with pytest.raises(ValueError, match="too small"):
        ConvEncoder(make_cfg(), (3, 8, 8))


def test_action_mask_key_is_not_encoded():
    cfg = make_cfg()
    obs_space = gym.spaces.Dict({"obs": gym.spaces.Box(-1, 1, (5,)), "action_mask": gym.spaces.MultiBinary(3)})
    encoder = make_default_encoder(cfg, obs_space)
    assert list(encoder.encoders) == ["obs"]


# action distributions


def test_categorical_matches_torch():
    logits = torch.randn(BATCH, 5)
    dist = get_action_distribution(gym.spaces.Discrete(5), logits)
    reference = torch.distributions.Categorical(logits=logits)
    actions = dist.sample()
    assert torch.allclose(dist.log_prob(actions), reference.log_prob(actions), atol=1e-6)
    assert torch.allclose(dist.entropy(), reference.entropy(), atol=1e-6)

    other_logits = torch.randn(BATCH, 5)
    other = get_action_distribution(gym.spaces.Discrete(5), other_logits)
    expected_kl = torch.distributions.kl_divergence(reference, torch.distributions.Categorical(logits=other_logits))
    assert torch.allclose(dist.kl_divergence(other), expected_kl, atol=1e-6)


def test_gaussian_matches_torch():
    space = gym.spaces.Box(-1.0, 1.0, shape=(3,))
    logits = torch.randn(BATCH, 6)
    dist = get_action_distribution(space, logits)
    mean, log_std = logits.chunk(2, dim=1)
    reference = torch.distributions.Normal(mean, log_std.exp())
    actions = dist.sample()
    assert torch.allclose(dist.log_prob(actions), reference.log_prob(actions).sum(1), atol=1e-5)
    assert torch.allclose(dist.entropy(), reference.entropy().sum(1), atol=1e-5)
    assert torch.equal(dist.deterministic_actions(), mean)

    other_logits = torch.randn(BATCH, 6)
    other = get_action_distribution(space, other_logits)
    other_mean, other_log_std = other_logits.chunk(2, dim=1)
    other_reference = torch.distributions.Normal(other_mean, other_log_std.exp())
    expected_kl = torch.distributions.kl_divergence(reference, other_reference)
    assert torch.allclose(dist.kl_divergence(other), expected_kl.sum(1), atol=1e-5)


def test_gaussian_log_std_is_clamped():
    logits = torch.tensor([[0.0, -1000.0], [0.0, 1000.0]])
    dist = get_action_distribution(gym.spaces.Box(-1, 1, (1,)), logits)
    assert torch.isfinite(dist.log_prob(torch.tensor([[0.5], [0.5]]))).all()
    assert torch.isfinite(dist.entropy()).all()


def test_multi_discrete_and_tuple_sum_components():
    logits = torch.randn(BATCH, 2 + 3)
    dist = get_action_distribution(gym.spaces.MultiDiscrete([2, 3]), logits)
    first = torch.distributions.Categorical(logits=logits[:, :2])
    second = torch.distributions.Categorical(logits=logits[:, 2:])
    actions = dist.sample()
    expected = first.log_prob(actions[:, 0]) + second.log_prob(actions[:, 1])
    assert torch.allclose(dist.log_prob(actions), expected, atol=1e-6)
    assert torch.allclose(dist.entropy(), first.entropy() + second.entropy(), atol=1e-6)

    space = ACTION_SPACES["tuple"]
    logits = torch.randn(BATCH, 9)
    dist = get_action_distribution(space, logits)
    actions = dist.sample()
    cat_a = torch.distributions.Categorical(logits=logits[:, :3])
    normal = torch.distributions.Normal(logits[:, 3:5], logits[:, 5:7].exp())
    cat_b = torch.distributions.Categorical(logits=logits[:, 7:])
    expected = (
        cat_a.log_prob(actions[:, 0].long())
        + normal.log_prob(actions[:, 1:3]).sum(1)
        + cat_b.log_prob(actions[:, 3].long())
    )
    assert torch.allclose(dist.log_prob(actions), expected, atol=1e-5)
    assert torch.allclose(dist.entropy(), cat_a.entropy() + normal.entropy().sum(1) + cat_b.entropy(), atol=1e-5)


def test_masked_actions_are_never_sampled():
    space = gym.spaces.Discrete(4)
    logits = torch.zeros(1000, 4)
    logits[:, 2] = 10.0  # the masked action would otherwise dominate
    mask = torch.tensor([1, 0, 0, 1]).expand(1000, 4)
    dist = get_action_distribution(space, logits, mask)
    actions = dist.sample()
    assert set(actions.tolist()) == {0, 3}
    assert dist.log_prob(torch.full((1000,), 2)).exp().max() < 1e-30
    assert torch.allclose(dist.entropy(), torch.full((1000,), np.log(2.0)), atol=1e-6)
    assert dist.deterministic_actions().tolist() == [0] * 1000

    md = gym.spaces.MultiDiscrete([2, 3])
    mask = torch.tensor([0, 1, 1, 0, 1]).expand(1000, 5)
    actions = get_action_distribution(md, torch.randn(1000, 5), mask).sample()
    assert (actions[:, 0] == 1).all()
    assert set(actions[:, 1].tolist()) == {0, 2}


def test_model_reads_action_mask_from_obs():
    cfg = make_cfg()
    obs_space = gym.spaces.Dict({"obs": gym.spaces.Box(-1, 1, (5,)), "action_mask": gym.spaces.MultiBinary(3)})
    model = create_actor_critic(cfg, obs_space, gym.spaces.Discrete(3))
    obs = sample_obs(obs_space, batch=200)
    obs["action_mask"] = torch.tensor([0, 0, 1], dtype=torch.int8).expand(200, 3)
    out = run_model(model, obs_space, batch=200, obs=obs)
    assert (out["actions"] == 2).all()
    assert torch.allclose(out["log_prob_actions"], torch.zeros(200), atol=1e-6)


def test_tanh_scale_and_non_adaptive_stddev():
    cfg = make_cfg(use_rnn=False, adaptive_stddev=False, initial_stddev=0.5, continuous_tanh_scale=2.0)
    obs_space = vector_obs_space()
    model = create_actor_critic(cfg, obs_space, gym.spaces.Box(-1, 1, (3,)))
    obs = {"obs": torch.randn(BATCH, 5) * 100}
    out = run_model(model, obs_space, obs=obs)
    mean, log_std = out["action_logits"].chunk(2, dim=1)
    assert mean.abs().max() <= 2.0
    core_out = model.forward_core(model.forward_head(obs), torch.zeros(BATCH, 0))[0]
    raw_mean = model.action_parameterization.distribution_linear(core_out)
    assert torch.allclose(mean, torch.tanh(raw_mean / 2.0) * 2.0)
    assert torch.allclose(log_std, torch.full_like(log_std, np.log(0.5)))
    params = dict(model.named_parameters())
    assert params["action_parameterization.log_std"].shape == (3,)


# cores


@pytest.mark.parametrize("rnn_type,num_layers", [("gru", 1), ("gru", 2), ("lstm", 1)])
@pytest.mark.parametrize("with_resets", [False, True])
def test_forward_sequence_matches_step_loop(rnn_type, num_layers, with_resets):
    cfg = make_cfg(rnn_type=rnn_type, rnn_num_layers=num_layers)
    core = ModelCoreRNN(cfg, input_size=6)
    seq_len, batch = 7, 3
    x = torch.randn(seq_len, batch, 6)
    states = torch.randn(batch, rnn_state_size(cfg))
    resets = torch.zeros(seq_len, batch)
    if with_resets:
        resets[0, 1] = 1.0
        resets[3, 0] = 1.0
        resets[3, 2] = 1.0
        resets[5, 1] = 1.0

    out, final = core.forward_sequence(x, states, resets)

    expected_out = []
    h = states
    for t in range(seq_len):
        h = torch.where(resets[t].unsqueeze(1) > 0, torch.zeros_like(h), h)
        o, h = core(x[t], h)
        expected_out.append(o)
    assert out.shape == (seq_len, batch, cfg.rnn_size)
    assert torch.allclose(out, torch.stack(expected_out), atol=1e-5)
    assert torch.allclose(final, h, atol=1e-5)


def test_bool_resets_are_accepted():
    core = ModelCoreRNN(make_cfg(), input_size=6)
    x, states = torch.randn(4, 2, 6), torch.randn(2, 8)
    resets = torch.zeros(4, 2, dtype=torch.bool)
    resets[2, 1] = True
    out_bool, final_bool = core.forward_sequence(x, states, resets)
    out_float, final_float = core.forward_sequence(x, states, resets.float())
    assert torch.equal(out_bool, out_float) and torch.equal(final_bool, final_float)


def _gru_step_by_step(gru: nn.GRU, x, h0, resets):
    """The reference: torch's own GRU, one step at a time, states zeroed where resets say."""
    outputs, h = [], h0
    for t in range(x.shape[0]):
        h = h * (1 - resets[t]).unsqueeze(1)
        out, hidden = gru(x[t : t + 1], h.unsqueeze(0))
        outputs.append(out[0])
        h = hidden[0]
    return torch.stack(outputs), h


def test_gru_sequence_matches_torch_gru_and_its_gradients():
    torch.manual_seed(0)
    gru = nn.GRU(5, 6).double()
    x = torch.randn(9, 4, 5, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    resets = (torch.rand(9, 4) < 0.25).double()
    resets[4, :] = 1.0
    grad_out, grad_h = torch.randn(9, 4, 6, dtype=torch.float64), torch.randn(4, 6, dtype=torch.float64)
    inputs = [x, h0, *gru.parameters()]

    results = []
    for run in (_gru_step_by_step, gru_sequence):
        out, h_last = run(gru, x, h0, resets)
        loss = (out * grad_out).sum() + (h_last * grad_h).sum()
        results.append((out, h_last, torch.autograd.grad(loss, inputs)))
    (out_ref, h_ref, grads_ref), (out, h_last, grads) = results
    assert torch.allclose(out, out_ref, atol=1e-12) and torch.allclose(h_last, h_ref, atol=1e-12)
    for name, got, expected in zip(["x", "h0", "w_ih", "w_hh", "b_ih", "b_hh"], grads, grads_ref):
        assert torch.allclose(got, expected, atol=1e-10), name
    # no resets at all: the same as one call of torch's GRU
    out, h_last = gru_sequence(gru, x, h0)
    expected, hidden = gru(x, h0.unsqueeze(0))
    assert torch.allclose(out, expected, atol=1e-12) and torch.allclose(h_last, hidden[0], atol=1e-12)


def test_gru_sequence_bf16_matmuls_stay_close_and_float32():
    torch.manual_seed(0)
    gru = nn.GRU(64, 32)
    x = torch.randn(16, 8, 64, requires_grad=True)
    h0 = torch.zeros(8, 32)
    resets = (torch.rand(16, 8) < 0.1).float()
    out32, _ = gru_sequence(gru, x, h0, resets)
    out16, _ = gru_sequence(gru, x, h0, resets, matmul_dtype=torch.bfloat16)
    assert out16.dtype == torch.float32
    assert (out16 - out32).abs().max() < 0.03
    out16.sum().backward()
    assert x.grad.dtype == torch.float32 and all(p.grad.dtype == torch.float32 for p in gru.parameters())


def test_bf16_model_inference_with_bf16_weights_matches_float32():
    torch.manual_seed(0)
    obs_space = gym.spaces.Dict({"obs": gym.spaces.Box(0, 255, (3, 72, 128), np.uint8)})
    fp32 = create_actor_critic(make_cfg(rnn_size=32), obs_space, gym.spaces.Discrete(3)).eval()
    bf16 = create_actor_critic(make_cfg(rnn_size=32, model_bf16=True), obs_space, gym.spaces.Discrete(3)).eval()
    bf16.store_bf16_weights()
    bf16.load_state_dict(fp32.state_dict())  # float32 weights, as the learner publishes them
    assert bf16.core.rnn.weight_hh_l0.dtype == torch.bfloat16
    obs = {"obs": torch.randint(0, 256, (BATCH, 3, 72, 128), dtype=torch.uint8)}
    rnn_states = torch.randn(BATCH, 32)
    with torch.no_grad():
        expected = fp32.forward_tail(
            fp32.forward_core(fp32.forward_head(fp32.normalize_obs(obs)), rnn_states)[0], True, False
        )
        head = bf16.forward_head(bf16.normalize_obs(obs))
        core, new_states = bf16.forward_core(head, rnn_states)
        got = bf16.forward_tail(core, True, False)
    assert head.dtype == core.dtype == new_states.dtype == got["values"].dtype == torch.float32
    assert torch.allclose(got["values"], expected["values"], atol=0.05), (got["values"], expected["values"])


@pytest.mark.parametrize("share_weights", [True, False])
def test_stateless_model_passes_placeholder_state_through(share_weights):
    # the trajectory buffers keep one placeholder float of RNN state when use_rnn is off
    cfg = make_cfg(use_rnn=False, actor_critic_share_weights=share_weights)
    obs_space = vector_obs_space()
    model = create_actor_critic(cfg, obs_space, gym.spaces.Discrete(2))
    placeholder = torch.full((BATCH, 1), -1.0)
    out = model(model.normalize_obs(sample_obs(obs_space)), placeholder)
    assert torch.equal(out["new_rnn_states"], placeholder)


def test_identity_core_and_state_sizes():
    cfg = make_cfg(use_rnn=False)
    core = make_default_core(cfg, 6)
    x = torch.randn(5, 2, 6)
    out, states = core.forward_sequence(x, torch.zeros(2, 0), torch.zeros(5, 2))
    assert torch.equal(out, x) and states.shape == (2, 0)
    assert rnn_state_size(cfg) == 0 and rnn_state_size_for(cfg) == 0
    assert rnn_state_size(make_cfg(rnn_type="lstm", rnn_num_layers=2)) == 2 * 2 * 8


# normalizers


def test_running_mean_std_matches_numpy():
    rng = np.random.default_rng(0)
    batches = [rng.normal(3.0, 2.0, size=(n, 2, 3)) for n in (1, 7, 50, 13)]
    rms = RunningMeanStd((2, 3))
    for batch in batches:
        rms.update(torch.as_tensor(batch, dtype=torch.float32))
    everything = np.concatenate(batches)
    np.testing.assert_allclose(rms.mean.numpy(), everything.mean(0), rtol=1e-5)
    np.testing.assert_allclose(rms.var.numpy(), everything.var(0), rtol=1e-5)
    assert rms.count.item() == len(everything)

    x = torch.as_tensor(everything[:4], dtype=torch.float32)
    assert torch.allclose(rms.denormalize(rms.normalize(x)), x, atol=1e-4)
    assert rms.normalize(torch.full((1, 2, 3), 1e6)).max() == 5.0
    assert {"mean", "var", "count"} <= set(rms.state_dict())


def test_running_mean_std_dict_and_state_dict_copy():
    rms = RunningMeanStdDict({"a": (2,), "b": ()})
    rms.update({"a": torch.randn(10, 2) + 4, "b": torch.randn(10), "c": torch.randn(10)})
    copy = RunningMeanStdDict({"a": (2,), "b": ()})
    copy.load_state_dict(rms.state_dict())
    x = {"a": torch.randn(3, 2), "c": torch.randn(3)}
    assert torch.equal(copy.normalize(x)["a"], rms.normalize(x)["a"])
    assert copy.normalize(x)["c"] is x["c"]


def test_obs_and_returns_normalization_in_model():
    cfg = make_cfg(normalize_input=True, use_rnn=False)
    obs_space = gym.spaces.Dict(
        {"obs": gym.spaces.Box(-10, 10, (3,)), "image": gym.spaces.Box(0, 255, (3, 36, 36), dtype=np.uint8)}
    )
    model = create_actor_critic(cfg, obs_space, gym.spaces.Discrete(2))
    assert list(model.obs_normalizer.running_mean_std.keys()) == ["obs"]

    obs = {"obs": torch.randn(64, 3) * 5 + 2, "image": torch.zeros(64, 3, 36, 36, dtype=torch.uint8)}
    before = model.normalize_obs(obs)
    assert torch.allclose(before["obs"], obs["obs"].clamp(-5, 5), atol=1e-4)  # no stats yet: only the clip
    normalized = model.normalize_obs(obs, update_stats=True)
    assert torch.allclose(normalized["obs"].mean(0), torch.zeros(3), atol=1e-4)
    assert torch.allclose(normalized["obs"].std(0, unbiased=False), torch.ones(3), atol=1e-3)

    returns = torch.randn(100) * 10 + 5
    model.returns_normalizer.update(returns)
    assert torch.allclose(model.denormalize_values(model.normalize_values(returns)), returns, atol=1e-4)

    plain = create_actor_critic(make_cfg(normalize_returns=False), obs_space, gym.spaces.Discrete(2))
    assert plain.returns_normalizer is None and plain.denormalize_values(returns) is returns


def test_training_scales_images_into_channels_last_with_the_same_values():
    """On CPU the learner's encoder takes NHWC: images are scaled straight into it, also from a
    strided [trajectories, steps] slice, whose flattened view must need no further copy."""
    cfg = make_cfg(obs_subtract_mean=10.0, obs_scale=255.0)
    obs_space = gym.spaces.Dict({"obs": gym.spaces.Box(0, 255, (3, 36, 40), dtype=np.uint8)})
    model = create_actor_critic(cfg, obs_space, gym.spaces.Discrete(2))
    trajectories = torch.randint(0, 256, (5, 7, 3, 36, 40), dtype=torch.uint8)
    steps = trajectories[:, :6]  # the learner's slice: every step but the last, not contiguous
    expected = (steps.float() - 10.0) / 255.0

    model.eval()
    assert model.normalize_obs({"obs": steps})["obs"].is_contiguous()
    model.train()
    scaled = model.normalize_obs({"obs": steps})["obs"]
    assert scaled.shape == steps.shape and torch.allclose(scaled, expected)
    flat = scaled.reshape(30, 3, 36, 40)
    assert flat.data_ptr() == scaled.data_ptr() and flat.is_contiguous(memory_format=torch.channels_last)
    single = model.normalize_obs({"obs": steps[:, 0]})["obs"]
    assert single.is_contiguous(memory_format=torch.channels_last) and torch.allclose(single, expected[:, 0])


# separate weights, factory, gradients


def test_separate_weights_model():
    cfg = make_cfg(actor_critic_share_weights=False, rnn_type="lstm")
    obs_space = vector_obs_space()
    model = create_actor_critic(cfg, obs_space, gym.spaces.Discrete(3))
    assert isinstance(model, ActorCriticSeparateWeights)
    assert rnn_state_size_for(cfg) == 2 * rnn_state_size(cfg) == 32
    out = run_model(model, obs_space)
    assert out["new_rnn_states"].shape == (BATCH, 32)
    assert out["values"].shape == (BATCH,)

    # the sequence version agrees with stepping
    seq_len = 3
    head = model.forward_head(model.normalize_obs(sample_obs(obs_space, seq_len * BATCH))).view(seq_len, BATCH, -1)
    states = torch.randn(BATCH, 32)
    resets = torch.zeros(seq_len, BATCH)
    resets[1, 0] = 1.0
    seq_out, seq_final = model.forward_core_sequence(head, states, resets)
    for t in range(seq_len):
        states = states * (1 - resets[t]).unsqueeze(1)
        step_out, states = model.forward_core(head[t], states)
        assert torch.allclose(seq_out[t], step_out, atol=1e-5)
    assert torch.allclose(seq_final, states, atol=1e-5)


class TinyEncoder(Encoder):
    def __init__(self, cfg, obs_space):
        super().__init__(cfg)
        self.linear = nn.Linear(obs_space["obs"].shape[0], 7)
        self.encoder_out_size = 7

    def forward(self, obs_dict):
        return torch.relu(self.linear(obs_dict["obs"]))


def test_custom_encoder_via_global_factory():
    global_model_factory().register_encoder_factory(TinyEncoder)
    cfg = make_cfg()
    obs_space = vector_obs_space()
    model = create_actor_critic(cfg, obs_space, gym.spaces.Discrete(2))
    assert isinstance(model.encoder, TinyEncoder)
    assert model.core.rnn.input_size == 7
    assert run_model(model, obs_space)["actions"].shape == (BATCH,)

    reset_global_model_factory()
    assert not isinstance(create_actor_critic(cfg, obs_space, gym.spaces.Discrete(2)).encoder, TinyEncoder)


@pytest.mark.parametrize("share_weights", [True, False])
@pytest.mark.parametrize("action_space_name", ["discrete", "box"])
def test_gradients_reach_every_parameter(share_weights, action_space_name):
    cfg = make_cfg(actor_critic_share_weights=share_weights, decoder_mlp_layers=[8], adaptive_stddev=False)
    obs_space = vector_obs_space()
    model = create_actor_critic(cfg, obs_space, ACTION_SPACES[action_space_name])
    # nonzero states: with zero states the recurrent weights would get no gradient at all
    rnn_states = torch.randn(BATCH, rnn_state_size_for(cfg))
    out = model(model.normalize_obs(sample_obs(obs_space)), rnn_states)
    dist = model.action_distribution(out["action_logits"])
    loss = -(dist.log_prob(out["actions"]).mean()) + out["values"].square().mean() - dist.entropy().mean()
    loss.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


@pytest.mark.parametrize("init", ["orthogonal", "xavier_uniform", "torch_default"])
def test_policy_initialization_sets_the_heads_and_the_trunk_keeps_fan_in_scale(init):
    torch.manual_seed(0)
    cfg = make_cfg(policy_initialization=init, use_rnn=False, encoder_mlp_layers=[256, 256])
    model = create_actor_critic(cfg, vector_obs_space(), gym.spaces.Discrete(2))
    assert isinstance(model, ActorCriticSharedWeights)
    head = model.action_parameterization.distribution_linear.weight  # 2 x 256
    if init == "orthogonal":
        assert torch.allclose(head @ head.T, torch.eye(2), atol=1e-5)
    if init != "torch_default":
        assert (head.abs().sum() > 0) and (model.critic_linear.bias == 0).all()
    # The trunk is what sample-factory 2.x trains in effect: torch's U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    # weights (std 1/sqrt(3 fan_in)), biases zero. An orthogonal 256 x 5 layer would have std 1/16.
    first_layer = model.encoder.encoders["obs"].mlp[0]
    assert (first_layer.bias == 0).all()
    fan_in = first_layer.weight.shape[1]
    assert first_layer.weight.std().item() == pytest.approx((3 * fan_in) ** -0.5, rel=0.1)
    assert first_layer.weight.abs().max().item() <= fan_in**-0.5


def test_bf16_convs_match_fp32_features_and_train():
    torch.manual_seed(0)
    fp32 = ConvEncoder(make_cfg(), (3, 72, 128))
    bf16 = ConvEncoder(make_cfg(encoder_conv_bf16=True), (3, 72, 128))
    bf16.load_state_dict(fp32.state_dict())
    obs = torch.rand(BATCH, 3, 72, 128)
    for mode in ("eval", "train"):
        getattr(fp32, mode)()
        getattr(bf16, mode)()
        expected, got = fp32(obs), bf16(obs)
        assert got.dtype == torch.float32
        assert torch.allclose(got, expected, rtol=0.05, atol=0.02), (got - expected).abs().max()
    bf16(obs).sum().backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in bf16.parameters())
