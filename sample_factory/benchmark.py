"""`python -m sample_factory.benchmark --env=<name> [training flags]`: how close to the simulator's speed?

Four phases on the same cores, one after another:
  raw       the env alone: --num_workers processes, each stepping --num_envs_per_worker envs
            with random actions, no framework (as vector envs with --batched_sampling);
  overhead  the sampler with a policy that costs nothing (zeros instead of a forward pass):
            what the framework itself costs per env frame, outside env.step and the model;
  sampler   the whole pipeline (rollout and inference workers) with learning switched off;
  training  the real thing.
From raw and overhead it projects the FPS on N cores with the model on a GPU: each frame costs
the env step plus the framework's CPU, and the cores share that work (`project_fps`).
FPS counts env frames (agent steps x frameskip). Each phase runs `--benchmark_sec` after
`--benchmark_warmup_sec` of warm-up; FPS is the median over windows of `--benchmark_window_sec`,
or the mean over the whole span when sampling stalls for a window or more (workers waiting for
a learner with long iterations sample in bursts; a median of windows would then say nothing).
Also reported: peak memory (PSS) of the whole process tree and CPU use per process during
training, and the start-up time to the first env step.
"""

from __future__ import annotations

import argparse
import json
import logging
import queue
import shutil
import statistics
import sys
import tempfile
import time

import numpy as np
import psutil
import torch

from sample_factory.algo.sampling.auto_tune import auto_tune
from sample_factory.cfg.arguments import parse_full_cfg, parse_sf_args, user_chosen_flags
from sample_factory.cfg.derived import envs_per_split
from sample_factory.envs.create_env import MultiAgentView, env_config_for, make_env, obtain_env_info
from sample_factory.envs.env_families import setup_env_family
from sample_factory.envs.env_utils import env_registry_snapshot, restore_env_registry
from sample_factory.runner.processes import process_context
from sample_factory.signal_slot.loop import Timer
from sample_factory.train import make_runner
from sample_factory.utils.attr_dict import AttrDict
from sample_factory.utils.device import pin_rollout_worker
from sample_factory.utils.logging_setup import log_to_stderr, setup_logging

log = logging.getLogger(__name__)


PHASES = ("raw", "overhead", "sampler", "training")


def add_benchmark_args(parser: argparse.ArgumentParser):
    g = parser.add_argument_group("benchmark")
    g.add_argument("--benchmark_sec", type=float, default=30.0, help="Measured seconds per phase")
    g.add_argument("--benchmark_warmup_sec", type=float, default=10.0, help="Seconds of each phase not measured")
    g.add_argument("--benchmark_window_sec", type=float, default=2.0, help="FPS is the median over windows this long")
    g.add_argument(
        "--benchmark_phases", type=str, nargs="*", default=list(PHASES), choices=PHASES, help="Phases to run"
    )
    g.add_argument(
        "--benchmark_project_cores", type=int, nargs="*", default=[16, 64], help="Core counts to project the FPS for"
    )
    g.add_argument("--json", action="store_true", help="Print the results as JSON")
    g.add_argument("--results_file", type=str, default=None, help="Also write the results as JSON to this file")


# --- raw simulator ----------------------------------------------------------------------------


class _PerEnvStepper:
    """Steps a list of envs one by one with pre-drawn random actions (what non-batched workers do)."""

    def __init__(self, cfg, worker_idx: int):
        self.envs = [
            MultiAgentView(make_env(cfg, env_config_for(worker_idx, i, worker_idx * cfg.num_envs_per_worker + i)))
            for i in range(cfg.num_envs_per_worker)
        ]
        for i, env in enumerate(self.envs):
            env.reset(seed=worker_idx * 1000 + i)
        space = self.envs[0].env.action_space
        self.actions = [[space.sample() for _ in range(self.envs[0].num_agents)] for _ in range(256)]
        self.agent_steps_per_call = sum(env.num_agents for env in self.envs)
        self._k = 0

    def step(self):
        for env in self.envs:
            env.step(self.actions[self._k % len(self.actions)][: env.num_agents])
            self._k += 1

    def close(self):
        for env in self.envs:
            env.close()


