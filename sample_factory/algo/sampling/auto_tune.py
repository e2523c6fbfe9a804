"""`--auto_tune` (on by default): a sampling layout sized from a measured env step, for the flags the
user left at the library's defaults.

The rules (the measurements behind each are in the README, "Why auto_tune's rules"):
  - one rollout worker per core;
  - a split's envs take about `SPLIT_STEP_SEC` to step, so that the other split's round trip
    through the inference worker hides behind it; at most `MAX_ENVS_PER_SPLIT` per split;
  - image observations get `IMAGE_ENVS_PER_SPLIT` envs per split and one split per worker when
    inference runs on the CPU (at least that many, in the usual two splits, when it does not);
  - single-agent envs with `MIN_ENVS_PER_SPLIT_FOR_BATCHING` or more envs per split are stepped
    as one vector env (--batched_sampling);
  - a training iteration is at most half of what the workers have in flight: vector observations
    keep batch_size and fill that half with minibatches (the SGD steps per frame stay those of the
    defaults), image observations cap batch_size below it;
  - an image model on a CPU with native bfloat16 (AVX512-BF16 or AMX) runs with --model_bf16.
Flags named in `keep` (typed, set by the script with `parser.set_defaults`, or edited in the cfg)
stay as they are and size the rest. The choice is logged and saved with the config;
--auto_tune=False keeps the plain defaults.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import threading
import time
import traceback
from dataclasses import dataclass

from sample_factory.envs.create_env import MultiAgentView, env_config_for, is_vector_env, make_env
from sample_factory.model.model_utils import is_image_space
from sample_factory.utils.attr_dict import AttrDict
from sample_factory.utils.device import policy_device

log = logging.getLogger(__name__)

SPLIT_STEP_SEC = 4e-3
MAX_ENVS_PER_SPLIT = 64
MIN_ENVS_PER_SPLIT_FOR_BATCHING = 16
IMAGE_ENVS_PER_SPLIT = 8
PROBE_SEC = 0.3
PROBE_MIN_STEPS = 10
PROBE_HUNG_SEC = 60.0  # a probe still running after this is named in the log with its stack (a hung env?)


@dataclass(frozen=True)
class SamplingLayout:
    num_workers: int
    num_envs_per_worker: int
    worker_num_splits: int
    batched_sampling: bool
    batch_size: int
    num_batches_per_epoch: int


def available_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def measure_env_step_sec(cfg) -> float:
    """Seconds per env step (one env, random actions, resets included), in this process (the user's
    env may need the main thread). A probe that has not finished after PROBE_HUNG_SEC is named, with
    where it is, so that an env hung at its start is not a silent hang of the command."""
    done = threading.Event()
    watchdog = threading.Thread(
        target=_name_a_hung_probe, args=(cfg.env, threading.get_ident(), done), name="auto_tune_watchdog", daemon=True
    )
    watchdog.start()
    try:
        return _probe_env_step_sec(cfg)
    finally:
        done.set()


def _name_a_hung_probe(env_name: str, probe_thread_id: int, done: threading.Event):
    if done.wait(PROBE_HUNG_SEC):
        return
    frame = sys._current_frames().get(probe_thread_id)
    stack = "".join(traceback.format_stack(frame)) if frame is not None else ""
    log.error(
        "auto_tune: timing a few steps of one %s env has taken %.0fs: a hung env? (Ctrl-C stops; --auto_tune=False"
        " skips the timing) Where it is:\n%s",
        env_name,
        PROBE_HUNG_SEC,
        stack,
    )


def _probe_env_step_sec(cfg) -> float:
    env = make_env(cfg, env_config_for(-1, 0, 0))
    try:
        if is_vector_env(env):
            env.reset(seed=0)
            step, envs_per_step = (lambda: env.step(env.action_space.sample())), env.num_envs
        else:
            view = MultiAgentView(env)  # resets single-agent envs when done; multi-agent envs reset themselves
            view.reset(seed=0)
            space = env.action_space
            step, envs_per_step = (lambda: view.step([space.sample() for _ in range(view.num_agents)])), 1
        steps = 0
        started = time.perf_counter()
        while steps < PROBE_MIN_STEPS or time.perf_counter() - started < PROBE_SEC:
            step()
            steps += 1
        return (time.perf_counter() - started) / (steps * envs_per_step)
    finally:
        env.close()


def cpu_has_native_bf16(cpuinfo_path: str = "/proc/cpuinfo") -> bool:
    """AVX512-BF16 or AMX-BF16 among the CPU's flags (False where they cannot be read)."""
    try:
        with open(cpuinfo_path) as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def _nearest_pow2(x: float) -> int:
    return 1 << max(0, round(math.log2(max(1.0, x))))


