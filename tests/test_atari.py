"""Atari: the preprocessing wrappers one by one, the real games through them, and a train -> enjoy smoke test."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("ale_py", reason='Atari tests need ale-py: pip install "ale-py>=0.11"')
cv2 = pytest.importorskip("cv2", reason="Atari preprocessing needs OpenCV: pip install opencv-python-headless")

from training import train_until

from sample_factory.envs.env_utils import registered_env_names
from sample_factory.envs.env_wrappers import (
    FIRE_ACTION,
    NOOP_ACTION,
    ClipRewardEnv,
    EpisodicLifeEnv,
    MaxAndSkipEnv,
    NoopResetEnv,
)
from sample_factory.utils.attr_dict import AttrDict
from sf_examples.atari.atari_envs import (
    GameScore,
    StackFrames,
    atari_env_names,
    atari_game_ids,
    make_atari_env,
    make_atari_env_for_eval,
    register_atari_envs,
    sf2_atari_aliases,
)
from sf_examples.atari.train_atari import parse_atari_args

pytestmark = pytest.mark.timeout(30)

REPO_ROOT = Path(__file__).resolve().parents[1]


def frame(t: int, shape=(84, 84)) -> np.ndarray:
    """Frame t of the scripted env: one bright pixel whose row alternates, so consecutive frames differ."""
    image = np.zeros(shape, np.uint8)
    image[t % 2, t % shape[1]] = 10 + t
    return image


class ScriptedAtari(gym.Env):
    """Stands in for ale-py: frame t is `frame(t)`, rewards and lives follow scripts, actions are recorded."""

    def __init__(self, rewards=(), lives=None, episode_len: int = 1000, constant_frames: bool = False):
        self.observation_space = gym.spaces.Box(0, 255, shape=(84, 84), dtype=np.uint8)
        self.action_space = gym.spaces.Discrete(4)
        self.rewards = list(rewards)
        self.lives_script = lives  # lives after step t (index t-1); None: always 3
        self.episode_len = episode_len
        self.constant_frames = constant_frames
        self.t = 0
        self.actions: list[int] = []
        self.num_resets = 0

    def _obs(self):
        if self.constant_frames:
            return np.full((84, 84), self.t, np.uint8)
        return frame(self.t)

    def _lives(self) -> int:
        if self.lives_script is None or self.t == 0:
            return 3
        return self.lives_script[min(self.t, len(self.lives_script)) - 1]

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        self.num_resets += 1
        self.actions = []
        return self._obs(), {"lives": self._lives()}

    def step(self, action):
        self.actions.append(int(action))
        self.t += 1
        reward = self.rewards[self.t - 1] if self.t - 1 < len(self.rewards) else 0.0
        terminated = self.t >= self.episode_len or self._lives() == 0
        return self._obs(), reward, terminated, False, {"lives": self._lives()}


# --- names and the real envs ------------------------------------------------------------------------


def test_every_single_player_game_is_registered():
    import ale_py

    names = register_atari_envs()
    assert names[: len(atari_env_names())] == atari_env_names()
    assert set(names[len(atari_env_names()) :]) == set(sf2_atari_aliases()), "and sample-factory 2.x's names"
    registered = set(registered_env_names())
    assert set(names) <= registered
    all_roms = ale_py.roms.get_all_rom_ids()
    # ale-py ships a few ROMs without a single-player mode (combat, joust, ...); it registers no
    # ALE/<Name>-v5 env for them and neither do we. Every other ROM has its name.
    assert len(atari_env_names()) == len(atari_game_ids()) >= 100
    assert len(all_roms) - len(atari_env_names()) <= 6
    for name in ["atari_breakout", "atari_pong", "atari_space_invaders", "atari_montezuma_revenge", "atari_ms_pacman"]:
        assert name in registered


def test_unknown_game_is_a_clear_error():
    with pytest.raises(ValueError, match="no game 'tetrisz'"):
        make_atari_env("atari_tetrisz")


def test_observations_are_four_stacked_84x84_uint8_frames_channels_first():
    env = make_atari_env("atari_breakout")
    try:
        assert env.observation_space == gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)
        assert env.action_space == gym.spaces.Discrete(4)
        obs, _ = env.reset(seed=0)
        assert obs.shape == (4, 84, 84) and obs.dtype == np.uint8
        assert all(np.array_equal(obs[0], obs[i]) for i in range(4)), "a reset fills the stack with the first frame"
        for _ in range(5):
            obs, *_ = env.step(FIRE_ACTION)
        assert obs.shape == (4, 84, 84) and obs.dtype == np.uint8 and env.observation_space.contains(obs)
        assert obs.max() > 0, "the screen is not black"
    finally:
        env.close()


def test_training_defaults():
    cfg = parse_atari_args(["--env=atari_pong"])
    assert cfg.encoder_conv_architecture == "convnet_atari" and not cfg.use_rnn
    assert (cfg.env_frameskip, cfg.env_framestack, cfg.obs_scale) == (4, 4, 255.0)
    assert cfg.rollout == 128 and cfg.num_epochs == 4 and cfg.learning_rate == pytest.approx(2.5e-4)
    assert cfg.save_best_metric == "game_score"
    assert cfg.atari_repeat_action_probability == 0.25 and cfg.atari_noop_max == 30 and cfg.atari_episodic_life


# --- wrappers on a scripted env -----------------------------------------------------------------------


def test_noop_reset_takes_1_to_noop_max_noops_reproducibly():
    env = NoopResetEnv(ScriptedAtari(), noop_max=30)
    counts = []
    for seed in range(60):
        env.reset(seed=seed)
        inner = env.unwrapped
        assert inner.actions == [NOOP_ACTION] * len(inner.actions)
        counts.append(len(inner.actions))
    assert all(1 <= n <= 30 for n in counts), counts
    assert len(set(counts)) >= 10, f"no-op counts should vary with the seed: {counts}"
    env.reset(seed=7)
    first = len(env.unwrapped.actions)
    env.reset(seed=7)
    assert len(env.unwrapped.actions) == first


def test_max_and_skip_maxes_the_last_two_frames_and_sums_rewards():
    inner = ScriptedAtari(rewards=[1.0, 2.0, 0.0, 3.0, 5.0])
    env = MaxAndSkipEnv(inner, skip=4)
    env.reset(seed=0)
    obs, reward, *_ = env.step(2)
    assert inner.actions == [2, 2, 2, 2], "the action is repeated skip times"
    assert reward == 6.0
    np.testing.assert_array_equal(obs, np.maximum(frame(3), frame(4)))
    assert not np.array_equal(obs, frame(4)), "the bright pixel of frame 3 survives the max"
    assert obs[frame(2).nonzero()].max() == 0, "frames before the last two do not count"

    obs, reward, *_ = env.step(1)
    assert reward == 5.0  # frames 5..8
    np.testing.assert_array_equal(obs, np.maximum(frame(7), frame(8)))


def test_max_and_skip_stops_at_episode_end():
    inner = ScriptedAtari(rewards=[1.0] * 10, episode_len=5)
    env = MaxAndSkipEnv(inner, skip=4)
    env.reset(seed=0)
    env.step(0)
    obs, reward, terminated, _, _ = env.step(0)
    assert terminated and reward == 1.0 and len(inner.actions) == 5, "only the one remaining frame was played"
    np.testing.assert_array_equal(obs, frame(5))


def test_frame_stack_is_oldest_first_newest_last():
    env = StackFrames(ScriptedAtari(constant_frames=True), k=4)
    assert env.observation_space.shape == (4, 84, 84)
    obs, _ = env.reset(seed=0)
    assert [int(plane[0, 0]) for plane in obs] == [0, 0, 0, 0]
    obs, *_ = env.step(0)
    obs, *_ = env.step(0)
    assert [int(plane[0, 0]) for plane in obs] == [0, 0, 1, 2]
    for _ in range(3):
        obs, *_ = env.step(0)
    assert [int(plane[0, 0]) for plane in obs] == [2, 3, 4, 5]
    assert obs.dtype == np.uint8 and obs.flags.c_contiguous


def test_rewards_are_clipped_to_their_sign_while_the_game_score_stays_raw():
    raw = [5.0, -3.0, 0.0, 0.5, -0.25, 100.0]
    env = ClipRewardEnv(GameScore(ScriptedAtari(rewards=raw, episode_len=len(raw))))
    env.reset(seed=0)
    clipped, info = [], {}
    for _ in raw:
        _, reward, terminated, _, info = env.step(0)
        clipped.append(reward)
    assert clipped == [1.0, -1.0, 0.0, 1.0, -1.0, 1.0]
    assert terminated
    assert info["true_objective"] == sum(raw)
    assert info["episode_extra_stats"]["game_score"] == sum(raw)


def test_episodic_life_ends_episodes_at_lost_lives_but_not_the_game():
    lives = [3, 3, 2, 2, 2, 1, 1, 0]
    inner = ScriptedAtari(rewards=[1.0] * 8, lives=lives)
    env = EpisodicLifeEnv(GameScore(inner))
    env.reset(seed=0)
    ends = []
    for step in range(1, 9):
        _, _, terminated, _, info = env.step(0)
        if terminated:
            ends.append((step, "episode_extra_stats" in info))
            env.reset()
    # lives lost after steps 3 and 6 end the learner's episode; only step 8 (lives 0) ends the game
    assert ends == [(3, False), (6, False), (8, True)]
    assert inner.num_resets == 2, "a lost life does not reset the emulator"
    assert info["true_objective"] == 8.0, "the game score adds up every life"


# --- the real games through the wrappers --------------------------------------------------------------


def test_breakout_lives_end_training_episodes_while_the_game_goes_on():
    env = make_atari_env("atari_breakout")
    try:
        env.reset(seed=1)
        ale = env.unwrapped.ale
        life_ends, game_info, frame_numbers = 0, None, []
        for _ in range(2000):
            # NOOP only: the ball is still served after every lost life (FireResetEnv), so lives keep going
            _, reward, terminated, truncated, info = env.step(NOOP_ACTION)
            assert reward in (-1.0, 0.0, 1.0)
            if terminated or truncated:
                if "episode_extra_stats" in info:
                    game_info = info
                    break
                assert info["life_lost"] and ale.lives() == info["lives"] > 0
                life_ends += 1
                frame_numbers.append(ale.getEpisodeFrameNumber())
                env.reset()
                assert ale.getEpisodeFrameNumber() == frame_numbers[-1], (
                    "reset after a lost life goes on with the same game"
                )
        assert life_ends == 4, "5 lives: 4 learner episodes end at lost lives, the 5th at game over"
        assert game_info is not None and ale.lives() == 0
        stats = game_info["episode_extra_stats"]
        assert stats["game_frames"] > frame_numbers[-1]
        assert game_info["true_objective"] == stats["game_score"] >= 0
    finally:
        env.close()


def test_eval_variant_plays_full_games_with_raw_rewards():
    env = make_atari_env_for_eval("atari_breakout")
    try:
        env.reset(seed=2)
        total, steps = 0.0, 0
        while True:
            _, reward, terminated, truncated, info = env.step(env.action_space.sample())
            total += reward
            steps += 1
            if terminated or truncated:
                break
        assert env.unwrapped.ale.lives() == 0, "only game over ends an evaluation episode"
        assert "life_lost" not in info
        assert info["true_objective"] == total == info["episode_extra_stats"]["game_score"]
    finally:
        env.close()


def test_frame_cap_truncates_the_game():
    cfg = AttrDict(atari_max_episode_frames=200, atari_noop_max=0)
    env = make_atari_env("atari_pong", cfg=cfg)
    try:
        env.reset(seed=0)
        for step in range(1, 100):  # noqa: B007 (read after the loop)
            _, _, terminated, truncated, info = env.step(NOOP_ACTION)
            if terminated or truncated:
                break
        assert truncated and not terminated
        assert info["episode_extra_stats"]["game_frames"] == 200
        assert step == 200 // 4 - 1  # the FIRE pressed at the game start took the first 4 frames
    finally:
        env.close()


def test_frameskip_and_framestack_come_from_the_config():
    env = make_atari_env("atari_pong", cfg=AttrDict(env_frameskip=2, env_framestack=3, atari_noop_max=0))
    try:
        obs, _ = env.reset(seed=0)
        start = env.unwrapped.ale.getEpisodeFrameNumber()
        env.step(NOOP_ACTION)
        assert obs.shape == (3, 84, 84)
        assert env.unwrapped.ale.getEpisodeFrameNumber() - start == 2
    finally:
        env.close()


# --- train, then enjoy -------------------------------------------------------------------------------------


@pytest.mark.timeout(150)
def test_train_then_enjoy_records_a_video(tmp_path):
    cfg = parse_atari_args(
        [
            "--env=atari_breakout",
            "--experiment=breakout_smoke",
            f"--train_dir={tmp_path}",
            "--serial_mode=True",
            "--device=cpu",
            "--num_workers=1",
            "--num_envs_per_worker=2",
            "--rollout=32",
            "--batch_size=64",
            "--num_batches_per_epoch=1",
            "--num_epochs=2",
            "--train_for_env_steps=3000",
            "--atari_max_episode_frames=400",  # short games: several end within the budget
            "--report_interval_sec=1",
            "--seed=1",
        ]
    )
    result = train_until(cfg)
    assert result["status"] == 0
    assert result["env_steps"] >= 3000
    assert result["policies"][0]["train_steps"] >= 1
    stats = result["runner"].stats
    assert stats.true_objectives[0], "full games reported their score as true_objective"
    assert len(stats.extra_stats[0]["game_score"]) == len(stats.true_objectives[0])
    assert len(stats.episode_rewards[0]) >= len(stats.true_objectives[0]), "life episodes are counted separately"
    exp_dir = tmp_path / "breakout_smoke"
    assert list((exp_dir / "checkpoint_p0").glob("checkpoint_*.pth"))

    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sf_examples.atari.enjoy_atari",
            "--env=atari_breakout",
            "--experiment=breakout_smoke",
            f"--train_dir={tmp_path}",
            "--device=cpu",
            "--no_render",
            "--save_video",
            "--video_frames=30",
            "--max_num_episodes=1",
            "--max_num_frames=4000",
        ],
        check=False,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert re.search(r"Mean return [-\d.]+ ± [\d.]+, mean length [\d.]+ ± [\d.]+ \(1 episode\)", proc.stdout), (
        proc.stdout
    )
    capture = cv2.VideoCapture(str(exp_dir / "replay.mp4"))
    assert capture.isOpened()
    frames = 0
    while capture.read()[0]:
        frames += 1
    width, height = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    capture.release()
    assert frames == 30
    assert (width, height) == (160, 210), "the video shows the full-colour game screen"
