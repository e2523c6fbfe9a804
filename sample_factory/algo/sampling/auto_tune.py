"""`--auto_tune`: a sampling layout sized from a measured env step, for the flags the user left unset.

The rules, each from measurements on 2-core and 16-core machines:
  - one rollout worker per core (each pinned to its core, see utils/device.py);
  - a split's envs should take about `SPLIT_STEP_SEC` to step, so that the round trip of the
    other split through the inference worker (two queue messages and one batched forward pass)
    hides behind it, and inference batches grow past the size where streaming the weights
    dominates. Slow envs (Doom: ~500 us a step) get a few envs per split, fast ones (CartPole:
    ~5 us) get many. doom_basic on 2 cores trained at 2,880 / 3,040 / 3,320 FPS with 2 / 4 / 8
    envs per split;
  - image observations get at least `IMAGE_ENVS_PER_SPLIT` per split: a conv net's
    inference on CPU costs 0.8 ms a sample in batches of 4 and 0.4 ms in batches of 16, and
    with --model_bf16 doom_basic trained at 3,275 / 4,400-4,860 / 5,260-5,380 FPS with 4 / 8 / 16
    envs per split (each env adds ~22 MiB of PSS, most of it the engine);
  - image observations with inference on the CPU get one split per worker: a second split hides
    the inference round trip only when inference has cores (or a GPU) of its own, and here it
    would double the envs in flight, their memory and the policy lag. doom_basic with
    --model_bf16 on 2 cores, 2 x 8 envs in one split against 2 x 16 in two (batch 256 both):
    4,480-4,840 against 4,150-4,790 training FPS, 1,051-1,114 against 1,224-1,272 MiB, and a
    return of 70 after 163k-229k frames (the 2 x 4 defaults: 196k-212k) against 336k-387k;
  - that split holds exactly `IMAGE_ENVS_PER_SPLIT` envs, whatever the probe measured: the probe
    of a ViZDoom step reads 270-640 us from run to run (its engine may or may not share a core
    with it), which flipped doom_basic between 8 and 16 envs per split; 16 trained ~10 % faster
    (5,250 against 4,230-4,820 FPS) at 1,224 against 1,052 MiB, with twice the envs in flight;
  - with many envs per split the per-env Python loop costs more than the envs themselves, so
    single-agent envs are stepped as one vector env (--batched_sampling);
  - at most `MAX_ENVS_PER_SPLIT` envs per split: past that the learner, not sampling, sets the
    pace and more envs only add policy lag. A user's CartPole script (MLP 512x512, bf16) on 2
    cores: 33k / 47k / 47k env steps/s with 2 x 64 / 2 x 128 / 2 x 256 envs, its 50-episode
    mean passing 150 after 52k / 117k-125k / 285k steps;
  - a training iteration (batch_size x num_batches_per_epoch) is at most half of what the
    workers have in flight: the learner trains on one half while the other half is being
    sampled, and never waits for more than the pipeline holds. Vector observations keep
    batch_size and take as many minibatches as fill that half, so the SGD steps per frame stay
    those of the defaults: growing the batch to the half instead (8192 at 2 x 256 envs) cut
    CartPole's updates eight-fold and its return passed 150 only after 468k steps. Image
    observations keep the configured batch_size below the half, because a conv learner pays
    per sample (doom_basic: batch 512 instead of 256 trained ~10 % faster) and the batch sets
    the updates per frame (doom_basic at 2 x 16 envs: return 63-71 after 500k frames with 512,
    78 with 256).
And one precision rule: an image model that trains and infers on a CPU with native bfloat16
(AVX512-BF16 or AMX) runs with --model_bf16. doom_basic on 2 cores: 2,591 -> 3,611 training FPS
at 2 x 4 envs, and with the layout above two seeds reached a return of 70 after 199k and 229k
frames against 196k and 212k for float32 at 2 x 4. Vector models stay float32: --model_bf16
speeds up a 512x512 MLP's SGD step 2.7x, but CartPole's user script (2 x 8 envs, serial) then
needed 31k-37k steps to a 100-episode mean of 150 against 21k-25k in float32. On CPUs without
these instructions bfloat16 is slower, so nothing changes there.
Only the flags the user left at the library's defaults change (`keep` names the others: typed,
set by the script with `parser.set_defaults`, or edited in the cfg); the choice is logged and
saved with the config; --auto_tune=False keeps the plain defaults.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass

from sample_factory.envs.create_env import MultiAgentView, env_config_for, is_vector_env, make_env
from sample_factory.model.model_utils import is_image_space
from sample_factory.utils.device import policy_device

log = logging.getLogger(__name__)

SPLIT_STEP_SEC = 4e-3
MAX_ENVS_PER_SPLIT = 64
MIN_ENVS_PER_SPLIT_FOR_BATCHING = 16
IMAGE_ENVS_PER_SPLIT = 8
PROBE_SEC = 0.3
PROBE_MIN_STEPS = 10


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
    """Seconds per env step (one env, random actions, resets included), in this process."""
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


def auto_tune(cfg, env_info, keep: set[str] | frozenset = frozenset()) -> dict:
    """Sets the layout flags not named in `keep` (the user's choices); returns what changed."""
    typed = set(keep) | set(cfg.get("cli_args", {}))
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
    for name, value in chosen.items():
        cfg[name] = value
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
    cfg.auto_tune = False  # applied once: a resumed run keeps this layout
    return chosen
