"""What the runner knows about progress: FPS, episode returns, learner stats; console and TensorBoard."""

from __future__ import annotations

import csv
import logging
import time
from collections import defaultdict, deque
from pathlib import Path

import numpy as np

from sample_factory.utils.experiment_folder import (
    PROGRESS_FILE,  # noqa: F401 (tests import it from here)
    ExperimentFolder,
    atomic_write_json,
)

log = logging.getLogger(__name__)

FPS_WINDOWS_SEC = (10, 60, 300)
PROGRESS_COLUMNS = ("policy_id", "env_steps", "train_seconds", "reward_mean", "len_mean", "fps_10s")
# Written after them: the mean `true_objective` (frags in Doom) where the env reports one, else the return.
# Files of older runs lack it; a resumed run keeps their header.
OBJECTIVE_COLUMN = "objective_mean"
WRITE_FAILURE_LOG_INTERVAL_SEC = 60.0  # a file that cannot be written (a full disk) is named at most this often


def last_train_seconds(progress_path: Path) -> float:
    """`train_seconds` of the last readable row of a progress file; 0 when there is none."""
    try:
        with open(progress_path, newline="") as f:
            rows = list(csv.DictReader(f))
    except FileNotFoundError:
        return 0.0
    for row in reversed(rows):
        try:
            return float(row["train_seconds"])
        except (KeyError, TypeError, ValueError):
            continue  # a row cut short by a killed run
    return 0.0


