"""Every standard flag, grouped by topic. Names and meanings follow sample-factory 2.x.

The model's flags and the populations' (PBT, the league) have modules of their own; they are
imported here too, where 2.x's scripts find every `add_*_args`.
"""

from __future__ import annotations

import argparse

from sample_factory.cfg.bool_flags import str2bool
from sample_factory.cfg.model_args import add_model_args  # noqa: F401 (2.x's import path)
from sample_factory.cfg.population_args import add_league_args, add_pbt_args, add_population_args  # noqa: F401 (2.x's import path)


def add_basic_args(p: argparse.ArgumentParser):
    g = p.add_argument_group("experiment")
    g.add_argument(
        "--algo",
        type=str,
        default="APPO",
        help="Algorithm: APPO is the only one, others are refused (PPO when --async_rl=False)",
    )
    g.add_argument("--env", type=str, default=None, required=True, help="Name of a registered environment")
    g.add_argument(
        "--experiment", type=str, default="default_experiment", help="Experiment name: folder under --train_dir"
    )
    g.add_argument("--train_dir", type=str, default="./train_dir", help="Root folder of all experiments")
    g.add_argument(
        "--restart_behavior",
        type=str,
        default="resume",
        choices=["resume", "restart", "overwrite"],
        help="resume: continue an existing experiment; restart: keep old files, start from scratch; overwrite: delete the old folder",
    )
    g.add_argument(
        "--device",
        type=str,
        default="gpu",
        choices=["gpu", "cpu"],
        help="gpu uses CUDA when present, else falls back to the CPU",
    )
    g.add_argument("--seed", type=int, default=None, help="Seed for torch, numpy and envs (None: random)")
    g.add_argument(
        "--log_to_file",
        type=str2bool,
        default=True,
        help="Also write the log to sf_log.txt in the experiment folder (False: the console only, e.g. on NFS)",
    )


def add_rl_args(p: argparse.ArgumentParser):
    """Every flag of sampling, learning, checkpoints, reporting and reliability (2.x's one call)."""
    add_sampling_args(p)
    add_learning_args(p)
    add_normalization_args(p)
    add_checkpoint_args(p)
    add_reporting_args(p)


def add_sampling_args(p):
    g = p.add_argument_group("sampling")
    _add_sampling_layout_args(g)
    _add_sampling_process_args(g)


def _add_sampling_layout_args(g):
    """How many policies, workers, envs and splits, and how far sampling may run ahead."""
    g.add_argument(
        "--num_policies", type=int, default=1, help="Number of policies trained side by side (self-play, PBT)"
    )
    g.add_argument(
        "--async_rl", type=str2bool, default=True, help="False: sampling waits for every learner step (on-policy PPO)"
    )
    g.add_argument(
        "--serial_mode", type=str2bool, default=False, help="Run every component in one process (debugging, tests)"
    )
    g.add_argument(
        "--batched_sampling",
        type=str2bool,
        default=False,
        help="Each worker split steps one vectorized env (no per-env Python loop)",
    )
    g.add_argument(
        "--num_batches_to_accumulate",
        type=int,
        default=2,
        help="The learner may fall this many training batches behind before rollout workers wait for it (bounds the policy lag)",
    )
    g.add_argument(
        "--worker_num_splits",
        type=int,
        default=2,
        help="Env groups per worker: one group steps while another waits for actions",
    )
    g.add_argument("--policy_workers_per_policy", type=int, default=1, help="Inference workers per policy")
    g.add_argument(
        "--max_policy_lag",
        type=int,
        default=1000,
        help="Samples whose policy is this many versions behind the learner are dropped",
    )
    g.add_argument("--num_workers", type=int, default=2, help="Rollout worker processes")
    g.add_argument("--num_envs_per_worker", type=int, default=2, help="Envs stepped by each rollout worker")
    g.add_argument("--rollout", type=int, default=32, help="Length of a trajectory sent to the learner (steps)")
    g.add_argument(
        "--decorrelate_experience_max_seconds",
        type=int,
        default=0,
        help="Each worker waits a random time up to this before sampling",
    )