class _VectorEnvStepper:
    """Steps vector envs, one per split, with pre-drawn random action batches (batched sampling)."""

    def __init__(self, cfg, env_info, worker_idx: int):
        from sample_factory.algo.sampling.env_runners import VectorEnvRunner

        per_split = envs_per_split(cfg)
        self.runners = [VectorEnvRunner(cfg, env_info, worker_idx, s, per_split) for s in range(cfg.worker_num_splits)]
        for runner in self.runners:
            runner.reset()
        space = env_info.action_space
        self.actions = [np.stack([space.sample() for _ in range(per_split)]) for _ in range(64)]
        self.agent_steps_per_call = per_split * cfg.worker_num_splits
        self._k = 0

    def step(self):
        for runner in self.runners:
            runner.step(self.actions[self._k % len(self.actions)])
            self._k += 1

    def close(self):
        for runner in self.runners:
            runner.close()


def _raw_env_process(
    cfg, env_info, registry, worker_idx: int, duration_sec: float, warmup_sec: float, window_sec: float, results
):
    restore_env_registry(registry)
    torch.set_num_threads(1)
    pin_rollout_worker(cfg, worker_idx)  # placed like the rollout worker it stands for
    stepper = _VectorEnvStepper(cfg, env_info, worker_idx) if cfg.batched_sampling else _PerEnvStepper(cfg, worker_idx)
    frames_per_call = stepper.agent_steps_per_call * cfg.env_frameskip
    started = time.monotonic()
    frames, windows, window_start, window_frames = 0, [], None, 0
    cpu_start = frames_start = None
    while True:
        now = time.monotonic()
        if now - started >= warmup_sec + duration_sec:
            break
        stepper.step()
        frames += frames_per_call
        if now - started >= warmup_sec:
            if window_start is None:
                window_start, window_frames = now, frames
                cpu_start, frames_start = _tree_cpu_sec(), frames
            elif now - window_start >= window_sec:
                windows.append((now - window_start, frames - window_frames))
                window_start, window_frames = now, frames
    cpu_sec = _tree_cpu_sec() - cpu_start if cpu_start is not None else float("nan")
    stepper.close()
    results.put((windows, cpu_sec, frames - (frames_start or 0)))


def _tree_cpu_sec() -> float:
    """CPU seconds of this process and its children (env engines that run as processes of their own)."""
    total = 0.0
    for process in _process_tree(psutil.Process().pid):
        try:
            total += sum(process.cpu_times()[:2])
        except psutil.Error:
            continue
    return total


def measure_raw_fps(cfg, duration_sec: float, warmup_sec: float, window_sec: float) -> dict:
    ctx = process_context()
    results = ctx.Queue()
    registry = env_registry_snapshot([cfg.env])
    env_info = obtain_env_info(cfg)
    procs = [
        ctx.Process(
            target=_raw_env_process, args=(cfg, env_info, registry, w, duration_sec, warmup_sec, window_sec, results)
        )
        for w in range(cfg.num_workers)
    ]
    for p in procs:
        p.start()
    per_process = []
    deadline = time.monotonic() + warmup_sec + duration_sec + 120
    while len(per_process) < len(procs):
        try:
            per_process.append(results.get(timeout=1.0))
        except queue.Empty:
            failed = [p for p in procs if p.exitcode not in (None, 0)]
            if failed or time.monotonic() > deadline:
                for p in procs:
                    p.kill()
                raise RuntimeError(
                    f"raw env benchmark process failed (exit codes {[p.exitcode for p in procs]})"
                ) from None
    for p in procs:
        p.join(30)
    # Windows of all processes overlap in time: the total FPS of window i is the sum over processes.
    windows = [w for w, _, _ in per_process]
    num_windows = min(len(w) for w in windows)
    totals = [sum(w[i][1] / w[i][0] for w in windows) for i in range(num_windows)]
    cpu_sec, frames = sum(c for _, c, _ in per_process), sum(f for _, _, f in per_process)
    return {
        "fps": statistics.median(totals) if totals else float("nan"),
        "windows": len(totals),
        "env_cpu_us_per_frame": 1e6 * cpu_sec / frames if frames else float("nan"),
    }


