"""MuJoCo defaults: PPO for continuous control (Schulman et al. 2017) with normalized observations and returns."""

from __future__ import annotations


def add_mujoco_env_args(env_or_parser, parser=None):
    """`(parser)`, or sample-factory 2.x's `(env, parser)`."""
    parser = env_or_parser if parser is None else parser
    parser.add_argument(
        "--mujoco_env_version",
        type=str,
        default="v5",
        choices=["v5", "v4"],
        help="gymnasium version of the MuJoCo tasks: v5 (current) or v4 (what sample-factory 2.x trained and published)",
    )


def mujoco_override_defaults(env_or_parser, parser=None):
    """4 workers x 4 envs, rollouts of 64 steps; an iteration is 2048 samples, 8 minibatches of 256, 4 epochs."""
    parser = env_or_parser if parser is None else parser  # 2.x passes (env, parser)
    parser.set_defaults(
        # model: small tanh MLP, a state-independent log-std, no memory
        encoder_mlp_layers=[64, 64],
        nonlinearity="tanh",
        use_rnn=False,
        adaptive_stddev=False,
        initial_stddev=1.0,
        normalize_input=True,  # joint angles and velocities differ in scale by orders of magnitude
        normalize_returns=True,
        # sampling
        num_workers=4,
        num_envs_per_worker=4,
        worker_num_splits=2,
        rollout=64,
        # PPO
        batch_size=256,
        num_batches_per_epoch=8,
        num_epochs=4,
        learning_rate=3e-4,
        adam_eps=1e-5,
        gamma=0.99,
        gae_lambda=0.95,
        ppo_clip_ratio=0.2,
        exploration_loss_coeff=0.0,
        value_loss_coeff=0.5,
        max_grad_norm=0.5,
        value_bootstrap=True,  # the 1000-step time limit is a truncation, not a terminal state
        train_for_env_steps=10_000_000,
    )
