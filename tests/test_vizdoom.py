"""ViZDoom envs: spaces, episodes, frameskip, reward shaping, training, multiplayer, engine cleanup."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import psutil
import pytest

vizdoom = pytest.importorskip("vizdoom", reason="the Doom envs need ViZDoom: pip install vizdoom")

from sample_factory.envs.create_env import obtain_env_info
from sample_factory.envs.env_utils import is_registered
from sf_examples.vizdoom.doom.doom_action_space import Discretized, DoomActionSpace
from sf_examples.vizdoom.doom.doom_envs import DoomEnv, make_doom_env
from sf_examples.vizdoom.doom.doom_player import DoomSettings, make_action_space
from sf_examples.vizdoom.doom.doom_reward_shaping import (
    SHAPING_TERMS,
    TRACKED_VARIABLES,
    VAR_INDEX,
    RewardShaping,
)
from sf_examples.vizdoom.doom.doom_specs import DOOM_ENVS_BY_NAME, doom_env_spec
from sf_examples.vizdoom.train_vizdoom import parse_vizdoom_cfg

pytestmark = pytest.mark.timeout(60)

REPO_ROOT = Path(__file__).resolve().parent.parent
SINGLE_PLAYER = [name for name, spec in DOOM_ENVS_BY_NAME.items() if not spec.multiplayer]
BATTLES = ["doom_battle", "doom_battle2", "doom_benchmark"]
NEW_MATCHES = ["doom_duel_bots", "doom_deathmatch_full", "doom_dwango5", "doom_dm"]


@pytest.fixture(autouse=True)
def run_in_tmp_dir(tmp_path, monkeypatch):
    """The engine creates a `_vizdoom` folder in the working directory: keep it out of the repo."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def maps_dir(tmp_path_factory):
    """The generated maps of this test session, written once into a folder of its own."""
    folder = tmp_path_factory.mktemp("doom_maps")
    old = os.environ.get("SF_DOOM_MAPS_DIR")
    os.environ["SF_DOOM_MAPS_DIR"] = str(folder)  # read by engines started in this process
    yield folder
    if old is None:
        os.environ.pop("SF_DOOM_MAPS_DIR", None)
    else:
        os.environ["SF_DOOM_MAPS_DIR"] = old


@pytest.fixture(autouse=True)
def generated_maps_in_a_test_folder(maps_dir):
    return maps_dir


def doom_cfg(env: str, *flags: str):
    return parse_vizdoom_cfg([f"--env={env}", *flags])


def small_serial_training_flags(train_dir, experiment: str) -> list[str]:
    """A short serial training run on the CPU with a small model."""
    return [
        f"--train_dir={train_dir}",
        f"--experiment={experiment}",
        "--serial_mode=True",
        "--num_workers=1",
        "--num_envs_per_worker=2",
        "--batch_size=256",
        "--rnn_size=64",
        "--encoder_conv_mlp_layers=64",
        "--decorrelate_envs_on_one_worker=False",
        "--report_interval_sec=1",
        "--device=cpu",
    ]


def engine_processes() -> list[psutil.Process]:
    """ViZDoom engines (and their watchdogs) among this process's descendants."""
    found = []
    for proc in psutil.Process().children(recursive=True):
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            if "vizdoom" in proc.name().lower() or "vizdoom" in " ".join(proc.cmdline()).lower():
                found.append(proc)
        except psutil.Error:
            pass
    return found


def assert_no_engines_left():
    psutil.wait_procs(engine_processes(), timeout=5.0)
    left = engine_processes()
    assert not left, f"ViZDoom processes outlived their env: {[(p.pid, p.name()) for p in left]}"


def vizdoom_shm() -> set[str]:
    return (
        {name for name in os.listdir("/dev/shm") if name.startswith("ViZDoom")} if os.path.isdir("/dev/shm") else set()
    )


def check_obs(obs, space: gym.spaces.Dict):
    assert obs["obs"].shape == (3, 72, 128) and obs["obs"].dtype == np.uint8
    if "measurements" in space.spaces:  # where 2.x has its DoomAdditionalInput (battles, matches)
        assert obs["measurements"].shape == (8,) and obs["measurements"].dtype == np.float32
    assert set(obs) == set(space.spaces)
    assert space.contains(obs), "observation outside the observation space"


# ----- pure parts: no engine