def _add_sampling_process_args(g):
    """How the rollout worker processes start and run."""
    g.add_argument(
        "--actor_worker_gpus",
        type=int,
        nargs="*",
        default=[],
        help="GPUs the rollout workers' envs may use (e.g. for GPU rendering), round robin; empty: leave CUDA_VISIBLE_DEVICES as it is",
    )
    g.add_argument(
        "--benchmark",
        type=str2bool,
        default=False,
        help="Benchmark mode: workers start sampling at once (no --decorrelate_experience_max_seconds wait)",
    )
    g.add_argument(
        "--decorrelate_envs_on_one_worker",
        type=str2bool,
        default=False,
        help="Not supported (True is refused): offset the envs of one worker at start",
    )
    g.add_argument(
        "--auto_tune",
        type=str2bool,
        default=True,
        help="Measure an env step and choose num_workers, num_envs_per_worker, worker_num_splits, batched_sampling, "
        "batch_size and num_batches_per_epoch, and model_bf16 on CPUs with native bfloat16. Only flags left at the "
        "library's defaults change: typed flags and a script's parser.set_defaults are kept. False: the plain defaults",
    )
    g.add_argument(
        "--set_workers_cpu_affinity",
        type=str2bool,
        default=True,
        help="Pin each rollout worker (and its env processes) to a core, when cores outnumber rollout workers",
    )
    g.add_argument(
        "--force_envs_single_thread",
        type=str2bool,
        default=False,
        help="Env libraries (OpenMP, MKL, OpenBLAS, numexpr, OpenCV) that start in rollout workers get one thread each",
    )
    g.add_argument(
        "--default_niceness",
        type=int,
        default=0,
        help="Added to the niceness of rollout worker processes (not in --serial_mode)",
    )
    g.add_argument(
        "--sampler_only",
        type=str2bool,
        default=False,
        help="Benchmark the sampler: trajectories are dropped, nothing is learned",
    )


def add_learning_args(p):
    g = p.add_argument_group("learning")
    _add_batching_args(g)
    _add_loss_args(g)
    _add_optimizer_args(g)


def _add_batching_args(g):
    g.add_argument("--batch_size", type=int, default=1024, help="Minibatch size for SGD (samples)")
    g.add_argument(
        "--num_batches_per_epoch",
        type=int,
        default=1,
        help="Minibatches per epoch; a training iteration uses batch_size * this samples",
    )
    g.add_argument("--num_epochs", type=int, default=1, help="Passes over each training iteration's data")
    g.add_argument(
        "--recurrence",
        type=int,
        default=-1,
        help="Length of sequences for RNN training (-1: rollout with RNN, 1 without)",
    )
    g.add_argument(
        "--shuffle_minibatches",
        type=str2bool,
        default=False,
        help="Shuffle samples between minibatches (else contiguous chunks)",
    )


def _add_loss_args(g):
    """Returns, advantages and the PPO loss terms."""
    g.add_argument("--gamma", type=float, default=0.99, help="Discount factor")
    g.add_argument("--reward_scale", type=float, default=1.0, help="Rewards are multiplied by this before learning")
    g.add_argument(
        "--reward_clip", type=float, default=1000.0, help="Scaled rewards are clipped to [-reward_clip, reward_clip]"
    )
    g.add_argument(
        "--value_bootstrap",
        type=str2bool,
        default=False,
        help="Bootstrap from the value estimate when an episode is truncated",
    )
    g.add_argument(
        "--normalize_returns",
        type=str2bool,
        default=True,
        help="Train the critic on returns normalized by running mean/std",
    )
    g.add_argument(
        "--exploration_loss_coeff", type=float, default=0.003, help="Coefficient of the exploration (entropy) loss"
    )
    g.add_argument(
        "--value_loss_coeff",
        type=float,
        default=0.5,
        help="Coefficient of the critic loss (the squared error, no 0.5 factor)",
    )
    g.add_argument(
        "--kl_loss_coeff", type=float, default=0.0, help="Coefficient of KL(behaviour || current policy) loss"
    )
    g.add_argument(
        "--exploration_loss",
        type=str,
        default="entropy",
        choices=["entropy", "symmetric_kl"],
        help="Kind of exploration loss: the entropy bonus, or the symmetric KL divergence to a uniform policy (discrete actions)",
    )
    g.add_argument("--gae_lambda", type=float, default=0.95, help="GAE lambda (used when V-trace is off)")
    g.add_argument(
        "--ppo_clip_ratio", type=float, default=0.1, help="PPO ratio clipping: the ratio is clipped to [1/(1+c), 1+c]"
    )
    g.add_argument(
        "--ppo_clip_value",
        type=float,
        default=1.0,
        help="Clipping of the value change (in normalized units when --normalize_returns)",
    )
    g.add_argument(
        "--with_vtrace",
        type=str2bool,
        default=False,
        help="V-trace targets and advantages (IMPALA off-policy correction)",
    )
    g.add_argument("--vtrace_rho", type=float, default=1.0, help="V-trace rho-bar (importance weight clip for targets)")
    g.add_argument("--vtrace_c", type=float, default=1.0, help="V-trace c-bar (trace cutting)")