def choose_layout(
    cfg,
    num_agents: int,
    env_step_sec: float,
    cores: int,
    keep: frozenset = frozenset(),
    image_obs: bool = False,
    cpu_inference: bool = False,
) -> SamplingLayout:
    """The layout for this env; flags named in `keep` stay as they are in cfg (and size the rest)."""

    def kept_or(name, value):
        return cfg[name] if name in keep else value

    splits = kept_or("worker_num_splits", 1 if image_obs and cpu_inference else cfg.worker_num_splits)
    num_workers = kept_or("num_workers", cores)
    envs_per_split = min(MAX_ENVS_PER_SPLIT, _nearest_pow2(SPLIT_STEP_SEC / max(env_step_sec, 1e-7)))
    if image_obs:
        envs_per_split = IMAGE_ENVS_PER_SPLIT if cpu_inference else max(envs_per_split, IMAGE_ENVS_PER_SPLIT)
    envs_per_worker = kept_or("num_envs_per_worker", envs_per_split * splits)
    batched = kept_or(
        "batched_sampling", num_agents == 1 and envs_per_worker // splits >= MIN_ENVS_PER_SPLIT_FOR_BATCHING
    )
    # A training iteration (batch_size x num_batches_per_epoch samples) of whole trajectories.
    trajectories_in_flight = num_workers * envs_per_worker * num_agents
    half_in_flight = max(1, trajectories_in_flight // 2) * cfg.rollout
    if image_obs:
        num_batches = cfg.num_batches_per_epoch
        minibatch_cap = max(1, trajectories_in_flight // 2 // num_batches) * cfg.rollout
        batch_size = kept_or("batch_size", min(cfg.batch_size, minibatch_cap))
    else:
        batch_size = kept_or("batch_size", min(cfg.batch_size, half_in_flight))
        num_batches = kept_or("num_batches_per_epoch", max(1, half_in_flight // batch_size))
    return SamplingLayout(num_workers, envs_per_worker, splits, batched, batch_size, num_batches)


def auto_tune(cfg, env_info, keep: set[str] | frozenset = frozenset()) -> tuple[AttrDict, dict]:
    """A copy of cfg with the layout flags not named in `keep` (the user's choices) chosen for this
    machine, and what changed; cfg itself is left as it is."""
    typed = set(keep) | set(cfg.cli_args)
    step_sec = measure_env_step_sec(cfg)
    cores = available_cores()
    image_obs = any(is_image_space(space) for space in env_info.obs_space.spaces.values())
    cpu_inference = policy_device(cfg).type == "cpu"
    layout = choose_layout(
        cfg,
        env_info.num_agents,
        step_sec,
        cores,
        keep=frozenset(typed),
        image_obs=image_obs,
        cpu_inference=cpu_inference,
    )
    chosen = {name: value for name, value in vars(layout).items() if cfg[name] != value}
    wants_bf16 = cpu_inference and not cfg.model_bf16 and "model_bf16" not in typed and image_obs
    if wants_bf16 and cpu_has_native_bf16():
        chosen["model_bf16"] = True
    cfg = AttrDict({**cfg, **chosen, "auto_tune": False})  # applied once: a resumed run keeps this layout
    tuned = set(vars(layout)) | {"model_bf16"}
    log.info(
        "auto_tune: an env step takes %.0f us on %d cores -> %d workers x %d envs (%d splits, %s), %d x %d samples "
        "per training iteration%s%s",
        step_sec * 1e6,
        cores,
        cfg.num_workers,
        cfg.num_envs_per_worker,
        cfg.worker_num_splits,
        "vectorized" if cfg.batched_sampling else "per-env stepping",
        cfg.num_batches_per_epoch,
        cfg.batch_size,
        ", model_bf16 (the CPU has native bfloat16)" if chosen.get("model_bf16") else "",
        f" (kept as chosen: {', '.join(sorted(typed & tuned))})" if typed & tuned else "",
    )
    return cfg, chosen