def test_every_env_is_registered_and_spaces_need_no_engine():
    cfg = doom_cfg("doom_basic")
    for name in DOOM_ENVS_BY_NAME:
        assert is_registered(name)
        env = make_doom_env(name, cfg, env_config=None)
        try:
            assert env.observation_space["obs"].shape == (3, 72, 128)
            if doom_env_spec(name).measurements:
                assert env.observation_space["measurements"].shape == (8,)
            else:
                assert set(env.observation_space.spaces) == {"obs"}
        finally:
            env.close()
    assert not engine_processes(), "creating an env (as the parent does to read spaces) must not start an engine"
    info = obtain_env_info(doom_cfg("doom_duel"))
    assert info.is_multiagent and info.num_agents == 2


def test_action_spaces_map_to_buttons():
    discrete = DoomActionSpace((("MOVE_LEFT", "MOVE_RIGHT"), ("ATTACK",)))
    assert discrete.space == gym.spaces.Discrete(6)
    combos = {tuple(discrete.to_buttons(a)) for a in range(6)}
    assert combos == {(left, right, f) for left, right in ((0, 0), (1, 0), (0, 1)) for f in (0, 1)}, (
        "every combination once"
    )

    multi = DoomActionSpace((("MOVE_FORWARD", "MOVE_BACKWARD"), ("ATTACK",)), kind="multidiscrete")
    assert multi.space == gym.spaces.MultiDiscrete([3, 2])
    assert multi.to_buttons(np.array([2, 1])) == [0.0, 1.0, 1.0]

    turn = DoomActionSpace((("TURN_LEFT", "TURN_RIGHT"), ("ATTACK",)), kind="multidiscrete", continuous_turn_deg=7.5)
    assert isinstance(turn.space, gym.spaces.Tuple) and isinstance(turn.space[-1], gym.spaces.Box)
    assert turn.buttons == ["ATTACK", "TURN_LEFT_RIGHT_DELTA"]
    assert turn.to_buttons((1, np.array([-2.0], np.float32))) == [1.0, -7.5], "the turn is clipped to [-1, 1]"

    spec = doom_env_spec("doom_deathmatch")
    assert make_doom_env("doom_deathmatch").action_space == gym.spaces.MultiDiscrete([3, 3, 3, 2, 2, 8])
    assert spec.action_kind == "multidiscrete"


def test_reward_shaping_terms_and_coefficients():
    shaping = RewardShaping({"kill": 1.0, "health": 0.01, "death": -1.0})
    assert set(shaping.get_coefficients()) == set(SHAPING_TERMS)
    prev = np.zeros(len(TRACKED_VARIABLES))
    prev[VAR_INDEX["HEALTH"]] = 50
    new = prev.copy()
    new[VAR_INDEX["KILLCOUNT"]] = 2
    new[VAR_INDEX["HEALTH"]] = 75
    assert shaping.shaped_reward(prev, new, died=False) == pytest.approx(2.0 + 0.25)
    # dying: the health drop is not shaped, the death is
    dead = prev.copy()
    dead[VAR_INDEX["HEALTH"]] = -10
    assert shaping.shaped_reward(prev, dead, died=True) == pytest.approx(-1.0)
    # respawning: health back to 100 is no reward
    assert shaping.shaped_reward(dead, prev, died=False, alive_throughout=False) == 0.0
    # a wild value (no step gains 10,000 of anything) counts 0; the real changes beside it still count
    wild = new.copy()
    wild[VAR_INDEX["HEALTH"]] = 2.0**31
    assert shaping.shaped_reward(prev, wild, died=False) == pytest.approx(2.0)

    shaping.set_coefficients({"kill": 0.5})
    assert shaping.get_coefficients()["kill"] == 0.5 and shaping.get_coefficients()["health"] == 0.01
    with pytest.raises(KeyError, match="unknown reward shaping terms"):
        shaping.set_coefficients({"kils": 1.0})