def _add_optimizer_args(g):
    """The optimizer and the learning-rate schedule."""
    g.add_argument(
        "--optimizer",
        type=str,
        default="adam",
        choices=["adam", "lamb"],
        help="Optimizer (lamb is refused: only Adam is implemented)",
    )
    g.add_argument("--adam_eps", type=float, default=1e-6, help="Adam epsilon")
    g.add_argument("--adam_beta1", type=float, default=0.9, help="Adam beta1")
    g.add_argument("--adam_beta2", type=float, default=0.999, help="Adam beta2")
    g.add_argument("--max_grad_norm", type=float, default=4.0, help="Gradient norm clipping (0: off)")
    g.add_argument("--learning_rate", type=float, default=1e-4, help="Learning rate")
    g.add_argument(
        "--lr_schedule",
        type=str,
        default="constant",
        choices=["constant", "linear_decay", "kl_adaptive_minibatch", "kl_adaptive_epoch"],
        help="Learning rate schedule",
    )
    g.add_argument(
        "--lr_schedule_kl_threshold", type=float, default=0.008, help="Target KL of the KL-adaptive schedules"
    )
    g.add_argument(
        "--lr_adaptive_min", type=float, default=1e-6, help="Lowest learning rate of the KL-adaptive schedules"
    )
    g.add_argument(
        "--lr_adaptive_max", type=float, default=1e-2, help="Highest learning rate of the KL-adaptive schedules"
    )


def add_normalization_args(p):
    g = p.add_argument_group("normalization")
    g.add_argument("--obs_subtract_mean", type=float, default=0.0, help="Subtracted from image observations")
    g.add_argument("--obs_scale", type=float, default=1.0, help="Image observations are divided by this")
    g.add_argument(
        "--normalize_input", type=str2bool, default=True, help="Running mean/std normalization of observations"
    )
    g.add_argument(
        "--normalize_input_keys",
        type=str,
        nargs="*",
        default=None,
        help="Observation keys to normalize (default: all non-image keys)",
    )


def add_checkpoint_args(p):
    g = p.add_argument_group("stopping and checkpoints")
    g.add_argument(
        "--train_for_env_steps",
        type=int,
        default=int(1e10),
        help="Stop after this many env steps (frames after frameskip)",
    )
    g.add_argument("--train_for_seconds", type=int, default=int(1e10), help="Stop after this many seconds of training")
    g.add_argument("--save_every_sec", type=int, default=120, help="Checkpoint interval (seconds)")
    g.add_argument("--keep_checkpoints", type=int, default=2, help="Number of newest checkpoints kept")
    g.add_argument(
        "--load_checkpoint_kind",
        type=str,
        default="latest",
        choices=["latest", "best"],
        help="Which checkpoint to load",
    )
    g.add_argument(
        "--save_milestones_sec", type=int, default=-1, help="Keep a milestone checkpoint this often (-1: never)"
    )
    g.add_argument("--save_best_every_sec", type=int, default=5, help="How often to check for a new best policy")
    g.add_argument("--save_best_metric", type=str, default="reward", help="Metric that picks the best checkpoint")
    g.add_argument(
        "--save_best_after", type=int, default=100000, help="Don't save best checkpoints before this many env steps"
    )


def add_reporting_args(p):
    g = p.add_argument_group("logging")
    g.add_argument(
        "--experiment_summaries_interval",
        type=int,
        default=10,
        help="Seconds between TensorBoard summaries of training statistics",
    )
    g.add_argument("--flush_summaries_interval", type=int, default=30, help="Seconds between flushes of summary files")
    g.add_argument("--stats_avg", type=int, default=100, help="Episodes averaged in reported statistics")
    g.add_argument(
        "--summaries_use_frameskip",
        type=str2bool,
        default=True,
        help="Count env frames (after frameskip) in summaries (False is refused: always counted that way)",
    )
    # --help has always listed the reliability flags here, between the summaries and the console.
    add_reliability_args(g)
    g.add_argument("--report_interval_sec", type=float, default=5.0, help="Seconds between console reports")
    g.add_argument("--with_wandb", type=str2bool, default=False, help="Log to Weights & Biases")
    g.add_argument("--wandb_user", type=str, default=None, help="W&B entity")
    g.add_argument("--wandb_project", type=str, default="sample_factory", help="W&B project")
    g.add_argument("--wandb_group", type=str, default=None, help="W&B group")
    g.add_argument("--wandb_job_type", type=str, default="SF", help="W&B job type")
    g.add_argument("--wandb_tags", type=str, nargs="*", default=[], help="W&B tags")