class RunStats:
    def __init__(
        self,
        cfg,
        experiment_dir: Path,
        resumed_env_steps: list[int] | None = None,
        resumed_train_seconds: float | None = None,
    ):
        self.cfg = cfg
        self.experiment_dir = Path(experiment_dir)
        self.folder = ExperimentFolder(self.experiment_dir)
        resumed = list(resumed_env_steps or [0] * cfg.num_policies)
        self.env_steps = list(resumed)
        self.env_steps_at_start = list(resumed)
        self.samples_trained = 0
        self._samples_history: deque = deque()
        self.train_steps = [0] * cfg.num_policies
        self.episode_rewards = [deque(maxlen=cfg.stats_avg) for _ in range(cfg.num_policies)]
        self.episode_lens = [deque(maxlen=cfg.stats_avg) for _ in range(cfg.num_policies)]
        self.true_objectives = [deque(maxlen=cfg.stats_avg) for _ in range(cfg.num_policies)]
        self.extra_stats = [defaultdict(lambda: deque(maxlen=cfg.stats_avg)) for _ in range(cfg.num_policies)]
        self.learner_stats: list[dict] = [{} for _ in range(cfg.num_policies)]
        self.lag = [{"min": 0.0, "avg": 0.0, "max": 0.0} for _ in range(cfg.num_policies)]
        self.num_episodes = [0] * cfg.num_policies
        self.env_failures = 0  # envs that raised and were made anew
        self.worker_restarts = 0  # rollout and inference worker processes that died or stalled and were started anew
        self.non_finite_steps = 0  # steps not trained on: an env returned NaN or inf (made 0)
        self._fps_history: deque = deque()
        self._writers = None
        self._last_summary_time = 0.0
        self._last_train_summary = [
            float("-inf")
        ] * cfg.num_policies  # train scalars: every --experiment_summaries_interval
        self.progress_path = self.folder.progress_file
        self._progress_has_objective: bool | None = None  # known at the first row written
        # A resumed run continues the time axis of the runs before it (the checkpoint's clock when known).
        if resumed_train_seconds is None:
            resumed_train_seconds = last_train_seconds(self.progress_path)
        self._train_seconds_before = resumed_train_seconds
        self._wandb = None
        self._write_failure_logged: dict[Path, float] = {}

    # --- inputs ------------------------------------------------------------------------------

    @property
    def total_env_steps(self) -> int:
        return sum(self.env_steps)

    @property
    def env_steps_this_run(self) -> int:
        return sum(s - (s0 or 0) for s, s0 in zip(self.env_steps, self.env_steps_at_start))

    def on_learner_report(self, policy_id: int, stats: dict):
        self.samples_trained += stats.get("samples", 0)
        self.env_steps[policy_id] = stats["env_steps"]
        self.train_steps[policy_id] = stats["policy_version"]
        self.learner_stats[policy_id] = stats
        self.lag[policy_id] = {"min": stats["lag_min"], "avg": stats["lag_avg"], "max": stats["lag_max"]}
        now = time.monotonic()
        if now - self._last_train_summary[policy_id] >= self.cfg.experiment_summaries_interval:
            self._last_train_summary[policy_id] = now
            self.write_scalars(policy_id, "train", stats, stats["env_steps"])

    def on_episodes(self, episodes: list[dict]):
        for ep in episodes:
            p = ep["policy_id"]
            self.episode_rewards[p].append(ep["reward"])
            self.episode_lens[p].append(ep["len"])
            self.num_episodes[p] += 1
            if "true_objective" in ep:
                self.true_objectives[p].append(ep["true_objective"])
            for key, value in ep.get("episode_extra_stats", {}).items():
                self.extra_stats[p][key].append(value)

    def forget_episodes(self, policy_id: int):
        """Drops the recent episodes of a policy whose weights were replaced (population-based training)."""
        self.episode_rewards[policy_id].clear()
        self.true_objectives[policy_id].clear()
        for values in self.extra_stats[policy_id].values():
            values.clear()

    def mean_reward(self, policy_id: int = 0) -> float:
        rewards = self.episode_rewards[policy_id]
        return float(np.mean(rewards)) if rewards else float("nan")

    # --- outputs -----------------------------------------------------------------------------

    def fps(self, now: float) -> dict[int, float]:
        """Env frames per second over the last 10/60/300 seconds (as far back as the run goes)."""
        self._fps_history.append((now, self.env_steps_this_run))
        while self._fps_history and now - self._fps_history[0][0] > max(FPS_WINDOWS_SEC) + 5:
            self._fps_history.popleft()
        out = {}
        for window in FPS_WINDOWS_SEC:
            past = next(((t, s) for t, s in self._fps_history if now - t <= window), None)
            if past is None or now - past[0] < 1e-3:
                out[window] = float("nan")
            else:
                out[window] = (self.env_steps_this_run - past[1]) / (now - past[0])
        return out

    def samples_per_sec(self, now: float, window_sec: float = 10.0) -> float:
        """Samples the learners trained on per second over the last `window_sec`."""
        self._samples_history.append((now, self.samples_trained))
        while now - self._samples_history[0][0] > window_sec:
            self._samples_history.popleft()
        t0, s0 = self._samples_history[0]
        return (self.samples_trained - s0) / (now - t0) if now > t0 else float("nan")

    def report(self, elapsed_sec: float):
        now = time.monotonic()
        fps = self.fps(now)
        fps_text = ", ".join(f"{w}s: {v:.0f}" for w, v in fps.items())
        parts = [f"FPS ({fps_text})", f"samples/s {self.samples_per_sec(now):.0f}", f"env steps {self.total_env_steps}"]
        budget = self.cfg.train_for_env_steps
        if budget < int(1e10) and not np.isnan(fps[10]) and fps[10] > 0:
            eta = max(0.0, (budget - self.total_env_steps) / fps[10])
            parts.append(f"{100.0 * self.total_env_steps / budget:.0f}% ETA {eta:.0f}s")
        for p in range(self.cfg.num_policies):
            lag = self.lag[p]
            parts.append(
                f"p{p}: reward {self.mean_reward(p):.2f} len {np.mean(self.episode_lens[p]) if self.episode_lens[p] else float('nan'):.0f}"
                + (f" true objective {np.mean(self.true_objectives[p]):.2f}" if self.true_objectives[p] else "")
                + f" train steps {self.train_steps[p]} lag {lag['min']:.0f}/{lag['avg']:.1f}/{lag['max']:.0f}"
            )
            self._write_episode_scalars(p, fps)
        log.info(" | ".join(parts))
        self._append_progress(elapsed_sec, fps[10])
        self._flush_if_due()

    def _write_failed(self, path: Path, error: OSError):
        """A report that cannot be written (a full disk) costs the run nothing but the report: one line,
        repeated at most once a minute per file."""
        now = time.monotonic()
        if now - self._write_failure_logged.get(path, float("-inf")) >= WRITE_FAILURE_LOG_INTERVAL_SEC:
            self._write_failure_logged[path] = now
            log.error("%s: could not write (%s); the run goes on without it", path, error.strerror or error)

    def _append_progress(self, elapsed_sec: float, fps_10s: float):
        """Appends one row per policy that has finished episodes (for `python -m sample_factory.plot`)."""
        train_seconds = self._train_seconds_before + elapsed_sec
        rows = []
        for p in range(self.cfg.num_policies):
            if not self.episode_rewards[p]:
                continue  # no episode finished yet: a NaN return would only break the curve
            reward, length = self.mean_reward(p), float(np.mean(self.episode_lens[p]))
            objective = float(np.mean(self.true_objectives[p])) if self.true_objectives[p] else reward
            rows.append(
                (p, self.env_steps[p], f"{train_seconds:.2f}", f"{reward:.4f}", f"{length:.1f}", f"{fps_10s:.1f}")
                + (f"{objective:.4f}",)
            )
        if not rows:
            return
        try:
            self.experiment_dir.mkdir(parents=True, exist_ok=True)
            new_file = not self.progress_path.exists() or self.progress_path.stat().st_size == 0
            if new_file:
                self._progress_has_objective = True
            elif self._progress_has_objective is None:
                with open(self.progress_path) as f:
                    self._progress_has_objective = OBJECTIVE_COLUMN in f.readline()
            if not self._progress_has_objective:
                rows = [row[: len(PROGRESS_COLUMNS)] for row in rows]
            with open(self.progress_path, "a", newline="") as f:
                writer = csv.writer(f)
                if new_file:
                    writer.writerow(PROGRESS_COLUMNS + (OBJECTIVE_COLUMN,))
                writer.writerows(rows)  # closing the file flushes: a killed run keeps every report so far
        except OSError as e:
            self._write_failed(self.progress_path, e)

    def final_report(self, elapsed_sec: float):
        summary = {
            "env_steps": self.total_env_steps,
            "env_steps_this_run": self.env_steps_this_run,
            "elapsed_sec": elapsed_sec,
            "fps": self.env_steps_this_run / max(elapsed_sec, 1e-9),
            "env_failures": self.env_failures,
            "worker_restarts": self.worker_restarts,
            "non_finite_steps": self.non_finite_steps,
            "policies": [
                {
                    "policy_id": p,
                    "mean_reward": self.mean_reward(p),
                    "num_episodes": self.num_episodes[p],
                    "train_steps": self.train_steps[p],
                    "lag": self.lag[p],
                    "dropped_for_lag": self.learner_stats[p].get("dropped_for_lag", 0),
                }
                for p in range(self.cfg.num_policies)
            ],
        }
        log.info(
            "Done: %d env steps in %.1fs (%.0f FPS); mean reward %s%s%s%s",
            summary["env_steps"],
            elapsed_sec,
            summary["fps"],
            ", ".join(f"p{p}: {self.mean_reward(p):.2f}" for p in range(self.cfg.num_policies)),
            f"; {self.env_failures} env failure(s) recovered" if self.env_failures else "",
            f"; {self.worker_restarts} worker restart(s)" if self.worker_restarts else "",
            f"; {self.non_finite_steps} step(s) with NaN/inf dropped" if self.non_finite_steps else "",
        )
        self._append_progress(elapsed_sec, summary["fps"])  # the curve ends where the run ended
        try:
            atomic_write_json(self.folder.summary_file, summary, sort_keys=False)
        except OSError as e:
            self._write_failed(self.folder.summary_file, e)
        self.summary = summary

    # --- TensorBoard -------------------------------------------------------------------------

    def summary_writer(self, policy_id: int):
        """The TensorBoard writer of `policy_id` (`<experiment>/.summary/<policy_id>`)."""
        if self._writers is None:
            from tensorboardX import SummaryWriter

            self._writers = [
                SummaryWriter(str(self.folder.policy_summaries_dir(p)), flush_secs=self.cfg.flush_summaries_interval)
                for p in range(self.cfg.num_policies)
            ]
        return self._writers[policy_id]

    def write_scalars(self, policy_id: int, prefix: str, stats: dict, step: int | None = None):
        """TensorBoard (and W&B with --with_wandb) scalars `prefix/key`, at env step `step`."""
        step = self.env_steps[policy_id] if step is None else step
        writer = self.summary_writer(policy_id)
        numbers = {
            f"{prefix}/{k}": float(v) for k, v in stats.items() if isinstance(v, (int, float)) and np.isfinite(v)
        }
        for key, value in numbers.items():
            writer.add_scalar(key, value, step)
        if self.cfg.with_wandb and numbers:
            self._wandb_run().log({f"p{policy_id}/{k}": v for k, v in numbers.items()} | {"env_steps": step})

    def _wandb_run(self):
        if self._wandb is None:
            try:
                import wandb
            except ImportError:
                raise RuntimeError("--with_wandb needs the wandb package: pip install wandb") from None
            cfg = self.cfg
            self._wandb = wandb.init(
                project=cfg.wandb_project,
                entity=cfg.wandb_user,
                group=cfg.wandb_group,
                job_type=cfg.wandb_job_type,
                tags=cfg.wandb_tags,
                name=cfg.experiment,
                id=f"{cfg.experiment}_{abs(hash(str(self.experiment_dir.resolve()))) % 10**8}",
                resume="allow",
                dir=str(self.experiment_dir),
                config=dict(cfg),
            )
        return self._wandb

    def _write_episode_scalars(self, p: int, fps: dict):
        step = self.env_steps[p]
        scalars = {f"fps_{w}s": v for w, v in fps.items()}
        if self.episode_rewards[p]:
            scalars["reward"] = self.mean_reward(p)
            scalars["len"] = float(np.mean(self.episode_lens[p]))
        if self.true_objectives[p]:
            scalars["true_objective"] = float(np.mean(self.true_objectives[p]))
        self.write_scalars(p, "episode", scalars, step)
        extra = {k: float(np.mean(v)) for k, v in self.extra_stats[p].items() if v}
        if extra:
            self.write_scalars(p, "episode_extra", extra, step)

    def _flush_if_due(self):
        now = time.monotonic()
        if self._writers and now - self._last_summary_time > self.cfg.flush_summaries_interval:
            for w in self._writers:
                try:
                    w.flush()
                except OSError as e:
                    self._write_failed(Path(w.logdir), e)
            self._last_summary_time = now

    def close(self):
        for w in self._writers or []:
            w.close()
        self._writers = None
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None
