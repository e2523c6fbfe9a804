"""`enjoy(cfg)`: play a trained policy, render it or record a video, report its returns.

The experiment's saved config is merged with the flags typed now, the checkpoint of
`--policy_index` (`--load_checkpoint_kind`) is loaded, and one env is played until
`--max_num_episodes` or `--max_num_frames` (env frames = env steps x frameskip). Every agent of
a multi-agent env is driven by the chosen policy. Failures a user can cause (no such
experiment, no checkpoint, a checkpoint that does not fit the config, a missing OpenCV) end
with a one-line `error: ...` on stderr and a non-zero status, not a traceback.

`load_policy_for_eval` (config + checkpoint -> model in eval mode) is shared with export_onnx.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from sample_factory.cfg.experiment import (
    CONFIG_FILE,
    SavedConfigError,
    experiment_dir,
    merge_with_saved_cfg,
)
from sample_factory.envs.create_env import (
    EnvCreationError,
    MultiAgentView,
    as_dict_space,
    env_config_for,
    is_vector_env,
    make_env,
    numpy_action,
    obtain_env_info,
)
from sample_factory.envs.env_utils import UnknownEnvError
from sample_factory.model.actor_critic import (
    ActorCritic,
    create_actor_critic,
    rnn_state_size_for,
)
from sample_factory.utils.attr_dict import AttrDict
from sample_factory.utils.checkpoint import (
    CheckpointError,
    checkpoint_dir,
    incompatibilities,
    load_latest_checkpoint,
)
from sample_factory.utils.device import policy_device
from sample_factory.utils.logging_setup import setup_logging

log = logging.getLogger(__name__)

ERROR_STATUS = 1
DEFAULT_VIDEO_NAME = "replay.mp4"
DEFAULT_VIDEO_FPS = 30  # when --fps is 0 (as fast as possible), the video still needs a rate


class EvalError(RuntimeError):
    """A failure the user can fix; its message is one line and names what to do."""


@dataclass
class LoadedPolicy:
    cfg: object  # the merged config (saved + typed now)
    model: ActorCritic  # in eval mode, on `device`
    device: torch.device
    obs_space: gym.spaces.Dict
    action_space: gym.Space
    rnn_state_size: int  # width S of the flat RNN state; 0 without memory
    checkpoint_path: Path
    env_steps: int | None  # env steps the checkpoint was trained for, when it says


# --- config and checkpoint ---------------------------------------------------------------------


def eval_cfg(cfg):
    """The saved config of an existing experiment with the flags typed now on top; raises EvalError.

    A new config, final from here on: `env_frameskip` is the eval env's frameskip, and
    `eval_action_repeat` says how often each action is repeated to keep the training rate.
    """
    exp_dir = experiment_dir(cfg)
    if not exp_dir.is_dir():
        raise EvalError(f"experiment folder {exp_dir} does not exist (check --experiment and --train_dir)")
    if not (exp_dir / CONFIG_FILE).is_file():
        log.warning("%s has no %s; using the flags typed now as the whole config", exp_dir, CONFIG_FILE)
    cfg = AttrDict({**merge_with_saved_cfg(cfg)})
    policy_index = cfg.get("policy_index", 0) or 0
    num_policies = cfg.get("num_policies", 1)
    if not 0 <= policy_index < num_policies:
        raise EvalError(
            f"--policy_index={policy_index} is out of range: the experiment has {num_policies} policies (0..{num_policies - 1})"
        )
    eval_frameskip, action_repeat = _frameskips(cfg)
    return AttrDict({**cfg, "env_frameskip": eval_frameskip, "eval_action_repeat": action_repeat})


def load_checkpoint_for_eval(cfg, device: torch.device) -> tuple[dict, Path]:
    policy_index = cfg.get("policy_index", 0) or 0
    kind = cfg.get("load_checkpoint_kind", "latest") or "latest"
    directory = checkpoint_dir(experiment_dir(cfg), policy_index)
    try:
        loaded = load_latest_checkpoint(directory, device, kind=kind)
    except CheckpointError as e:
        raise EvalError(str(e)) from None
    if loaded is None:
        raise EvalError(
            f"no checkpoint of policy {policy_index} in {directory}: train the experiment first (or check --policy_index)"
        )
    state, path = loaded
    if "model" not in state:
        raise EvalError(f"checkpoint {path} has no model weights")
    return state, path


def build_model_from_checkpoint(cfg, state: dict, path: Path, obs_space, action_space, device) -> ActorCritic:
    model = create_actor_critic(cfg, obs_space, action_space).to(device)
    problems = incompatibilities(state["model"], model)
    if problems:
        shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
        raise EvalError(
            f"checkpoint {path} does not fit the model built from the config "
            f"(was a model flag typed now that differs from training?): {shown}"
        )
    model.load_state_dict(state["model"])
    model.eval()
    return model


def policy_from_checkpoint(cfg, state: dict, path: Path, obs_space, action_space, device) -> LoadedPolicy:
    obs_space = as_dict_space(obs_space)
    model = build_model_from_checkpoint(cfg, state, path, obs_space, action_space, device)
    env_steps = (state.get("training_state") or {}).get("env_steps")
    trained = f", trained for {env_steps} env steps" if env_steps is not None else ""
    log.info("Loaded %s (policy %d%s)", path, cfg.get("policy_index", 0) or 0, trained)
    return LoadedPolicy(cfg, model, device, obs_space, action_space, rnn_state_size_for(cfg), path, env_steps)


def load_policy_for_eval(cfg) -> LoadedPolicy:
    """Merged config + model with the checkpoint's weights; the spaces come from a throw-away env.

    Raises EvalError (experiment, checkpoint, or config problems) or UnknownEnvError.
    """
    cfg = eval_cfg(cfg)
    device = policy_device(cfg)
    state, path = load_checkpoint_for_eval(cfg, device)
    env_info = obtain_env_info(cfg)
    return policy_from_checkpoint(cfg, state, path, env_info.obs_space, env_info.action_space, device)


# --- video ----------------------------------------------------------------------------------------


def import_cv2():
    try:
        import cv2
    except ImportError:
        raise EvalError("--save_video needs OpenCV: pip install opencv-python-headless") from None
    return cv2


class VideoRecorder:
    """Writes RGB frames into an mp4 (OpenCV, fourcc mp4v), at most `max_frames` of them.

    Frames go to a temporary file in the same folder that replaces `path` on `close()`, so an
    interrupted run never leaves a half-written video under the final name.
    """

    def __init__(self, path: Path, fps: float, max_frames: int):
        self.cv2 = import_cv2()
        self.path = Path(path)
        self.tmp_path = self.path.with_name(f".{self.path.stem}.partial{self.path.suffix or '.mp4'}")
        self.fps = float(fps)
        self.max_frames = int(max_frames)
        self.num_frames = 0
        self.size: tuple[int, int] | None = None  # (width, height), from the first frame
        self._writer = None

    @property
    def full(self) -> bool:
        return self.num_frames >= self.max_frames

    def add(self, frame) -> None:
        if self.full or frame is None:
            return
        cv2 = self.cv2
        frame = np.asarray(frame)
        if frame.ndim == 4:  # a vector env renders a batch: record the first env
            frame = frame[0]
        if frame.dtype != np.uint8:
            frame = np.clip(frame, 0, 255).astype(np.uint8)
        if frame.ndim == 2 or frame.shape[-1] == 1:
            frame = cv2.cvtColor(frame.reshape(frame.shape[:2]), cv2.COLOR_GRAY2BGR)
        else:
            frame = np.ascontiguousarray(frame[..., 2::-1])  # RGB(A) -> BGR
        height, width = frame.shape[:2]
        if self._writer is None:
            self.size = (width, height)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = cv2.VideoWriter(str(self.tmp_path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, self.size)
            if not self._writer.isOpened():
                self._writer = None
                raise EvalError(f"OpenCV cannot write an mp4v video to {self.tmp_path}")
        elif (width, height) != self.size:
            frame = cv2.resize(frame, self.size)
        self._writer.write(frame)
        self.num_frames += 1

    def close(self) -> Path | None:
        """Finishes the file; returns its path, or None when no frame was recorded."""
        if self._writer is None:
            return None
        self._writer.release()
        self._writer = None
        os.replace(self.tmp_path, self.path)
        return self.path

    def abort(self):
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        self.tmp_path.unlink(missing_ok=True)


# --- playing --------------------------------------------------------------------------------------


def _render_mode(cfg) -> str | None:
    if cfg.get("save_video"):
        return "rgb_array"
    if not cfg.get("no_render"):
        return "human"
    return None


def _frameskips(cfg) -> tuple[int, int]:
    """(frameskip of the eval env, action repeat).

    With `--eval_env_frameskip` smaller than the training frameskip (smooth videos of envs that
    skip frames themselves), each action is repeated so the policy acts at its training rate.
    """
    train_frameskip = max(1, int(cfg.get("env_frameskip", 1) or 1))
    eval_frameskip = cfg.get("eval_env_frameskip")
    if eval_frameskip is None:
        return train_frameskip, 1
    eval_frameskip = max(1, int(eval_frameskip))
    return eval_frameskip, max(1, train_frameskip // eval_frameskip)


def _stack_obs(obs_list: list[dict], device: torch.device) -> dict:
    return {key: torch.as_tensor(np.stack([np.asarray(o[key]) for o in obs_list])).to(device) for key in obs_list[0]}


def _mean_std(values: list[float]) -> str:
    return f"{np.mean(values):.2f} ± {np.std(values):.2f}"


class _Pacer:
    """Sleeps so that frames are shown at most `fps` per second (0: no limit)."""

    def __init__(self, fps: float):
        self.period = 1.0 / fps if fps and fps > 0 else 0.0
        self.next_time = None

    def wait(self):
        if not self.period:
            return
        now = time.monotonic()
        if self.next_time is None or now - self.next_time > 1.0:  # first frame, or far behind: resync
            self.next_time = now
        elif self.next_time > now:
            time.sleep(self.next_time - now)
        self.next_time += self.period


@torch.no_grad()
def _policy_actions(policy: LoadedPolicy, obs_list: list[dict], rnn_states: torch.Tensor, deterministic: bool):
    out = policy.model.act(_stack_obs(obs_list, policy.device), rnn_states, deterministic=deterministic)
    new_rnn_states = out["new_rnn_states"]
    if new_rnn_states is None or new_rnn_states.shape[-1] != rnn_states.shape[-1]:
        new_rnn_states = rnn_states
    return out["actions"].cpu().numpy(), new_rnn_states


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
        return ERROR_STATUS, None


def _enjoy(cfg) -> tuple[int, float | None]:
    cfg = eval_cfg(cfg)
    if cfg.get("push_to_hub") and not cfg.get("hf_repository"):
        raise EvalError("--push_to_hub needs --hf_repository=<username>/<repo_name>")
    if cfg.get("save_video"):
        import_cv2()  # fail before loading anything
    render_mode = _render_mode(cfg)

    # the checkpoint first: a missing one is reported without creating an env
    device = policy_device(cfg)
    state, checkpoint_path = load_checkpoint_for_eval(cfg, device)

    try:
        env = make_env(cfg, env_config_for(0, 0, 0), render_mode=render_mode)
    except UnknownEnvError:
        raise
    except Exception as e:
        raise EnvCreationError(f"could not create the env {cfg.env!r}: {type(e).__name__}: {e}") from e
    recorder = None
    try:
        if is_vector_env(env):
            raise EvalError(f"make_env_func for {cfg.env!r} returned a vector env; enjoy plays a single env")
        policy = policy_from_checkpoint(cfg, state, checkpoint_path, env.observation_space, env.action_space, device)
        if cfg.get("save_video"):
            video_path = experiment_dir(cfg) / (cfg.get("video_name") or DEFAULT_VIDEO_NAME)
            if not video_path.suffix:
                video_path = video_path.with_suffix(".mp4")
            fps = cfg.fps if cfg.get("fps") else DEFAULT_VIDEO_FPS
            recorder = VideoRecorder(video_path, fps, cfg.get("video_frames", int(1e9)))
        returns, lengths, objectives = _play(cfg, env, policy, render_mode, recorder)
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

    if returns:
        episodes = f"{len(returns)} episode{'s' if len(returns) != 1 else ''}"
        print(f"Mean return {_mean_std(returns)}, mean length {_mean_std(lengths)} ({episodes})", flush=True)
        if objectives != returns:
            print(f"Mean true objective {_mean_std(objectives)}", flush=True)
    else:
        print("No episode finished (raise --max_num_frames)", flush=True)
    if cfg.get("push_to_hub"):
        _push(cfg, objectives)
    # as sample-factory 2.x: the env's true objective where it reports one (the unshaped score)
    return 0, (float(np.mean(objectives)) if objectives else None)


def _push(cfg, objectives: list[float]):
    from sample_factory.huggingface.huggingface_utils import HubError, generate_model_card, push_to_hf

    exp_dir = experiment_dir(cfg)
    generate_model_card(
        exp_dir,
        "APPO",  # the only algorithm (--algo accepts nothing else)
        cfg.env,
        cfg.hf_repository,
        rewards=objectives,
        enjoy_name=cfg.get("enjoy_script"),
        train_name=cfg.get("train_script"),
    )
    try:
        url = push_to_hf(exp_dir, cfg.hf_repository)
    except HubError as e:
        raise EvalError(str(e)) from None
    print(f"Pushed to {url}", flush=True)


def _play(cfg, env, policy: LoadedPolicy, render_mode, recorder) -> tuple[list, list, list]:
    """Plays until a stop condition; returns the finished episodes' returns, lengths and true
    objectives (the return where the env reports none), all agents."""
    view = MultiAgentView(env)
    num_agents = view.num_agents
    deterministic = bool(cfg.get("eval_deterministic"))
    record_stats = bool(cfg.get("use_record_episode_statistics"))
    max_episodes = cfg.get("max_num_episodes", int(1e9))
    max_frames = cfg.get("max_num_frames", int(1e9))
    # a gymnasium env made with render_mode="human" draws itself in step(); others are asked to
    render = getattr(env, "render", None)
    call_render = render_mode == "human" and render is not None and getattr(env, "render_mode", None) != "human"
    if recorder is not None and render is None:
        raise EvalError(f"the env {cfg.env!r} has no render() method: it cannot be recorded with --save_video")
    pacer = _Pacer(cfg.get("fps", 0) if render_mode == "human" else 0)

    if cfg.get("seed") is not None:
        torch.manual_seed(cfg.seed)
    try:
        obs_list, _ = view.reset(seed=cfg.get("seed"))
    except Exception as e:  # a display that cannot open is the common case; other errors re-raise
        if render_mode == "human":
            raise EvalError(
                f"the env could not start rendering ({type(e).__name__}: {e}); use --no_render or --save_video"
            ) from None
        raise

    rnn_states = torch.zeros(num_agents, policy.rnn_state_size, device=policy.device)
    episode_return = np.zeros(num_agents)
    episode_len = np.zeros(num_agents, np.int64)
    finished = [0] * num_agents  # episodes finished per agent
    returns, lengths, objectives = [], [], []
    num_episodes = 0  # an episode counts once every agent has finished one more
    env_frames = 0
    video_full_at_episode = None  # once the video is complete, play only to the end of this episode

    try:
        while num_episodes < max_episodes and env_frames < max_frames:
            actions, rnn_states = _policy_actions(policy, obs_list, rnn_states, deterministic)
            env_actions = [numpy_action(policy.action_space, actions[a]) for a in range(num_agents)]
            for _ in range(cfg.eval_action_repeat):
                if recorder is not None and not recorder.full:
                    recorder.add(render())
                    if recorder.full:
                        video_full_at_episode = num_episodes
                obs_list, rewards, terminated, truncated, infos = view.step(env_actions)
                if call_render:
                    render()
                pacer.wait()
                env_frames += cfg.env_frameskip
                episode_return += np.asarray(rewards, dtype=np.float64)
                episode_len += 1
                dones = [bool(t or tr) for t, tr in zip(terminated, truncated)]
                for agent in np.flatnonzero(dones):
                    rnn_states[agent] = 0.0
                    game = infos[agent].get("episode") if record_stats else None
                    if record_stats and game is None:
                        continue  # a lost life under EpisodicLife: the game goes on
                    if game is not None:  # RecordEpisodeStatistics: the whole game's return and length
                        episode_return[agent] = float(np.asarray(game["r"]).reshape(-1)[0])
                        episode_len[agent] = int(np.asarray(game["l"]).reshape(-1)[0])
                    finished[agent] += 1
                    returns.append(float(episode_return[agent]))
                    objectives.append(float(infos[agent].get("true_objective", episode_return[agent])))
                    lengths.append(int(episode_len[agent]))
                    who = f" agent {agent}" if num_agents > 1 else ""
                    log.info(
                        "Episode %d%s: return %.2f, length %d",
                        finished[agent],
                        who,
                        episode_return[agent],
                        episode_len[agent],
                    )
                    episode_return[agent] = 0.0
                    episode_len[agent] = 0
                num_episodes = min(finished)
                if any(dones):
                    break
            if video_full_at_episode is not None and num_episodes > video_full_at_episode:
                break
    except KeyboardInterrupt:
        log.info("Interrupted: stopping after %d episodes", num_episodes)
    return returns, lengths, objectives


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