def test_2x_action_spaces_reward_scales_and_limits():
    """The facts of sample-factory 2.x's doom_utils.DOOM_ENVS and its .cfg files, name by name."""
    D = gym.spaces.Discrete
    expected = {
        "doom_basic": D(4),  # none, left, right, attack
        "doom_two_colors_easy": gym.spaces.Tuple((D(3), D(3))),
        "doom_my_way_home": gym.spaces.Tuple((D(3), D(3))),
        "doom_my_way_home_flat_actions": D(5),
        "doom_defend_the_center_flat_actions": D(4),
        "doom_deadly_corridor": gym.spaces.Tuple((D(3), D(3), D(3), D(2))),
        "doom_defend_the_center": gym.spaces.Tuple((D(3), D(2))),
        "doom_defend_the_line": gym.spaces.Tuple((D(3), D(2))),
        "doom_health_gathering_supreme": D(5),
        "doom_battle": gym.spaces.Tuple((D(3), D(3), D(2), D(2), Discretized(11, -10.0, 10.0))),
        "doom_benchmark": D(9),
        "doom_deathmatch_bots": gym.spaces.Tuple((D(3), D(3), D(8), D(2), D(2), Discretized(21, -12.5, 12.5))),
        "doom_duel": gym.spaces.Tuple((D(3), D(3), D(8), D(2), D(2), D(2), Discretized(21, -12.5, 12.5))),
        "doom_dm": gym.spaces.Tuple((D(3), D(3), D(3), D(2), D(2), gym.spaces.Box(-1.0, 1.0, (1,), np.float32))),
    }
    for name, space in expected.items():
        assert make_action_space(doom_env_spec(name)).space == space, name
    # a measurements vector beside the image only where 2.x wraps the env in DoomAdditionalInput
    with_measurements = {name for name, spec in DOOM_ENVS_BY_NAME.items() if spec.measurements}
    assert with_measurements == {"doom_battle", "doom_battle2", "doom_deathmatch_bots", "doom_duel", "doom_duel_bots",
                                 "doom_deathmatch_full", "doom_dm", "doom_dwango5", "doom_predict_position",
                                 "doom_take_cover", "doom_deathmatch"}  # fmt: skip
    scales = {name: spec.reward_scale for name, spec in DOOM_ENVS_BY_NAME.items() if spec.reward_scale != 1.0}
    assert scales == {"doom_basic": 0.01, "doom_deadly_corridor": 0.01}
    assert doom_env_spec("doom_basic").max_env_steps == 300
    assert {doom_env_spec(n).max_env_steps for n in BATTLES} == {2100}
    agents_bots = {n: (doom_env_spec(n).num_agents, doom_env_spec(n).num_bots) for n in NEW_MATCHES}
    assert agents_bots == {"doom_duel_bots": (1, 1), "doom_deathmatch_full": (4, 4), "doom_dwango5": (8, 0),
                           "doom_dm": (8, 0)}  # fmt: skip

    # one button at a time in doom_basic; the discretized turn of battle in degrees per tic
    basic = make_action_space(doom_env_spec("doom_basic"))
    assert basic.buttons == ["MOVE_LEFT", "MOVE_RIGHT", "ATTACK"]
    assert [basic.to_buttons(a) for a in range(4)] == [[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]]
    battle = make_action_space(doom_env_spec("doom_battle"))
    assert battle.buttons[-1] == "TURN_LEFT_RIGHT_DELTA"
    assert battle.to_buttons((1, 2, 1, 0, 0))[-1] == -10.0 and battle.to_buttons((0, 0, 0, 0, 10))[-1] == 10.0
    assert battle.to_buttons((1, 2, 1, 0, 5)) == [1, 0, 0, 1, 1, 0, 0.0], "forward, left strafe, attack, no turn"


def test_generated_maps_are_deterministic_and_cached(tmp_path, monkeypatch):
    from sf_examples.vizdoom.doom.maps import MAP_NAMES, build_wad, scenario_wad_path

    monkeypatch.setenv("SF_DOOM_MAPS_DIR", str(tmp_path / "maps"))
    for name in MAP_NAMES:
        data = build_wad(name)
        assert data == build_wad(name), f"{name}: the generator must give the same bytes every time"
        assert data[:4] == b"PWAD" and b"TEXTMAP" in data and b"ENDMAP" in data
        path = scenario_wad_path(name)
        assert path.parent == tmp_path / "maps" and path.read_bytes() == data
        mtime = path.stat().st_mtime_ns
        assert scenario_wad_path(name) == path and path.stat().st_mtime_ns == mtime, "built once, then reused"
    assert not list((tmp_path / "maps").glob(".*.tmp")), "no temporary file left"
    with pytest.raises(KeyError, match="unknown generated Doom map"):
        build_wad("e1m1")


