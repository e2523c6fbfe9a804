"""Command-line flags of the Doom envs and the training defaults that suit them."""

from __future__ import annotations

from sample_factory.cfg.cfg import str2bool
from sf_examples.vizdoom.doom.doom_specs import DOOM_ENVS_BY_NAME


def add_doom_env_args(parser):
    g = parser.add_argument_group("vizdoom")
    g.add_argument(
        "--res_w", type=int, default=128, help="Width of image observations (the engine renders 160x120 and resizes)"
    )
    g.add_argument("--res_h", type=int, default=72, help="Height of image observations")
    g.add_argument(
        "--wide_aspect_ratio",
        type=str2bool,
        default=False,
        help="Render 16:9 / 16:10 (a wider field of view, matching --res_w/--res_h) instead of 4:3 squeezed into it",
    )
    g.add_argument(
        "--doom_resize_interpolation",
        type=str,
        default="nearest",
        choices=["nearest", "area", "linear"],
        help="cv2 interpolation of the resize to --res_w x --res_h (nearest: ~10x cheaper than area, keeps thin details)",
    )
    g.add_argument("--num_bots", type=int, default=-1, help="Built-in bots in multiplayer envs (-1: the env's default)")
    g.add_argument(
        "--timelimit",
        type=float,
        default=None,
        help="Length of a multiplayer match in minutes of game time (default: the env's)",
    )
    g.add_argument(
        "--num_agents",
        type=int,
        default=-1,
        help="Learning agents in a multiplayer env (-1: the env's default; fewer, to leave seats to humans, is refused)",
    )
    g.add_argument(
        "--num_humans",
        type=int,
        default=0,
        help="Human players joining a match over the network (only 0: this project hosts no human players)",
    )
    g.add_argument(
        "--start_bot_difficulty",
        type=int,
        default=None,
        help="Bot difficulty of adaptive-bot scenarios (refused: the scenarios here have no adaptive bots)",
    )
    g.add_argument(
        "--record_to",
        type=str,
        default=None,
        help="Folder to record every episode to as a Doom demo (.lmp, replayable with ViZDoom)",
    )


def doom_override_defaults(parser, env: str | None = None):
    """Defaults for training on Doom: conv encoder + GRU 512 over 128x72 frames, frameskip 4.

    The sampling layout (workers, envs per worker, splits) is left to --auto_tune, which sizes it
    for this machine; with --auto_tune=False it is the library's plain default.

    With `env` (a `doom_*` name), that env's own training defaults (DoomSpec.train_defaults) go
    on top, e.g. smaller batches for the tiny doom_basic.
    """
    parser.set_defaults(
        env_frameskip=4,
        encoder_conv_architecture="convnet_simple",
        encoder_conv_mlp_layers=[512],
        encoder_mlp_layers=[128],  # the measurements MLP
        use_rnn=True,
        rnn_type="gru",
        rnn_size=512,
        rnn_num_layers=1,
        nonlinearity="elu",
        rollout=32,
        recurrence=-1,
        batch_size=2048,
        num_batches_per_epoch=1,
        num_epochs=1,
        obs_scale=255.0,
        normalize_input=False,  # measurements arrive already scaled to small floats
        normalize_returns=True,
        reward_scale=1.0,
        gamma=0.99,
        gae_lambda=0.95,
        ppo_clip_ratio=0.1,
        ppo_clip_value=1.0,
        value_loss_coeff=0.5,
        exploration_loss_coeff=0.001,
        learning_rate=1e-4,
        max_grad_norm=4.0,
        save_every_sec=120,
        pixel_format="CHW",
    )
    spec = DOOM_ENVS_BY_NAME.get(env) if env else None
    if spec is not None and spec.train_defaults:
        parser.set_defaults(**spec.train_defaults)
