"""Shared-memory buffers across spawned processes: TrajectoryBuffers, SlotPool, SharedPolicyState."""

from __future__ import annotations

import math
import multiprocessing
import time

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

from sample_factory.algo.shared_buffers import SharedPolicyState, SlotPool, TrajectoryBuffers, step_rows
from sample_factory.algo.utils.host_staging import HostStaging
from sample_factory.signal_slot import transport

pytestmark = pytest.mark.timeout(60)

NUM_SLOTS = 4
ROLLOUT = 5
RNN_SIZE = 4
JOIN_SEC = 30.0


def make_buffers() -> TrajectoryBuffers:
    obs_space = gym.spaces.Dict(
        {
            "obs": gym.spaces.Box(0, 255, (3, 8, 8), dtype=np.uint8),
            "measurements": gym.spaces.Box(-1.0, 1.0, (2,), dtype=np.float32),
        }
    )
    return TrajectoryBuffers(NUM_SLOTS, ROLLOUT, obs_space, gym.spaces.Discrete(3), RNN_SIZE)


def spawn(target, *args):
    process = multiprocessing.get_context("spawn").Process(target=target, args=args, daemon=True)
    process.start()
    return process


def join_ok(process) -> bool:
    process.join(JOIN_SEC)
    if process.is_alive():
        process.kill()
        process.join(5.0)
        return False
    return process.exitcode == 0


def get_result(results: transport.Queue, timeout_sec: float = JOIN_SEC):
    return results.get(block=True, timeout=timeout_sec)


# --- what child processes run (module level, so spawn can import it) -----------------------------

SLOT = 1


def expected_image() -> torch.Tensor:
    step = torch.arange(ROLLOUT + 1).view(-1, 1, 1, 1) * 10
    pixels = (torch.arange(3 * 8 * 8) % 7).view(1, 3, 8, 8)
    return (step + pixels).to(torch.uint8)


def expected_vector() -> torch.Tensor:
    return torch.linspace(-1.0, 1.0, (ROLLOUT + 1) * 2).view(ROLLOUT + 1, 2)


def expected_actions() -> torch.Tensor:
    return torch.tensor([0, 1, 2, 1, 0], dtype=torch.int64)


def expected_rewards() -> torch.Tensor:
    return torch.tensor([0.5, -1.0, 2.25, 0.0, 3.0])


def _write_slot(buffers: TrajectoryBuffers):
    assert all(t.is_shared() for t in buffers.obs.values())
    buffers.obs["obs"][SLOT] = expected_image()
    buffers.obs["measurements"][SLOT] = expected_vector()
    buffers.actions[SLOT, :ROLLOUT] = expected_actions()
    buffers.rewards[SLOT, :ROLLOUT] = expected_rewards()


def poll_acquire(pool: SlotPool, count: int, timeout_sec: float = JOIN_SEC) -> list[int] | None:
    """try_acquire until it succeeds or `timeout_sec` passes (never hang the test)."""
    deadline = time.monotonic() + timeout_sec
    while True:
        slots = pool.try_acquire(count)
        if slots is not None or time.monotonic() > deadline:
            return slots
        time.sleep(0.005)


def _slot_pool_worker(pool: SlotPool, results: transport.Queue):
    # Released by the parent as [0, 1, 2] and [3, 4]: takes 4, keeps 4 as a spare.
    first = poll_acquire(pool, 4)
    spare = pool.try_acquire(1)  # served from the spare, queue untouched
    pool.release(first[:2])
    results.put((first, spare))
    time.sleep(0.2)
    pool.release([7])  # the parent is (most likely) polling with try_acquire by now


def _load_policy(state: SharedPolicyState, results: transport.Queue):
    torch.manual_seed(12345)  # different weights than the parent's
    model = nn.Linear(4, 3)
    loaded = state.load_into(model, known_seq=0)
    assert loaded is not None
    seq, version = loaded
    again = state.load_into(model, known_seq=seq)  # nothing new since seq
    checksum = float(sum(p.detach().double().sum() for p in model.parameters()))
    results.put((seq, version, state.version, state.is_published, again, checksum))