# --- the pipeline -----------------------------------------------------------------------------


def _process_tree(root_pid: int) -> list[psutil.Process]:
    root = psutil.Process(root_pid)
    return [root] + root.children(recursive=True)


def measure_pipeline(cfg, duration_sec: float, warmup_sec: float, window_sec: float, null_policy: bool = False) -> dict:
    """Runs the pipeline for warm-up + duration; FPS windows, peak PSS, CPU per process, start-up.
    `null_policy`: inference answers with zeros instead of running the model (the overhead phase)."""
    _, runner = make_runner(cfg)
    runner.null_policy = null_policy
    launched = time.monotonic()
    samples: list[tuple[float, int, int]] = []  # (time, frames, messages)
    first_step_sec = {}
    peak_pss = [0]
    cpu_start: dict[int, tuple[str, float]] = {}
    cpu_end: dict[int, float] = {}
    measure_from = [None]

    def watch_first_step():
        if "sec" not in first_step_sec and bool(runner.shared.buffers.valids.any()):
            first_step_sec["sec"] = time.monotonic() - launched
            return
        if "sec" not in first_step_sec:
            Timer(runner.event_loop, 0.01, watch_first_step, periodic=False)

    def sample_progress():
        now = time.monotonic()
        loops = [runner.event_loop] + [process.event_loop for process in runner.processes]  # started by run()
        samples.append((now, int(runner.shared.frames_sampled.sum()), sum(loop.messages_received for loop in loops)))
        procs = _process_tree(psutil.Process().pid)
        pss = 0
        for p in procs:
            try:
                pss += p.memory_full_info().pss
                name = _component_name(runner, p.pid)
                cpu = sum(p.cpu_times()[:2])
                if measure_from[0] is not None:
                    cpu_start.setdefault(p.pid, (name, cpu))
                    cpu_end[p.pid] = cpu
            except psutil.Error:
                continue
        peak_pss[0] = max(peak_pss[0], pss)
        # Warm-up counts from the first env step, so slow start-ups don't eat into the measurement.
        if measure_from[0] is None and "sec" in first_step_sec and now - launched >= warmup_sec + first_step_sec["sec"]:
            measure_from[0] = now
        if measure_from[0] is not None and now - measure_from[0] >= duration_sec:
            runner.request_stop()

    Timer(runner.event_loop, 0.01, watch_first_step, periodic=False)
    Timer(runner.event_loop, window_sec, sample_progress)
    status = runner.run()

    measured = [(t, s, m) for t, s, m in samples if measure_from[0] is not None and t >= measure_from[0]]
    fps_windows = [(s1 - s0) / (t1 - t0) for (t0, s0, _), (t1, s1, _) in zip(measured, measured[1:]) if t1 > t0]
    frames = (measured[-1][1] - measured[0][1]) if len(measured) > 1 else 0
    messages = (measured[-1][2] - measured[0][2]) if len(measured) > 1 else 0
    span = (measured[-1][0] - measured[0][0]) if len(measured) > 1 else 0.0
    cpu = {}
    for pid, (name, start) in cpu_start.items():
        if span > 0:
            cpu[name] = cpu.get(name, 0.0) + 100.0 * (cpu_end[pid] - start) / span
    # Windows without a single frame mean the workers stall while the learner trains a long
    # iteration: sampling comes in bursts longer than a window, so only the span's mean is true.
    stalls = sum(1 for fps in fps_windows if fps == 0)
    if stalls and span > 0:
        fps = frames / span
    else:
        fps = statistics.median(fps_windows) if fps_windows else float("nan")
    return {
        "status": status,
        "fps": fps,
        "windows": len(fps_windows),
        "stalled_windows": stalls,
        "span_sec": span,
        "peak_pss_mib": peak_pss[0] / 2**20,
        "startup_to_first_step_sec": first_step_sec.get("sec", float("nan")),
        "cpu_percent_by_process": {k: round(v, 1) for k, v in sorted(cpu.items())},
        "messages_per_frame": messages / frames if frames else float("nan"),
        "mean_reward": runner.stats.mean_reward(0),
    }