def raw_game(map_name: str, variables: list[str]):
    """A bare DoomGame on a generated map, with object info, for looking at what the map spawns."""
    from sf_examples.vizdoom.doom.maps import scenario_wad_path

    game = vizdoom.DoomGame()
    game.set_doom_scenario_path(str(scenario_wad_path(map_name)))
    game.set_doom_map("map01")
    game.set_window_visible(False)
    game.set_sound_enabled(False)
    game.set_screen_resolution(vizdoom.ScreenResolution.RES_160X120)
    game.set_objects_info_enabled(True)
    game.set_available_buttons([vizdoom.Button.ATTACK, vizdoom.Button.TURN_RIGHT])
    game.set_available_game_variables([getattr(vizdoom.GameVariable, v) for v in variables])
    game.set_doom_skill(2)
    game.init()
    return game


def object_counts(game) -> dict[str, int]:
    from collections import Counter

    return dict(Counter(o.name for o in game.get_state().objects))


def test_battle_map_keeps_its_imps_and_moves_the_player_to_a_random_start():
    game = raw_game("battle", ["KILLCOUNT", "AMMO2", "POSITION_X", "POSITION_Y"])
    try:
        starts = set()
        for seed in range(6):
            game.set_seed(seed)
            game.new_episode()
            counts = object_counts(game)
            assert counts["BattleImp"] == 15 and counts["BattleMedikit"] >= 30 and counts["Clip"] == 15, counts
            kills, bullets, x, y = game.get_state().game_variables
            assert bullets == 20, "the pistol and 20 bullets, as 2.x's ENTER script gives"
            starts.add((x, y))
        assert len(starts) >= 3, f"the player starts at random spots: {starts}"
        # shoot and turn until an imp dies; 70 tics later another one has taken its place
        for tic in range(3000):
            if game.is_episode_finished():
                game.new_episode()
            game.make_action([1, tic % 8 == 0], 1)
            if not game.is_episode_finished() and game.get_state().game_variables[0] >= 1:
                break
        assert game.get_state().game_variables[0] >= 1, "no kill in 3000 tics"
        assert object_counts(game)["BattleImp"] == 14
        game.make_action([0, 0], 72)
        if not game.is_episode_finished():  # (unless the imps killed the player meanwhile)
            assert object_counts(game)["BattleImp"] == 15, "a killed imp is replaced 70 tics later"
    finally:
        game.close()


def test_two_colors_pillar_shows_the_good_colour_and_hard_takes_it_away():
    for map_name in ("two_colors_easy", "two_colors_hard"):
        game = raw_game(map_name, ["HEALTH"])
        try:
            good_colours = set()
            for seed in range(8):
                game.set_seed(seed)
                game.new_episode()
                counts = object_counts(game)
                (totem,) = [name for name in counts if name.endswith("Totem")]
                colour = totem.removesuffix("Totem")
                good_colours.add(colour)
                bad = "Red" if colour == "Green" else "Green"
                assert counts[f"Good{colour}Pickup"] >= 10 and counts[f"Bad{bad}Pickup"] == 10, counts
                assert not any(name.startswith((f"Bad{colour}", f"Good{bad}")) for name in counts)
                game.make_action([0, 0], 100)
                assert (totem in object_counts(game)) == (map_name == "two_colors_easy"), "hard: gone after 90 tics"
                assert game.get_state().game_variables[0] < 100, "the acid floor hurts"
            assert good_colours == {"Green", "Red"}, "a coin decides the good colour each episode"
        finally:
            game.close()


def test_settings_from_cfg():
    settings = DoomSettings.from_cfg(doom_cfg("doom_basic", "--res_w=64", "--res_h=48", "--env_frameskip=2"))
    assert (settings.res_w, settings.res_h, settings.frameskip) == (64, 48, 2)
    assert settings.render_resolution == (160, 120)
    wide = DoomSettings.from_cfg(doom_cfg("doom_basic", "--wide_aspect_ratio=True"))
    assert wide.render_resolution == (256, 144), "128x72 is 16:9"


# ----- single player