# --- TrajectoryBuffers --------------------------------------------------------------------------


def test_fresh_buffers_hold_sentinels():
    buffers = make_buffers()
    shape = (NUM_SLOTS, ROLLOUT + 1)

    image = buffers.obs["obs"]
    assert image.shape == shape + (3, 8, 8) and image.dtype == torch.uint8
    assert bool((image == 255).all())
    vector = buffers.obs["measurements"]
    assert vector.shape == shape + (2,) and vector.dtype == torch.float32
    assert bool(vector.isnan().all())

    assert buffers.actions.shape == shape and buffers.actions.dtype == torch.int64
    assert bool((buffers.actions == -1).all())
    assert buffers.policy_version.dtype == torch.int64 and bool((buffers.policy_version == -1).all())
    assert buffers.action_logits.shape == shape + (3,)
    assert buffers.rnn_states.shape == shape + (RNN_SIZE,)
    for name in ("action_logits", "log_prob_actions", "values", "rnn_states", "rewards"):
        t = getattr(buffers, name)
        assert t.dtype == torch.float32 and bool(t.isnan().all()), name
    for name in ("dones", "time_outs", "valids"):
        t = getattr(buffers, name)
        assert t.shape == shape and t.dtype == torch.bool and not bool(t.any()), name

    for name in TrajectoryBuffers.FLAT_FIELDS:
        assert getattr(buffers, name).is_shared(), name
    assert all(t.is_shared() for t in buffers.obs.values())


def test_child_process_writes_into_slot():
    buffers = make_buffers()
    process = spawn(_write_slot, buffers)
    assert join_ok(process), f"child failed, exitcode {process.exitcode}"

    assert torch.equal(buffers.obs["obs"][SLOT], expected_image())
    assert torch.equal(buffers.obs["measurements"][SLOT], expected_vector())
    assert torch.equal(buffers.actions[SLOT, :ROLLOUT], expected_actions())
    assert torch.equal(buffers.rewards[SLOT, :ROLLOUT], expected_rewards())
    # What the child did not write keeps its sentinel.
    assert int(buffers.actions[SLOT, ROLLOUT]) == -1
    assert math.isnan(float(buffers.rewards[SLOT, ROLLOUT]))
    for other in (0, 2, 3):
        assert bool((buffers.obs["obs"][other] == 255).all())
        assert bool(buffers.obs["measurements"][other].isnan().all())
        assert bool((buffers.actions[other] == -1).all())
        assert bool(buffers.rewards[other].isnan().all())
    assert bool(buffers.values.isnan().all())


def test_gather_returns_copies():
    buffers = make_buffers()
    _write_slot(buffers)  # in-process this time
    buffers.rewards[3, :] = 7.0

    batch = buffers.gather(torch.tensor([SLOT, 3]))
    assert batch["rewards"].shape == (2, ROLLOUT + 1)
    assert torch.equal(batch["rewards"][0, :ROLLOUT], expected_rewards())
    assert bool((batch["rewards"][1] == 7.0).all())
    assert torch.equal(batch["obs"]["obs"][0], expected_image())
    assert bool((batch["obs"]["obs"][1] == 255).all())
    assert torch.equal(batch["actions"][0, :ROLLOUT], expected_actions())
    assert set(batch) == set(TrajectoryBuffers.FLAT_FIELDS) | {"obs"}
    assert set(batch["obs"]) == {"obs", "measurements"}

    for name in TrajectoryBuffers.FLAT_FIELDS:
        batch[name].zero_()
    for t in batch["obs"].values():
        t.zero_()

    assert torch.equal(buffers.rewards[SLOT, :ROLLOUT], expected_rewards())
    assert bool((buffers.rewards[3] == 7.0).all())
    assert torch.equal(buffers.obs["obs"][SLOT], expected_image())
    assert bool((buffers.obs["obs"][3] == 255).all())
    assert torch.equal(buffers.actions[SLOT, :ROLLOUT], expected_actions())
    assert bool(buffers.values.isnan().all())
    assert not bool(buffers.dones.any())


