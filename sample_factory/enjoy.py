"""`enjoy(cfg)`: play a trained policy, render it or record a video, report its returns.

The experiment's saved config is merged with the flags typed now, the checkpoint of
`--policy_index` (`--load_checkpoint_kind`) is loaded, and one env is played until
`--max_num_episodes` or `--max_num_frames` (env frames = env steps x frameskip). Every agent of
a multi-agent env is driven by the chosen policy. Failures a user can cause (no such
experiment, no checkpoint, a checkpoint that does not fit the config, a missing OpenCV) end
with a one-line `error: ...` on stderr and a non-zero status, not a traceback.

Loading and playing are the evaluation library's (`sample_factory/eval/`); this module is the
command around it: rendering, video, the report and the Hugging Face push.
"""

from __future__ import annotations

import logging
import sys

from sample_factory.cfg.experiment import SavedConfigError, experiment_dir
from sample_factory.envs.create_env import EnvCreationError, is_vector_env
from sample_factory.envs.env_utils import UnknownEnvError
from sample_factory.eval import EvalError
from sample_factory.eval.config import eval_cfg, make_eval_env
from sample_factory.eval.episodes import play_episodes
from sample_factory.eval.policy import load_checkpoint_for_eval, policy_from_checkpoint
from sample_factory.eval.video import VideoRecorder, import_cv2
from sample_factory.utils.device import policy_device
from sample_factory.utils.experiment_folder import ExperimentFolder
from sample_factory.utils.logging_setup import setup_logging
from sample_factory.utils.status import ExitStatus

log = logging.getLogger(__name__)

DEFAULT_VIDEO_FPS = 30  # when --fps is 0 (as fast as possible), the video still needs a rate


def _render_mode(cfg) -> str | None:
    if cfg.save_video:
        return "rgb_array"
    if not cfg.no_render:
        return "human"
    return None


def enjoy(cfg) -> tuple[int, float | None]:
    """Plays the experiment's policy; returns (status, mean return per episode), as sample-factory 2.x.

    Status 0, or 1 with a one-line error on stderr (the mean is then None; also None when no
    episode finished).
    """
    setup_logging()
    try:
        return _enjoy(cfg)
    except (EvalError, UnknownEnvError, EnvCreationError, SavedConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        return ExitStatus.FAILURE, None


def _enjoy(cfg) -> tuple[int, float | None]:
    cfg, settings = eval_cfg(cfg)
    if cfg.push_to_hub and not cfg.hf_repository:
        raise EvalError("--push_to_hub needs --hf_repository=<username>/<repo_name>")
    if cfg.save_video:
        import_cv2()  # fail before loading anything
    render_mode = _render_mode(cfg)

    # the checkpoint first: a missing one is reported without creating an env
    device = policy_device(cfg)
    state, checkpoint_path = load_checkpoint_for_eval(cfg, device)

    env = make_eval_env(cfg, render_mode)
    recorder = None
    try:
        if is_vector_env(env):
            raise EvalError(f"make_env_func for {cfg.env!r} returned a vector env; enjoy plays a single env")
        policy = policy_from_checkpoint(
            cfg, state, checkpoint_path, env.observation_space, env.action_space, device, cfg.policy_index
        )
        if cfg.save_video:
            if getattr(env, "render", None) is None:
                raise EvalError(f"the env {cfg.env!r} has no render() method: it cannot be recorded with --save_video")
            folder = ExperimentFolder(experiment_dir(cfg))
            video_path = folder.path / cfg.video_name if cfg.video_name else folder.default_video
            if not video_path.suffix:
                video_path = video_path.with_suffix(".mp4")
            recorder = VideoRecorder(video_path, cfg.fps or DEFAULT_VIDEO_FPS, cfg.video_frames)
        results = play_episodes(env, policy, settings, render_mode, recorder)
        if recorder is not None:
            written = recorder.close()
            if written is None:
                raise EvalError(
                    f"the env rendered no frames: does the make_env_func of {cfg.env!r} honour render_mode='rgb_array'?"
                )
            width, height = recorder.size
            log.info("Video: %s (%d frames, %dx%d)", written, recorder.num_frames, width, height)
            print(f"Video saved to {written}", flush=True)
    finally:
        if recorder is not None:
            recorder.abort()
        env.close()

    for line in results.report() or ["No episode finished (raise --max_num_frames)"]:
        print(line, flush=True)
    if cfg.push_to_hub:
        _push(cfg, results.objectives)
    return ExitStatus.SUCCESS, results.mean_objective


def _push(cfg, objectives: list[float]):
    from sample_factory.huggingface.huggingface_utils import HubError, generate_model_card, push_to_hf

    exp_dir = experiment_dir(cfg)
    generate_model_card(
        exp_dir,
        "APPO",  # the only algorithm (--algo accepts nothing else)
        cfg.env,
        cfg.hf_repository,
        rewards=objectives,
        enjoy_name=cfg.enjoy_script,
        train_name=cfg.train_script,
    )
    try:
        url = push_to_hf(exp_dir, cfg.hf_repository)
    except HubError as e:
        raise EvalError(str(e)) from None
    print(f"Pushed to {url}", flush=True)


def main() -> int:
    """`python -m sample_factory.enjoy --env=NAME ...` for gymnasium ids and installed env families (doom_*, atari_*, ...)."""
    from sample_factory.cfg.arguments import parse_full_cfg, parse_sf_args
    from sample_factory.envs.env_families import setup_env_family

    parser, partial_cfg = parse_sf_args(evaluation=True)
    setup_env_family(parser, partial_cfg)
    status, _ = enjoy(parse_full_cfg(parser))
    return status


if __name__ == "__main__":
    sys.exit(main())
