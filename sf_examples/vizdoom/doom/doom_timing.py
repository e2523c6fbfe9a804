"""Where a Doom env step's time goes: the engine (make_action with frameskip) vs preprocessing.

    python -m sf_examples.vizdoom.doom.doom_timing --env=doom_basic --steps=2000

Plays random actions and prints microseconds per env step spent in the engine and in
preprocessing (resize to --res_w x --res_h, channels-first transpose, measurements), for each
resize interpolation, plus the resize alone on the frames the engine rendered.
"""

from __future__ import annotations

import argparse
import sys
import time

import cv2
import numpy as np

from sf_examples.vizdoom.doom.doom_envs import DoomEnv, DoomMultiAgentEnv
from sf_examples.vizdoom.doom.doom_player import INTERPOLATIONS, DoomSettings
from sf_examples.vizdoom.doom.doom_specs import doom_env_spec


def time_env(
    env_name: str, steps: int, interpolation: str, res_w: int, res_h: int, frameskip: int, seed: int = 0
) -> dict:
    settings = DoomSettings(res_w=res_w, res_h=res_h, frameskip=frameskip, interpolation=interpolation)
    spec = doom_env_spec(env_name)
    env = DoomMultiAgentEnv(spec, settings) if spec.num_agents > 1 else DoomEnv(spec, settings)
    rng = np.random.default_rng(seed)
    env.action_space.seed(seed)
    frames = []
    try:
        env.reset(seed=seed)
        for player in env.players:
            player.timing.update(engine_sec=0.0, preprocess_sec=0.0, steps=0)
        started = time.perf_counter()
        for _ in range(steps):
            if env.doom_spec.num_agents > 1:
                _, _, terminated, _, _ = env.step([env.action_space.sample() for _ in range(env.num_agents)])
                done = any(terminated)
            else:
                _, _, terminated, truncated, _ = env.step(env.action_space.sample())
                done = terminated or truncated
                if done:
                    env.reset()
            if len(frames) < 200 and rng.random() < 0.2:
                frames.append(env.players[0].screen())
        wall_sec = time.perf_counter() - started
        timing = env.timing()
    finally:
        env.close()
    per_step = max(1, timing["steps"])
    result = {
        "env_steps": steps,
        "engine_us": 1e6 * timing["engine_sec"] / per_step,
        "preprocess_us": 1e6 * timing["preprocess_sec"] / per_step,
        "wall_us_per_env_step": 1e6 * wall_sec / steps,
    }
    for name, flag in INTERPOLATIONS.items():
        reps = 20
        t0 = time.perf_counter()
        for _ in range(reps):
            for frame in frames:
                cv2.resize(frame, (res_w, res_h), interpolation=flag)
        result[f"resize_{name}_us"] = 1e6 * (time.perf_counter() - t0) / (reps * max(1, len(frames)))
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="doom_basic")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--res_w", type=int, default=128)
    parser.add_argument("--res_h", type=int, default=72)
    parser.add_argument("--frameskip", type=int, default=4)
    parser.add_argument("--interpolations", nargs="*", default=["nearest", "area"], choices=sorted(INTERPOLATIONS))
    args = parser.parse_args(argv)
    for interpolation in args.interpolations:
        r = time_env(args.env, args.steps, interpolation, args.res_w, args.res_h, args.frameskip)
        print(
            f"{args.env} 160x120 -> {args.res_w}x{args.res_h} {interpolation:>7}: engine {r['engine_us']:7.1f} us/step "
            f"(frameskip {args.frameskip}), preprocessing {r['preprocess_us']:6.1f} us/step, "
            f"total {r['wall_us_per_env_step']:7.1f} us/step (random actions, resets included) | resize alone: "
            + ", ".join(f"{name} {r[f'resize_{name}_us']:.1f} us" for name in INTERPOLATIONS),
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