@pytest.mark.parametrize("env_name", SINGLE_PLAYER)
def test_random_episode(env_name):
    env = make_doom_env(env_name, doom_cfg(env_name))
    env.action_space.seed(0)
    try:
        obs, _ = env.reset(seed=0)
        check_obs(obs, env.observation_space)
        # random play ends an episode by the scenario's timeout, or dies within a minute of game time
        timeout_tics = env.players[0].game.get_episode_timeout() or 60 * 35
        max_steps = timeout_tics // env.settings.frameskip + 2
        for _ in range(max_steps):
            obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
            check_obs(obs, env.observation_space)
            assert np.isfinite(reward)
            if terminated or truncated:
                break
        assert terminated or truncated, f"no episode end within the scenario's timeout ({max_steps} steps)"
        stats = info["episode_extra_stats"]
        assert info["true_objective"] == pytest.approx(env.doom_spec.reward_scale * stats["scenario_return"])
        assert {"kills", "deaths", "final_health"} <= set(stats)
        timing = env.timing()
        print(f"{env_name}: engine {1e6 * timing['engine_sec'] / timing['steps']:.0f} us/step, "
              f"preprocessing {1e6 * timing['preprocess_sec'] / timing['steps']:.0f} us/step")  # fmt: skip
    finally:
        env.close()
    assert_no_engines_left()


@pytest.mark.parametrize("frameskip", [1, 4])
def test_frameskip_is_done_by_the_engine(frameskip):
    env = make_doom_env("doom_basic", doom_cfg("doom_basic", f"--env_frameskip={frameskip}"))
    try:
        env.reset(seed=1)
        game = env.player.game
        start_tic = game.get_episode_time()
        for step in range(1, 6):
            env.step(0)  # no-op: the episode cannot end early
            assert game.get_episode_time() - start_tic == step * frameskip
    finally:
        env.close()


def test_hwc_and_other_resolutions():
    env = make_doom_env("doom_basic", doom_cfg("doom_basic", "--pixel_format=HWC", "--res_w=80", "--res_h=60"))
    try:
        obs, _ = env.reset(seed=0)
        assert obs["obs"].shape == (60, 80, 3) == env.observation_space["obs"].shape
        assert env.render() is None or env.render().shape == (120, 160, 3)
    finally:
        env.close()
    env = make_doom_env("doom_basic", doom_cfg("doom_basic"), render_mode="rgb_array")
    try:
        env.reset(seed=0)
        assert env.render().shape == (120, 160, 3), "render() gives the full 160x120 frame"
    finally:
        env.close()


def test_doom_basic_reward_is_on_2x_scale_and_true_objective_too():
    env = make_doom_env("doom_basic", doom_cfg("doom_basic"))
    try:
        rewards, info = play_fixed(env, seed=0, action=0)  # never shoots: -1 per tic for 300 tics
    finally:
        env.close()
    assert rewards[:5] == pytest.approx([-0.04] * 5), "-1 per tic x 4 tics x 0.01"
    assert info["episode_extra_stats"]["scenario_return"] == pytest.approx(-300.0, abs=5), "unscaled, in stats"
    assert info["true_objective"] == pytest.approx(rewards.sum()) == pytest.approx(-3.0, abs=0.05)


def test_max_env_steps_truncates_like_2x_time_limit():
    import dataclasses

    spec = dataclasses.replace(doom_env_spec("doom_battle"), max_env_steps=7)
    env = DoomEnv(spec, DoomSettings())
    try:
        env.reset(seed=0)
        for step in range(1, 8):
            _, _, terminated, truncated, info = env.step((0, 0, 0, 0, 5))  # stand still: nobody dies in 28 tics
            assert not terminated and truncated == (step == 7)
        assert "true_objective" in info and info["episode_extra_stats"]["scenario_return"] == 0.0
    finally:
        env.close()


@pytest.mark.timeout(30)
@pytest.mark.parametrize("env_name", BATTLES)
def test_battle_maps_reward_a_kill(env_name):
    env = make_doom_env(env_name, doom_cfg(env_name))
    try:
        env.reset(seed=0)
        for step in range(1500):
            # shoot while turning slowly right (benchmark: one button at a time, attack twice then turn)
            action = (7 if step % 3 else 5) if env_name == "doom_benchmark" else (0, 0, 1, 0, 6)
            _, reward, terminated, truncated, info = env.step(action)
            if env.player._delta("KILLCOUNT") >= 1:
                break
            if terminated or truncated:  # the imps won this one
                assert info["true_objective"] == 0.0
                env.reset()
        assert env.player._delta("KILLCOUNT") == 1, "no kill in 1500 steps of shooting around"
        assert reward == pytest.approx(1.0, abs=0.2), "+1 for the kill (health shaping is a few thousandths)"
        assert env.player._episode.scenario_return == 1.0
    finally:
        env.close()


