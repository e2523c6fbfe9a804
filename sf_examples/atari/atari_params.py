"""Atari flags and defaults: the Nature-DQN encoder and the PPO recipe for Atari (Schulman et al. 2017)."""

from __future__ import annotations

from sample_factory.cfg.cfg import str2bool
from sf_examples.atari.atari_envs import (
    DEFAULT_MAX_EPISODE_FRAMES,
    DEFAULT_NOOP_MAX,
    DEFAULT_REPEAT_ACTION_PROBABILITY,
)


def add_atari_env_args(parser):
    g = parser.add_argument_group("atari")
    g.add_argument(
        "--atari_repeat_action_probability",
        type=float,
        default=DEFAULT_REPEAT_ACTION_PROBABILITY,
        help="Sticky actions: each emulator frame repeats the previous action with this probability (0: deterministic, as v4 envs)",
    )
    g.add_argument(
        "--atari_noop_max",
        type=int,
        default=DEFAULT_NOOP_MAX,
        help="Random 1..N NOOP frames after each reset (0: none)",
    )
    g.add_argument(
        "--atari_episodic_life",
        type=str2bool,
        default=True,
        help="Training episodes end at each lost life (the real game score goes to episode_extra_stats/game_score); enjoy always plays full games",
    )
    g.add_argument(
        "--atari_max_episode_frames",
        type=int,
        default=DEFAULT_MAX_EPISODE_FRAMES,
        help="Emulator frames after which a game is truncated (108000 = 30 minutes; 0: no cap)",
    )


def atari_override_defaults(env_or_parser, parser=None):
    """8 workers x 2 envs, rollouts of 128 steps, 4 epochs over 4 minibatches of 256 (one iteration = 4096 frames)."""
    parser = env_or_parser if parser is None else parser  # 2.x passes (env, parser)
    parser.set_defaults(
        # model: the Nature DQN conv net on 4 stacked 84x84 frames, no memory
        encoder_conv_architecture="convnet_atari",
        encoder_conv_mlp_layers=[512],
        nonlinearity="relu",
        use_rnn=False,
        obs_scale=255.0,
        normalize_input=False,
        # env: frames are counted after frameskip (train_for_env_steps, FPS, episode lengths)
        env_frameskip=4,
        env_framestack=4,
        # sampling
        num_workers=8,
        num_envs_per_worker=2,
        worker_num_splits=2,
        rollout=128,
        # PPO
        batch_size=256,
        num_batches_per_epoch=4,
        num_epochs=4,
        learning_rate=2.5e-4,
        adam_eps=1e-5,
        gamma=0.99,
        gae_lambda=0.95,
        ppo_clip_ratio=0.1,
        exploration_loss_coeff=0.01,
        value_loss_coeff=0.5,
        max_grad_norm=0.5,
        # rewards are clipped to their sign in the env (ClipRewardEnv), not with --reward_clip
        value_bootstrap=True,  # the 108k-frame cap truncates; a lost life terminates
        # the best checkpoint is the one with the best real game score, not the best clipped life return
        save_best_metric="game_score",
        train_for_env_steps=10_000_000,
    )
