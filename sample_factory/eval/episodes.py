"""Play episodes with a loaded policy and report their returns.

`play_episodes(env, policy, settings)` drives every agent of one env (single- or multi-agent)
with the policy until `settings.max_episodes` or `settings.max_env_frames`, carrying each agent's
RNN state and zeroing it when the agent's episode ends. It reads no config: enjoy passes the
settings of its eval config, and may add a window (`render_mode="human"`) or a video recorder;
evaluation during training needs neither.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from sample_factory.envs.create_env import MultiAgentView, numpy_action
from sample_factory.eval import EvalError
from sample_factory.eval.config import EpisodeSettings
from sample_factory.eval.policy import LoadedPolicy, policy_actions

log = logging.getLogger(__name__)


@dataclass
class EpisodeResults:
    """The finished episodes, all agents, in the order they ended."""

    returns: list[float] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)  # env steps
    objectives: list[float] = field(default_factory=list)  # the env's true_objective, else the return

    @property
    def num_episodes(self) -> int:
        return len(self.returns)

    @property
    def mean_objective(self) -> float | None:
        """As sample-factory 2.x reports it: the env's true objective where it reports one (the unshaped score)."""
        return float(np.mean(self.objectives)) if self.objectives else None

    def report(self) -> list[str]:
        """The lines that sum the episodes up (none when no episode finished)."""
        if not self.returns:
            return []
        episodes = f"{len(self.returns)} episode{'s' if len(self.returns) != 1 else ''}"
        lines = [f"Mean return {_mean_std(self.returns)}, mean length {_mean_std(self.lengths)} ({episodes})"]
        if self.objectives != self.returns:
            lines.append(f"Mean true objective {_mean_std(self.objectives)}")
        return lines


def _mean_std(values: list[float]) -> str:
    return f"{np.mean(values):.2f} ± {np.std(values):.2f}"


class Pacer:
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


def play_episodes(
    env, policy: LoadedPolicy, settings: EpisodeSettings, render_mode: str | None = None, recorder=None
) -> EpisodeResults:
    """Plays until a stop condition (or Ctrl-C); returns the finished episodes.

    `render_mode="human"`: an env that does not draw itself in step() is asked to render each
    frame, paced at `settings.fps`. `recorder` (video.VideoRecorder; the env must have render())
    gets a frame before each step; once it is full, play goes on only to the end of the episode.
    """
    view = MultiAgentView(env)
    num_agents = view.num_agents
    # a gymnasium env made with render_mode="human" draws itself in step(); others are asked to
    render = getattr(env, "render", None)
    call_render = render_mode == "human" and render is not None and getattr(env, "render_mode", None) != "human"
    pacer = Pacer(settings.fps if render_mode == "human" else 0)

    if settings.seed is not None:
        torch.manual_seed(settings.seed)
    try:
        obs_list, _ = view.reset(seed=settings.seed)
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
    results = EpisodeResults()
    num_episodes = 0  # an episode counts once every agent has finished one more
    env_frames = 0
    video_full_at_episode = None  # once the video is complete, play only to the end of this episode

    try:
        while num_episodes < settings.max_episodes and env_frames < settings.max_env_frames:
            actions, rnn_states = policy_actions(policy, obs_list, rnn_states, settings.deterministic)
            env_actions = [numpy_action(policy.action_space, actions[a]) for a in range(num_agents)]
            for _ in range(settings.action_repeat):
                if recorder is not None and not recorder.full:
                    recorder.add(render())
                    if recorder.full:
                        video_full_at_episode = num_episodes
                obs_list, rewards, terminated, truncated, infos = view.step(env_actions)
                if call_render:
                    render()
                pacer.wait()
                env_frames += settings.env_frameskip
                episode_return += np.asarray(rewards, dtype=np.float64)
                episode_len += 1
                dones = [bool(t or tr) for t, tr in zip(terminated, truncated)]
                for agent in np.flatnonzero(dones):
                    rnn_states[agent] = 0.0
                    game = infos[agent].get("episode") if settings.record_episode_statistics else None
                    if settings.record_episode_statistics and game is None:
                        continue  # a lost life under EpisodicLife: the game goes on
                    if game is not None:  # RecordEpisodeStatistics: the whole game's return and length
                        episode_return[agent] = float(np.asarray(game["r"]).reshape(-1)[0])
                        episode_len[agent] = int(np.asarray(game["l"]).reshape(-1)[0])
                    finished[agent] += 1
                    results.returns.append(float(episode_return[agent]))
                    results.objectives.append(float(infos[agent].get("true_objective", episode_return[agent])))
                    results.lengths.append(int(episode_len[agent]))
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
    return results