def _component_name(runner, pid: int) -> str:
    if pid == psutil.Process().pid:
        if runner.cfg.serial_mode:
            return "runner (all components)"
        return "runner and learner" if runner.hosts_learner else "runner"
    for process in runner.processes:
        if process.pid == pid:
            return process.name
    return "other (env engines, helpers)"


# --- entry point ------------------------------------------------------------------------------


def run_benchmark(cfg) -> dict:
    tuned = {}
    if cfg.auto_tune:  # once: every phase runs the same layout
        cfg, tuned = auto_tune(cfg, obtain_env_info(cfg), keep=user_chosen_flags(cfg))
    train_dir = tempfile.mkdtemp(prefix="sf_benchmark_")
    results = {
        "env": cfg.env,
        "num_workers": cfg.num_workers,
        "num_envs_per_worker": cfg.num_envs_per_worker,
        "cores": psutil.cpu_count(),
    }
    if tuned:
        results["auto_tune"] = tuned
    try:
        common = dict(
            train_dir=train_dir, restart_behavior="overwrite", train_for_env_steps=int(1e12), train_for_seconds=int(1e9)
        )
        timing = (cfg.benchmark_sec, cfg.benchmark_warmup_sec, cfg.benchmark_window_sec)
        if "raw" in cfg.benchmark_phases:
            log.info("Phase raw: %d processes x %d envs, random actions", cfg.num_workers, cfg.num_envs_per_worker)
            results["raw"] = measure_raw_fps(cfg, *timing)
        if "overhead" in cfg.benchmark_phases:
            log.info("Phase overhead: the pipeline without learning, with a policy that costs nothing")
            overhead_cfg = AttrDict({**cfg, **common, "experiment": "overhead", "sampler_only": True})
            results["overhead"] = measure_pipeline(overhead_cfg, *timing, null_policy=True)
        if "sampler" in cfg.benchmark_phases:
            log.info("Phase sampler: the pipeline without learning")
            results["sampler"] = measure_pipeline(
                AttrDict({**cfg, **common, "experiment": "sampler", "sampler_only": True}), *timing
            )
        if "training" in cfg.benchmark_phases:
            log.info("Phase training")
            results["training"] = measure_pipeline(
                AttrDict({**cfg, **common, "experiment": "training", "sampler_only": False}), *timing
            )
    finally:
        shutil.rmtree(train_dir, ignore_errors=True)
    raw_fps = results.get("raw", {}).get("fps")
    for phase in ("overhead", "sampler", "training"):
        if phase in results and raw_fps:
            results[phase]["ratio_to_raw"] = results[phase]["fps"] / raw_fps
    if "raw" in results and "overhead" in results:
        results["framework_cost"] = framework_cost(results["raw"], results["overhead"])
        results["projected_fps"] = {n: project_fps(results["framework_cost"], n) for n in cfg.benchmark_project_cores}
    return results


def framework_cost(raw: dict, overhead: dict) -> dict:
    """CPU microseconds per env frame: the env's own step (raw phase) and what the framework adds
    around it with a policy that costs nothing (overhead phase), by component."""
    fps = overhead["fps"]
    cpu = overhead["cpu_percent_by_process"]

    def us_per_frame(percent: float) -> float:
        return 1e6 * percent / 100.0 / fps

    env_us = raw["env_cpu_us_per_frame"]
    rollout = sum(pct for name, pct in cpu.items() if name.startswith("rollout_worker") or name.startswith("other"))
    inference = sum(pct for name, pct in cpu.items() if name.startswith("inference"))
    runner = sum(pct for name, pct in cpu.items() if name.startswith("runner"))
    cost = {
        "env_step_us": env_us,
        "rollout_worker_outside_env_us": max(0.0, us_per_frame(rollout) - env_us),
        "inference_worker_outside_model_us": us_per_frame(inference),
        "runner_us": us_per_frame(runner),
        "messages_per_frame": overhead["messages_per_frame"],
    }
    cost["framework_us"] = (
        cost["rollout_worker_outside_env_us"] + cost["inference_worker_outside_model_us"] + cost["runner_us"]
    )
    cost["framework_percent_of_env"] = 100.0 * cost["framework_us"] / env_us if env_us else float("nan")
    return cost


