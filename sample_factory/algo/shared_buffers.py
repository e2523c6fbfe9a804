"""Shared-memory tensors that every process reads and writes in place.

* `TrajectoryBuffers`: one tensor per field, shaped `[num_slots, rollout + 1, ...]`. A slot
  holds one agent's trajectory; step `rollout` holds only the observation and RNN state that
  the next trajectory starts from (and that the learner bootstraps from).
* `SlotPool`: free slot indices of one policy, passed around as lists of ints through a
  transport queue (torchbeast's free queue; the full queue is the `trajectory_ready` signal).
* `SharedPolicyState`: a policy's weights in shared memory and a version counter, written by
  the learner and read by inference workers without a queue round trip (a seqlock).

Fresh buffers are filled with sentinels (NaN, -1, 255) so that reads of unwritten data stand out.
"""

from __future__ import annotations

import logging
import os
import queue
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import psutil
import torch

from sample_factory.algo.utils.host_staging import HostStaging
from sample_factory.algo.utils.torch_utils import to_torch_dtype
from sample_factory.model.action_distributions import action_buffer_spec, calc_num_action_parameters
from sample_factory.signal_slot import transport

log = logging.getLogger(__name__)


def _filled(shape, dtype: torch.dtype) -> torch.Tensor:
    t = torch.empty(shape, dtype=dtype)
    if dtype.is_floating_point:
        t.fill_(float("nan"))
    elif dtype == torch.bool:
        t.fill_(False)
    elif dtype == torch.uint8:
        t.fill_(255)
    else:
        t.fill_(-1)
    return t.share_memory_()


class InsufficientMemoryError(RuntimeError):
    """The buffers a config asks for do not fit in this machine's memory: the message names the flags."""


def _buffer_specs(
    num_slots: int, rollout: int, obs_space: gym.spaces.Dict, action_space: gym.Space, rnn_size: int
) -> tuple[dict, dict]:
    """(obs key -> (shape, dtype), flat field -> (shape, dtype)) of the trajectory buffers."""
    shape = (num_slots, rollout + 1)
    obs = {key: (shape + tuple(space.shape), to_torch_dtype(space.dtype)) for key, space in obs_space.spaces.items()}
    action_shape, action_dtype = action_buffer_spec(action_space)
    flat = {
        "actions": (shape + tuple(action_shape), action_dtype),
        "action_logits": (shape + (calc_num_action_parameters(action_space),), torch.float32),
        "log_prob_actions": (shape, torch.float32),
        "values": (shape, torch.float32),
        # One float of RNN state even without an RNN keeps every code path the same.
        "rnn_states": (shape + (max(rnn_size, 1),), torch.float32),
        "rewards": (shape, torch.float32),
        "dones": (shape, torch.bool),
        "time_outs": (shape, torch.bool),
        "valids": (shape, torch.bool),
        "policy_version": (shape, torch.int64),
    }
    return obs, flat


def trajectory_buffer_bytes(
    num_slots: int, rollout: int, obs_space: gym.spaces.Dict, action_space: gym.Space, rnn_size: int
) -> int:
    """What `TrajectoryBuffers(...)` of these arguments allocates, in bytes."""
    obs, flat = _buffer_specs(num_slots, rollout, obs_space, action_space, rnn_size)
    return sum(
        int(np.prod(shape, dtype=np.int64)) * torch.empty((), dtype=dtype).element_size()
        for shape, dtype in [*obs.values(), *flat.values()]
    )


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None  # "max": no limit