def play_fixed(env, seed: int, action, max_steps: int = 600):
    env.reset(seed=seed)
    rewards = []
    for _ in range(max_steps):
        _, reward, terminated, truncated, info = env.step(action)
        rewards.append(reward)
        if terminated or truncated:
            return np.array(rewards), info
    raise AssertionError(f"the episode did not end in {max_steps} steps")


def test_reward_shaping_changes_reward_not_true_objective():
    # health_gathering: the acid floor takes health away at a steady pace, whatever the agent does
    env = make_doom_env("doom_health_gathering", doom_cfg("doom_health_gathering"))
    try:
        assert env.get_coefficients()["health_pickup"] == 1.0, "2.x's gathering shaping by default"
        env.set_coefficients({"health_pickup": 0.0})
        rewards, info = play_fixed(env, seed=3, action=0)
        env.set_coefficients({"health": 0.5, "death": -10.0})
        shaped, shaped_info = play_fixed(env, seed=3, action=0)
    finally:
        env.close()
    assert len(rewards) == len(shaped), "same seed, same actions: the same episode"
    assert not np.allclose(rewards, shaped)
    assert shaped.sum() < rewards.sum(), "health only drops and the death is penalized"
    assert shaped_info["true_objective"] == info["true_objective"] == pytest.approx(rewards.sum())