def project_fps(cost: dict, cores: int) -> float:
    """FPS on `cores` cores like these with the model on a GPU that keeps up: every frame costs
    the env step plus the framework's CPU, spread evenly over the cores (an upper bound: memory
    bandwidth, the learner's CPU side and the GPU's own latency are not in it)."""
    return cores * 1e6 / (cost["env_step_us"] + cost["framework_us"])


def format_results(results: dict) -> str:
    lines = [
        f"Benchmark of {results['env']}: {results['num_workers']} workers x {results['num_envs_per_worker']} envs on {results['cores']} cores"
    ]
    for phase in PHASES:
        if phase not in results:
            continue
        r = results[phase]
        if r.get("stalled_windows"):
            how = (
                f"mean over {r['span_sec']:.0f} s: sampling stalled in {r['stalled_windows']} of {r['windows']} windows"
            )
        else:
            how = f"median of {r['windows']} windows"
        line = f"  {phase:<9} {r['fps']:>10,.0f} FPS ({how})"
        if "ratio_to_raw" in r:
            line += f"  = {100 * r['ratio_to_raw']:.1f}% of raw"
        lines.append(line)
    cost = results.get("framework_cost")
    if cost:
        lines.append(
            f"  framework cost per env frame (CPU): {cost['framework_us']:.1f} us = {cost['framework_percent_of_env']:.0f}% of the "
            f"env step's {cost['env_step_us']:.1f} us: rollout workers outside env.step {cost['rollout_worker_outside_env_us']:.1f}, "
            f"inference outside the model {cost['inference_worker_outside_model_us']:.1f}, runner {cost['runner_us']:.1f}; "
            f"{cost['messages_per_frame']:.3f} messages per frame"
        )
        projected = ", ".join(f"{fps:,.0f} FPS on {cores} cores" for cores, fps in results["projected_fps"].items())
        lines.append(f"  projected with the model on a GPU: {projected}")
    training = results.get("training") or results.get("sampler")
    if training:
        lines.append(f"  peak memory (PSS, whole process tree): {training['peak_pss_mib']:.0f} MiB")
        lines.append(f"  start-up to the first env step: {training['startup_to_first_step_sec']:.1f} s")
        lines.append("  CPU use during the measured part (% of one core):")
        for name, pct in training["cpu_percent_by_process"].items():
            lines.append(f"    {name:<30} {pct:6.1f}")
    return "\n".join(lines)


def parse_benchmark_args(argv=None, extra_setup=None):
    """`extra_setup(parser, partial_cfg)` lets an env family add flags, defaults and registrations."""
    argv = sys.argv[1:] if argv is None else argv
    parser, partial_cfg = parse_sf_args(argv)
    add_benchmark_args(parser)
    if extra_setup is not None:
        extra_setup(parser, partial_cfg)
    return parse_full_cfg(parser, argv)


def main(argv=None, extra_setup=setup_env_family) -> int:
    setup_logging()
    cfg = parse_benchmark_args(argv, extra_setup)
    if cfg.json:
        log_to_stderr()
    results = run_benchmark(cfg)
    if cfg.results_file:
        with open(cfg.results_file, "w") as f:
            json.dump(results, f, indent=2, default=float)
    if cfg.json:
        print(json.dumps(results, indent=2, default=float))
    else:
        print(format_results(results))
    return 0 if all(results.get(p, {}).get("status", 0) == 0 for p in ("sampler", "training")) else 1


if __name__ == "__main__":
    sys.exit(main())
