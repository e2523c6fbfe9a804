"""The model's flags: encoders, cores, decoders, initialization, precision."""

from __future__ import annotations

import argparse

from sample_factory.cfg.bool_flags import str2bool


def add_model_args(p: argparse.ArgumentParser):
    g = p.add_argument_group("model")
    g.add_argument("--encoder_mlp_layers", type=int, nargs="*", default=[512, 512], help="MLP encoder layer sizes")
    g.add_argument(
        "--encoder_conv_architecture",
        type=str,
        default="convnet_simple",
        choices=["convnet_simple", "convnet_impala", "convnet_atari", "resnet_impala"],
        help="Conv encoder for image observations",
    )
    g.add_argument("--encoder_conv_mlp_layers", type=int, nargs="*", default=[512], help="MLP after the conv encoder")
    g.add_argument(
        "--encoder_conv_bf16",
        type=str2bool,
        default=False,
        help="Run the conv layers in bfloat16 (autocast; features return as float32): ~2x faster convs on CPUs with AVX512-BF16 or AMX, slower on CPUs without",
    )
    g.add_argument(
        "--model_bf16",
        type=str2bool,
        default=False,
        help="Run the encoder (convs and MLP) and the GRU core's matmuls in bfloat16; observation normalization, "
        "RNN states, heads, losses and the optimizer stay float32. Includes --encoder_conv_bf16. "
        "~1.3x faster training on CPUs with AVX512-BF16 or AMX, slower on CPUs without",
    )
    g.add_argument("--use_rnn", type=str2bool, default=True, help="Recurrent core (else identity)")
    g.add_argument("--rnn_size", type=int, default=512, help="RNN hidden size")
    g.add_argument("--rnn_type", type=str, default="gru", choices=["gru", "lstm"], help="RNN kind")
    g.add_argument("--rnn_num_layers", type=int, default=1, help="RNN layers")
    g.add_argument("--decoder_mlp_layers", type=int, nargs="*", default=[], help="MLP layers after the core")
    g.add_argument("--nonlinearity", type=str, default="elu", choices=["elu", "relu", "tanh"], help="Activation")
    g.add_argument(
        "--policy_initialization",
        type=str,
        default="orthogonal",
        choices=["orthogonal", "xavier_uniform", "torch_default"],
        help="Weight initialization",
    )
    g.add_argument("--policy_init_gain", type=float, default=1.0, help="Gain of the weight initialization")
    g.add_argument(
        "--actor_critic_share_weights", type=str2bool, default=True, help="Actor and critic share encoder and core"
    )
    g.add_argument(
        "--adaptive_stddev",
        type=str2bool,
        default=True,
        help="Gaussian std depends on the state (else a learned constant)",
    )
    g.add_argument(
        "--continuous_tanh_scale", type=float, default=0.0, help="Squash Gaussian means with tanh(x/s)*s (0: off)"
    )
    g.add_argument("--initial_stddev", type=float, default=1.0, help="Initial Gaussian std")