def test_gather_into_staging_reuses_its_buffers():
    buffers = make_buffers()
    _write_slot(buffers)
    staging = HostStaging(torch.device("cpu"))

    first = buffers.gather(torch.tensor([SLOT, 3]), staging)
    assert torch.equal(first["rewards"][0, :ROLLOUT], expected_rewards())
    assert torch.equal(first["obs"]["obs"][0], expected_image())
    assert bool((first["obs"]["obs"][1] == 255).all())

    buffers.rewards[3, :] = 7.0
    second = buffers.gather(torch.tensor([3, SLOT]), staging)
    assert second["rewards"].data_ptr() == first["rewards"].data_ptr()
    assert second["obs"]["obs"].data_ptr() == first["obs"]["obs"].data_ptr()
    assert bool((second["rewards"][0] == 7.0).all())
    assert torch.equal(second["obs"]["obs"][1], expected_image())


def test_staging_gathers_slot_steps_and_grows_when_a_batch_is_larger():
    buffers = make_buffers()
    buffers.rnn_states.copy_(torch.arange(buffers.rnn_states.numel(), dtype=torch.float32).view_as(buffers.rnn_states))
    staging = HostStaging(torch.device("cpu"))
    steps_per_slot = ROLLOUT + 1

    small = staging.gather_to_device("rnn", step_rows(buffers.rnn_states), torch.tensor([2 * steps_per_slot + 1]))
    assert torch.equal(small, buffers.rnn_states[[2], [1]])

    slots, steps = torch.tensor([0, 3, 1]), torch.tensor([4, 0, ROLLOUT])
    large = staging.gather_to_device("rnn", step_rows(buffers.rnn_states), slots * steps_per_slot + steps)
    assert torch.equal(large, buffers.rnn_states[slots, steps])
    again = staging.gather_to_device("rnn", step_rows(buffers.rnn_states), slots * steps_per_slot + steps)
    assert again.data_ptr() == large.data_ptr()  # no allocation once the buffer is large enough


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_staging_to_a_gpu_goes_through_pinned_memory():
    buffers = make_buffers()
    _write_slot(buffers)
    staging = HostStaging(torch.device("cuda", 0))
    rows = torch.tensor([SLOT * (ROLLOUT + 1) + 2])

    on_gpu = staging.gather_to_device("obs", step_rows(buffers.obs["obs"]), rows)
    assert on_gpu.is_cuda
    back = staging.to_host("back", on_gpu + 1)
    staging.wait()
    assert back.is_pinned()
    assert torch.equal(back[0], expected_image()[2] + 1)


# --- SlotPool -----------------------------------------------------------------------------------


def test_slot_pool_across_processes():
    pool = SlotPool("policy_0")
    results = transport.make_queue(64 * 1024)
    pool.release([0, 1, 2])
    pool.release([3, 4])
    pool.release([])  # nothing to send

    process = spawn(_slot_pool_worker, pool, results)
    try:
        first, spare = get_result(results)
        assert first == [0, 1, 2, 3]
        assert spare == [4]

        # The child released [0, 1] before reporting; this process sees them.
        assert poll_acquire(pool, 2) == [0, 1]
        # Polls until the child's later release arrives.
        assert poll_acquire(pool, 1) == [7]
    finally:
        assert join_ok(process), f"child failed, exitcode {process.exitcode}"
    assert pool.try_acquire(1) is None  # the child's spare stayed in the child
    pool.close()