def test_engine_survives_sigint_and_dies_with_its_process():
    """Ctrl-C to the process group must not kill the engine under a running worker; a worker
    killed with SIGKILL must not leave its engines running, nor their shared memory and folders
    (its one watchdog cleans up after all its envs)."""
    code = (
        "import sys, os, signal, time, psutil\n"
        "from sf_examples.vizdoom.doom.doom_envs import make_doom_env\n"
        "env = make_doom_env('doom_basic'); env.reset(seed=0)\n"
        "other = make_doom_env('doom_basic'); other.reset(seed=1)\n"
        "children = psutil.Process().children()\n"
        "engines = [p for p in children if 'vizdoom' in p.name()]\n"
        "watchdogs = [p for p in children if 'engine_watchdog' in ' '.join(p.cmdline())]\n"
        "assert len(engines) == 2 and len(watchdogs) == 1, (engines, watchdogs)\n"
        "os.kill(engines[0].pid, signal.SIGINT); os.kill(engines[0].pid, signal.SIGTERM); time.sleep(0.5)\n"
        "for _ in range(20): env.step(0)\n"
        "print(*[e.pid for e in engines], flush=True)\n"
        "print(env.unwrapped.engines.dir, other.unwrapped.engines.dir, flush=True)\n"
        "time.sleep(60)\n"
    )
    shm_before = vizdoom_shm()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
    try:
        pids = proc.stdout.readline().split()
        assert len(pids) == 2 and all(pid.isdigit() for pid in pids), (
            "the env did not step after SIGINT/SIGTERM reached its engine"
        )
        engines = [psutil.Process(int(pid)) for pid in pids]
        folders = [Path(folder) for folder in proc.stdout.readline().split()]
        assert len(folders) == 2 and all(folder.is_dir() for folder in folders)
        proc.kill()
        proc.wait()
        _, alive = psutil.wait_procs(engines, timeout=10.0)
        assert not alive, "an engine outlived its SIGKILLed process"
        deadline = time.monotonic() + 5.0
        while (vizdoom_shm() - shm_before or any(f.exists() for f in folders)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not vizdoom_shm() - shm_before, "the engine's shared memory was left in /dev/shm"
        assert not any(f.exists() for f in folders), "the envs' temporary folders were left behind"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()


# ----- multiplayer


def test_deathmatch_against_bots_plays_episodes_and_cleans_up():
    env = make_doom_env("doom_deathmatch_bots", doom_cfg("doom_deathmatch_bots", "--timelimit=0.05", "--num_bots=3"))
    env.action_space.seed(0)
    episodes = []
    try:
        obs, _ = env.reset(seed=0)
        check_obs(obs, env.observation_space)
        for _ in range(200):
            obs, _, terminated, truncated, info = env.step(env.action_space.sample())
            if terminated or truncated:
                episodes.append(info)
                if len(episodes) == 2:
                    break
                env.reset()
        assert env.player.game.get_game_variable(vizdoom.GameVariable.PLAYER_COUNT) >= 1
    finally:
        env.close()
    assert len(episodes) == 2, "a 0.05-minute match lasts 105 tics = 27 steps"
    for info in episodes:
        assert info["true_objective"] == info["episode_extra_stats"]["frags"]
    assert_no_engines_left()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("env_name", NEW_MATCHES)
def test_2x_matches_on_generated_and_cig_maps_play_an_episode(env_name):
    spec = doom_env_spec(env_name)
    env = make_doom_env(env_name, doom_cfg(env_name, "--timelimit=0.05"))
    env.action_space.seed(0)
    n = spec.num_agents
    try:
        obs, _ = env.reset(seed=0)
        for o in obs if n > 1 else [obs]:
            check_obs(o, env.observation_space)
        for _ in range(40):
            actions = [env.action_space.sample() for _ in range(n)] if n > 1 else env.action_space.sample()
            obs, rewards, terminated, truncated, infos = env.step(actions)
            assert np.all(np.isfinite(rewards))
            if np.any(terminated):
                break
        assert np.all(terminated), "a 0.05-minute match lasts 105 tics = 27 steps"
        infos = infos if n > 1 else [infos]
        assert all(info["true_objective"] == info["episode_extra_stats"]["frags"] for info in infos)
        players = env.players[0].game.get_game_variable(vizdoom.GameVariable.PLAYER_COUNT)
        assert players >= spec.num_agents, "every agent joined the match"
    finally:
        env.close()
    assert_no_engines_left()


def test_two_agent_match_plays_episodes_and_cleans_up():
    env = make_doom_env("doom_duel", doom_cfg("doom_duel", "--timelimit=0.05"))
    assert env.is_multiagent and env.num_agents == 2
    env.action_space.seed(0)
    finished = 0
    try:
        obs, infos = env.reset(seed=0)
        assert len(obs) == 2 and len(infos) == 2
        for o in obs:
            check_obs(o, env.observation_space)
        for _ in range(100):
            obs, rewards, terminated, truncated, infos = env.step([env.action_space.sample() for _ in range(2)])
            assert len(obs) == len(rewards) == len(terminated) == len(truncated) == len(infos) == 2
            if any(terminated):
                assert all(terminated), "a match ends for every agent at once"
                assert all("true_objective" in info for info in infos)
                for o in obs:  # the env has started the next match itself
                    check_obs(o, env.observation_space)
                finished += 1
                if finished == 2:
                    break
    finally:
        env.close()
    assert finished == 2
    assert_no_engines_left()


# ----- training


@pytest.mark.timeout(240)
def test_training_doom_basic_serial_saves_a_checkpoint_and_enjoy_plays_it(tmp_path):
    from training import train_until

    from sample_factory.enjoy import enjoy

    flags = [*small_serial_training_flags(tmp_path, "doom_basic_test"), "--train_for_env_steps=6000"]
    result = train_until(doom_cfg("doom_basic", *flags))
    assert result["status"] == 0
    assert result["env_steps"] >= 6000
    assert result["policies"][0]["train_steps"] >= 3
    assert result["policies"][0]["num_episodes"] > 0
    checkpoints = list((tmp_path / "doom_basic_test").glob("checkpoint_p0/*.pth"))
    assert checkpoints, "no checkpoint saved"
    runner = result.pop("runner")
    assert runner.stats.true_objectives[0], "true_objective reached the stats"
    del runner
    assert_no_engines_left()

    eval_cfg = parse_vizdoom_cfg(["--env=doom_basic", *flags, "--no_render", "--max_num_episodes=2"], evaluation=True)
    assert enjoy(eval_cfg)[0] == 0
    assert_no_engines_left()

    # The generic commands find the Doom family through its entry point.
    generic_enjoy = subprocess.run(
        [
            sys.executable,
            "-m",
            "sample_factory.enjoy",
            "--env=doom_basic",
            *flags,
            "--no_render",
            "--max_num_episodes=1",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert generic_enjoy.returncode == 0, generic_enjoy.stderr[-2000:]
    assert "Mean return" in generic_enjoy.stdout
    assert_no_engines_left()


@pytest.mark.timeout(180)
def test_training_two_agent_match_serial(tmp_path):
    from training import train_until

    cfg = doom_cfg(
        "doom_duel",
        *small_serial_training_flags(tmp_path, "doom_duel_test"),
        "--timelimit=0.05",
        "--train_for_env_steps=3000",
    )
    result = train_until(cfg)
    assert result["status"] == 0
    assert result["policies"][0]["num_episodes"] > 0 and result["policies"][0]["train_steps"] > 0
    result.pop("runner")
    assert_no_engines_left()


def population_flags(tmp_path, experiment: str, budget: int) -> list[str]:
    """PBT of 4 on a short game: every policy is updated (and mutated) within a few thousand steps."""
    return [
        *small_serial_training_flags(tmp_path, experiment),
        "--timelimit=0.05",
        "--with_pbt=True",
        "--num_policies=4",
        "--pbt_period_env_steps=1000",
        "--pbt_start_mutation=0",
        "--pbt_mutation_rate=1.0",
        "--stats_avg=2",  # rank after two games (PBT waits for min(10, stats_avg) episodes)
        "--rollout=16",
        "--batch_size=64",
        f"--train_for_env_steps={budget}",
    ]


def pbt_history(exp_dir: Path, policy_id: int) -> list[dict]:
    import json

    return json.loads((exp_dir / f"policy_{policy_id:02d}_pbt.json").read_text())["history"]


@pytest.mark.timeout(400)
@pytest.mark.parametrize("env_name, extra", [("doom_duel", []), ("doom_deathmatch_bots", ["--num_bots=2"])])
def test_a_population_trains_mutates_resumes_and_stops_cleanly(tmp_path, env_name, extra):
    from training import train_until

    from sample_factory.cfg.policy_params import read_hyperparams, read_reward_shaping

    exp_dir = tmp_path / "population"
    result = train_until(doom_cfg(env_name, *population_flags(tmp_path, "population", 8000), *extra))
    assert result["status"] == 0
    result.pop("runner")
    assert_no_engines_left()
    histories = [pbt_history(exp_dir, p) for p in range(4)]
    assert any(e.get("hyperparams") for h in histories for e in h), f"no mutation: {histories}"
    shaping = [read_reward_shaping(exp_dir, p) for p in range(4)]
    assert all(s and s["death"] < 0 for s in shaping), "the Doom shaping coefficients are evolved per policy"
    params = [read_hyperparams(exp_dir, p) for p in range(4)]

    resumed = train_until(doom_cfg(env_name, *population_flags(tmp_path, "population", 12000), *extra))
    assert resumed["status"] == 0 and resumed["env_steps"] >= 12000
    resumed.pop("runner")
    assert_no_engines_left()
    for p in range(4):
        after = pbt_history(exp_dir, p)
        assert after[: len(histories[p])] == histories[p], "the resumed run continues the saved history"
    assert sum(len(pbt_history(exp_dir, p)) for p in range(4)) > sum(map(len, histories)), "updates go on"
    assert all(read_hyperparams(exp_dir, p).keys() == params[p].keys() for p in range(4))


def test_each_agent_of_a_match_has_its_own_reward_shaping():
    env = make_doom_env("doom_duel", doom_cfg("doom_duel"))
    try:
        default = env.get_default_reward_shaping()
        env.set_reward_shaping({**default, "death": -5.0}, 1)  # agent 1 belongs to another policy
        assert env.get_coefficients(0)["death"] == default["death"] != -5.0
        assert env.get_coefficients(1)["death"] == -5.0
    finally:
        env.close()


@pytest.mark.timeout(300)
def test_a_duel_against_frozen_league_snapshots_records_its_games_and_stops_cleanly(tmp_path):
    """--league_opponents in Doom: a frozen opponent plays the learner in duels, those games are the
    run's record (W/D/L per snapshot), only the learner trains, and no engine is left."""
    import json

    from training import train_until

    cfg = doom_cfg(
        "doom_duel",
        *small_serial_training_flags(tmp_path, "duel_league"),
        "--timelimit=0.05",
        "--league_snapshot_every_env_steps=1000",
        "--league_opponents=1",
        "--league_opponent_prob=1.0",
        "--train_for_env_steps=6000",
    )
    result = train_until(cfg)
    assert result["status"] == 0
    runner = result.pop("runner")
    assert len(runner.learners) == 1 and len(runner.inference_workers) == 2, "the opponent only acts"
    assert_no_engines_left()
    record = json.loads((tmp_path / "duel_league" / "league" / "training_games.json").read_text())
    played = {snapshot: sum(by_policy["0"]) for snapshot, by_policy in record["games"].items()}
    assert played and sum(played.values()) >= 2, record
    assert all(name.startswith("policy_00_") for name in played), "it plays the learner's own snapshots"
    assert "policy_0" in record["elo"]
