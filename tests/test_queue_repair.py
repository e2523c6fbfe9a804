"""A queue whose lock a killed process held is freed, keeping its whole messages (signal_slot/queue_repair.py)."""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import time

import faster_fifo
import pytest

from sample_factory.signal_slot import queue_repair

pytestmark = pytest.mark.timeout(60)


def lock_and_die_mid_put(queue, ready):
    """Does what a put killed half-way does: takes the lock and writes a size header without its message."""
    layout = queue_repair._layout()
    base = ctypes.addressof(queue.queue_obj_buffer)
    ctypes.CDLL(None).pthread_mutex_lock(ctypes.c_void_p(base + layout.mutex))
    head, tail, size = (ctypes.c_size_t.from_address(base + layout.head + 8 * k) for k in range(3))
    ctypes.memmove(ctypes.addressof(queue.shared_memory) + tail.value, (100).to_bytes(8, "little"), 8)
    tail.value += 8
    size.value += 8
    ready.set()
    time.sleep(600)


def put_one(queue, message, done):
    queue.put(message, timeout=30)
    done.set()


def test_a_lock_held_by_a_killed_process_is_freed_and_whole_messages_kept():
    ctx = multiprocessing.get_context("fork")
    queue = faster_fifo.Queue(max_size_bytes=10_000)
    queue.put_many(["a", "b"])
    ready, done = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=lock_and_die_mid_put, args=(queue, ready))
    holder.start()
    assert ready.wait(10)
    assert queue_repair.lock_owner(queue) == holder.pid
    putter = ctx.Process(target=put_one, args=(queue, "c", done))
    putter.start()
    assert not done.wait(1.0), "the putter waits on the held lock"
    assert not queue_repair.free_lock_of_dead(queue, os.getpid()), "only the holder's death frees it"

    os.kill(holder.pid, signal.SIGKILL)
    holder.join()
    assert queue_repair.free_lock_of_dead(queue, holder.pid)
    assert done.wait(10), "the putter took the freed lock"
    putter.join()
    assert queue.get_many(timeout=1) == ["a", "b", "c"], "the half-written message is gone, the whole ones kept"
    assert queue_repair.lock_owner(queue) == 0
    queue.put("d")
    assert queue.get(timeout=1) == "d"


def test_a_queue_nobody_holds_is_left_alone():
    queue = faster_fifo.Queue(max_size_bytes=1000)
    queue.put("x")
    assert not queue_repair.free_lock_of_dead(queue, 12345)
    assert queue.get(timeout=1) == "x"