def test_slot_pool_try_acquire_returns_none_without_blocking():
    pool = SlotPool("policy_0")
    start = time.monotonic()
    assert pool.try_acquire(1) is None
    assert time.monotonic() - start < 0.1

    # Not enough free: None at once, and the slot taken is not lost.
    pool.release([9])
    start = time.monotonic()
    assert pool.try_acquire(2) is None
    assert time.monotonic() - start < 0.1
    pool.release([10])
    assert pool.try_acquire(2) == [9, 10]
    assert pool.try_acquire(1) is None
    pool.close()


def test_slot_pool_try_acquire_uses_spare_first():
    pool = SlotPool("policy_0")
    pool.release([5, 6, 7])

    assert pool.try_acquire(1) == [5]  # [6, 7] stay in the spare
    pool.release([8])
    assert pool.try_acquire(2) == [6, 7]  # the spare, not the queued [8]
    assert pool.try_acquire(0) == []
    assert pool.try_acquire(1) == [8]
    assert pool.try_acquire(1) is None
    pool.close()


def test_slot_pool_put_back():
    pool = SlotPool("policy_0")
    pool.release([1, 2, 3])

    taken = pool.try_acquire(3)
    assert taken == [1, 2, 3]
    assert pool.try_acquire(1) is None
    pool.put_back(taken[1:])  # used only the first one
    assert pool.try_acquire(2) == [2, 3]

    # Put-back slots come before what is already in the spare.
    pool.release([4, 5])
    assert pool.try_acquire(1) == [4]  # [5] stays in the spare
    pool.put_back([4])
    pool.put_back([])
    assert pool.try_acquire(2) == [4, 5]
    assert pool.try_acquire(1) is None
    pool.close()


def test_slot_pool_larger_group_leaves_remainder_in_spare():
    pool = SlotPool("policy_0")
    pool.release([0, 1, 2, 3, 4])

    assert pool.try_acquire(2) == [0, 1]
    pool.release([9])
    assert pool.try_acquire(3) == [2, 3, 4]  # the remainder, queue untouched
    assert pool.try_acquire(1) == [9]
    assert pool.try_acquire(1) is None
    pool.close()


# --- SharedPolicyState --------------------------------------------------------------------------


def test_shared_policy_state_before_publish():
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    state = SharedPolicyState(model)
    assert not state.is_published
    assert state.version == 0
    assert all(t.is_shared() for t in state.tensors.values())

    target = nn.Linear(4, 3)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    assert state.load_into(target, known_seq=0) is None
    assert state.load_into(target, known_seq=-1) is None
    for key, value in target.state_dict().items():
        assert torch.equal(value, before[key]), "nothing may be loaded before the first publish"


def test_shared_policy_state_publish_and_load_in_child():
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    state = SharedPolicyState(model)
    with torch.no_grad():
        model.weight.copy_(torch.arange(12, dtype=torch.float32).view(3, 4) / 10)
        model.bias.copy_(torch.tensor([-1.0, 0.5, 2.0]))
    state.publish(model, version=3)
    assert state.is_published
    assert state.version == 3
    expected_checksum = float(sum(p.detach().double().sum() for p in model.parameters()))

    results = transport.make_queue(64 * 1024)
    process = spawn(_load_policy, state, results)
    try:
        seq, version, state_version, published, again, checksum = get_result(results)
    finally:
        assert join_ok(process), f"child failed, exitcode {process.exitcode}"

    assert seq == 2 and seq % 2 == 0
    assert version == 3 and state_version == 3
    assert published is True
    assert again is None
    assert checksum == pytest.approx(expected_checksum, abs=1e-9)

    # The parent's own copy loads the same way; a later publish is seen as new.
    target = nn.Linear(4, 3)
    assert state.load_into(target, known_seq=0) == (2, 3)
    assert torch.equal(target.weight, model.weight) and torch.equal(target.bias, model.bias)
    with torch.no_grad():
        model.bias.fill_(0.25)
    state.publish(model, version=4)
    assert state.load_into(target, known_seq=2) == (4, 4)
    assert bool((target.bias == 0.25).all())