def cgroup_memory_headroom(cgroup_root: Path = Path("/sys/fs/cgroup"), proc_cgroup: Path = Path("/proc/self/cgroup")):
    """Bytes this process's cgroup may still use before the OOM killer acts (v2 or v1), or None if unlimited.

    Shared memory pages count against the cgroup of whoever touches them, so a container's limit,
    not the machine's RAM, is what trajectory buffers must fit in.
    """
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        hierarchy, controllers, path = line.split(":", 2)
        relative = path.lstrip("/")
        if hierarchy == "0" and controllers == "":  # cgroup v2: the limits of every ancestor apply
            headrooms = []
            directory = cgroup_root / relative
            while True:
                limit = _read_int(directory / "memory.max")
                used = _read_int(directory / "memory.current")
                if limit is not None and used is not None:
                    headrooms.append(limit - used)
                if directory == cgroup_root or cgroup_root not in directory.parents:
                    break
                directory = directory.parent
            return min(headrooms) if headrooms else None
        if "memory" in controllers.split(","):  # cgroup v1
            directory = cgroup_root / "memory" / relative
            limit = _read_int(directory / "memory.limit_in_bytes")
            used = _read_int(directory / "memory.usage_in_bytes")
            if limit is None or used is None or limit >= 2**60:  # v1 writes a huge number for "no limit"
                return None
            return limit - used
    return None


def check_buffers_fit(needed: int, sized_by: str):
    """Stops before anything is allocated when the buffers cannot fit in RAM, in /dev/shm, or under
    the memory limit of the process's cgroup (a container)."""
    available, where = psutil.virtual_memory().available, "available"
    try:
        shm = os.statvfs("/dev/shm")
        available = min(available, shm.f_bavail * shm.f_frsize)
    except OSError:
        pass  # no /dev/shm: torch's shared memory then lives elsewhere
    headroom = cgroup_memory_headroom()
    if headroom is not None and headroom < available:
        available, where = max(headroom, 0), "left under the memory limit of this process's cgroup"
    if needed > available:
        raise InsufficientMemoryError(
            f"the trajectory buffers need {needed / 2**30:.1f} GiB of shared memory, {available / 2**30:.1f} GiB is "
            f"{where}: {sized_by} size them"
        )


class TrajectoryBuffers:
    """All trajectory fields; `fields()` yields (name, tensor) for the flat ones, obs are per key."""

    def __init__(
        self, num_slots: int, rollout: int, obs_space: gym.spaces.Dict, action_space: gym.Space, rnn_size: int
    ):
        self.num_slots = num_slots
        self.rollout = rollout
        obs, flat = _buffer_specs(num_slots, rollout, obs_space, action_space, rnn_size)
        self.obs = {key: _filled(*spec) for key, spec in obs.items()}
        for name, spec in flat.items():
            setattr(self, name, _filled(*spec))

    FLAT_FIELDS = (
        "actions",
        "action_logits",
        "log_prob_actions",
        "values",
        "rnn_states",
        "rewards",
        "dones",
        "time_outs",
        "valids",
        "policy_version",
    )

    def gather(self, slots: torch.Tensor, staging: HostStaging | None = None) -> dict:
        """Copies the given slots out (one copy per field): the learner's batch.

        With `staging` the copies land in its reused buffers (pinned ones for a GPU), not new tensors.
        """

        def copy(name: str, field: torch.Tensor) -> torch.Tensor:
            return field.index_select(0, slots) if staging is None else staging.gather(name, field, slots)

        batch = {name: copy(name, getattr(self, name)) for name in self.FLAT_FIELDS}
        batch["obs"] = {key: copy(f"obs.{key}", t) for key, t in self.obs.items()}
        return batch


def step_rows(field: torch.Tensor) -> torch.Tensor:
    """A `[num_slots, rollout + 1, ...]` field as rows `[num_slots * (rollout + 1), ...]` (a view):
    the step `t` of slot `s` is row `s * (rollout + 1) + t`."""
    return field.view((-1,) + tuple(field.shape[2:]))