def add_reliability_args(p):
    """Stalled and dead workers, failing envs and non-finite values. `p` is a parser or a group."""
    p.add_argument(
        "--heartbeat_interval",
        type=int,
        default=20,
        help="A rollout worker that steps no env for this many seconds while others do is stalled (a hung env): its "
        "stack goes to the log and it is started anew (--max_worker_restarts). An inference worker or learner process "
        "whose event loop stands still this long is named with its stack; 3 times this long stops the run",
    )
    p.add_argument(
        "--max_env_failures",
        type=int,
        default=100,
        help="Envs that raise in step() are made anew and their unfinished episode dropped, up to this many times "
        "per run (all workers together); one more stops the run. 0: the first failure stops it",
    )
    p.add_argument(
        "--strict_env_checks",
        type=str2bool,
        default=False,
        help="A NaN or infinite reward or float observation from an env stops the run with one line naming the env "
        "and the key. False: the value becomes 0, the step is not trained on, and the steps dropped are counted "
        "(log, TensorBoard stats/non_finite_steps, summary.json)",
    )
    p.add_argument(
        "--heartbeat_reporting_interval",
        type=int,
        default=180,
        help="Seconds between repeated reports of a stalled rollout worker once --max_worker_restarts are spent "
        "(the others sample on)",
    )
    p.add_argument(
        "--max_worker_restarts",
        type=int,
        default=3,
        help="A rollout worker whose process dies, or that steps no env for --heartbeat_interval seconds while the "
        "others do, is killed and started anew with fresh envs (its unfinished episodes dropped); a dead inference "
        "worker is started anew too. Up to this many times per run (all workers together; 8 at most). Past that a "
        "dead worker stops the run and a stalled one is reported while the others sample on. 0: never restart",
    )


def add_env_args(p: argparse.ArgumentParser):
    g = p.add_argument_group("environment")
    g.add_argument("--env_frameskip", type=int, default=1, help="Frames per env step (frames are what FPS counts)")
    g.add_argument("--env_framestack", type=int, default=1, help="Frames stacked in an observation")
    g.add_argument(
        "--pixel_format", type=str, default="CHW", choices=["CHW", "HWC"], help="Layout of image observations"
    )
    g.add_argument(
        "--use_env_info_cache",
        type=str2bool,
        default=False,
        help="Keep the env's spaces in the experiment folder and reuse them instead of creating a probe env at start",
    )
    g.add_argument(
        "--use_record_episode_statistics",
        type=str2bool,
        default=False,
        help="Envs wrapped in gymnasium's RecordEpisodeStatistics: report its info['episode'] return and length "
        "(the whole game under EpisodicLife) as RecordEpisodeStatistics_reward/_len, and enjoy averages those",
    )
    g.add_argument(
        "--env_gpu_actions",
        type=str2bool,
        default=False,
        help="Not supported (True is refused): envs receive numpy actions",
    )
    g.add_argument(
        "--env_gpu_observations",
        type=str2bool,
        default=False,
        help="Not supported (True is refused): observations are numpy arrays copied into shared host memory",
    )


def add_eval_args(p: argparse.ArgumentParser):
    g = p.add_argument_group("evaluation")
    g.add_argument("--fps", type=int, default=0, help="Render at this rate (0: as fast as possible)")
    g.add_argument(
        "--eval_env_frameskip", type=int, default=None, help="Frameskip during evaluation (default: --env_frameskip)"
    )
    g.add_argument("--no_render", action="store_true", help="Don't render")
    g.add_argument("--save_video", action="store_true", help="Save an mp4 in the experiment folder")
    g.add_argument("--video_frames", type=int, default=int(1e9), help="Frames in the video")
    g.add_argument("--video_name", type=str, default=None, help="Video file name")
    g.add_argument("--max_num_frames", type=int, default=int(1e9), help="Stop after this many frames")
    g.add_argument("--max_num_episodes", type=int, default=int(1e9), help="Stop after this many episodes")
    g.add_argument("--policy_index", type=int, default=0, help="Which policy to evaluate")
    g.add_argument("--eval_deterministic", type=str2bool, default=False, help="Take the most likely action")
    g.add_argument(
        "--push_to_hub",
        type=str2bool,
        default=False,
        help="After playing, push the experiment (checkpoints, config, replay video, a model card) to --hf_repository",
    )
    g.add_argument("--hf_repository", type=str, default=None, help="<username>/<repo_name> on the Hugging Face Hub")
    g.add_argument("--train_script", type=str, default=None, help="Module that trains the model (for the model card)")
    g.add_argument("--enjoy_script", type=str, default=None, help="Module that plays the model (for the model card)")