class SlotPool:
    """Free trajectory slots of one policy. Groups of indices travel as one message.

    With `holders` (one shared entry per slot of every pool), a slot taken out of the queue is marked
    with the taker's id until the taker hands it on (`hand_over`): the slots of a rollout worker
    that died are then known, and `reclaim_slots` puts them back.
    """

    def __init__(self, name: str, num_slots: int = 0, holders: torch.Tensor | None = None):
        self.name = name
        # Room for every slot at once (a pickled int takes at most 5 bytes, each message ~30 more).
        self._queue = transport.make_queue(max(1024 * 1024, 48 * num_slots))
        self._spare: list[int] = []
        self.holders = holders

    @property
    def queue(self) -> transport.Queue:
        """The queue of free slot groups (the runner frees its lock if a process dies holding it)."""
        return self._queue

    def __getstate__(self):
        return {"name": self.name, "_queue": self._queue, "holders": self.holders}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._spare = []

    def release(self, slots: list[int]):
        if slots:
            self._queue.put(list(slots), block=True, timeout=10.0)

    def try_acquire(self, count: int, holder: int = -1) -> list[int] | None:
        """`count` free slots, or None (without waiting) if not enough are free right now.

        Slots taken but not enough are kept aside for the next call: with groups of exactly the
        size a caller needs (sync mode) nobody ever holds part of what it needs. Every slot taken
        out of the queue is marked as `holder`'s, spares included.
        """
        slots = self._spare
        while len(slots) < count:
            try:
                groups = self._queue.get_many(block=False, max_messages_to_get=count - len(slots))
            except queue.Empty:
                self._spare = slots
                return None
            for group in groups:
                if self.holders is not None:
                    self.holders[group] = holder
                slots.extend(group)
        self._spare = slots[count:]
        return slots[:count]

    def hand_over(self, slots: list[int]):
        """The taker is no longer responsible for these slots (a learner has them, or they are free)."""
        if self.holders is not None:
            self.holders[slots] = -1

    def put_back(self, slots: list[int]):
        """Returns slots taken by `try_acquire` but not used (kept for this process's next call)."""
        self._spare = list(slots) + self._spare

    def close(self):
        self._queue.close()


def reclaim_slots(pools: list[SlotPool], holder: int, pool_starts: list[int], group_size: int) -> int:
    """Puts the slots `holder` took and never handed on (it died) back into their pools, in groups
    of `group_size`; returns how many. The pools share one `holders` tensor; pool p's slots begin at
    pool_starts[p] and end where the next pool's begin.
    """
    holders = pools[0].holders
    slots = torch.nonzero(holders == holder).flatten().tolist()
    if not slots:
        return 0
    holders[slots] = -1
    for policy_id, pool in enumerate(pools):
        end = pool_starts[policy_id + 1] if policy_id + 1 < len(pool_starts) else len(holders)
        mine = [s for s in slots if pool_starts[policy_id] <= s < end]
        for start in range(0, len(mine), group_size):
            pool.release(mine[start : start + group_size])
    return len(slots)


class SharedPolicyState:
    """A policy's state_dict in shared memory with a seqlock.

    The learner writes with `publish()`: the sequence counter is odd while a write is in
    progress and 0 until the first publish (inference waits for it, so no action ever comes
    from weights the learner did not choose, e.g. before a checkpoint is restored).
    Readers copy only when the counter is even and unchanged across the copy.
    """

    def __init__(self, model: torch.nn.Module):
        self.tensors = {k: v.detach().clone().cpu().share_memory_() for k, v in model.state_dict().items()}
        self._seq = torch.zeros(1, dtype=torch.int64).share_memory_()
        self._version = torch.zeros(1, dtype=torch.int64).share_memory_()

    @property
    def is_published(self) -> bool:
        return int(self._seq[0]) > 0

    @property
    def version(self) -> int:
        return int(self._version[0])

    def publish(self, model: torch.nn.Module, version: int):
        self._seq += 1
        with torch.no_grad():
            for key, value in model.state_dict().items():
                self.tensors[key].copy_(value)
        self._version[0] = version
        self._seq += 1

    def load_into(self, model: torch.nn.Module, known_seq: int, timeout_sec: float = 1.0) -> tuple[int, int] | None:
        """Copies the weights into `model` if they changed since `known_seq`.

        Returns (seq, policy_version) of what was loaded, or None if nothing new was loaded.
        """
        deadline = time.monotonic() + timeout_sec
        while True:
            seq_before = int(self._seq[0])
            if seq_before == known_seq or seq_before == 0:
                return None
            if seq_before % 2 == 0:
                with torch.no_grad():
                    state = model.state_dict()
                    for key, value in self.tensors.items():
                        state[key].copy_(value)
                version = int(self._version[0])
                if int(self._seq[0]) == seq_before:
                    return seq_before, version
            if time.monotonic() > deadline:
                log.warning("Could not read a consistent copy of the policy weights; keeping the old ones")
                return None
