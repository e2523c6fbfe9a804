"""The transport (signal_slot/transport.py): the only module that imports faster_fifo; a queue whose
lock a killed process held is freed, keeping its whole messages; where the queue's layout is not the
one the repair expects, the start-up check says so in one line and the repair touches nothing."""

from __future__ import annotations

import ast
import ctypes
import multiprocessing
import os
import signal
import time
from pathlib import Path

import pytest

from sample_factory.signal_slot import transport

pytestmark = pytest.mark.timeout(60)

REPO = Path(__file__).resolve().parent.parent
FIND_LAYOUT = transport._find_layout  # the real one, before any test plants another


def lock_and_die_mid_put(queue, ready):
    """Does what a put killed half-way does: takes the lock and writes a size header without its message."""
    layout = transport._layout()
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


def start_holder(queue):
    """A process that holds the queue's lock mid-put, then is killed: (its pid, the queue's bytes)."""
    ctx = multiprocessing.get_context("fork")
    ready = ctx.Event()
    holder = ctx.Process(target=lock_and_die_mid_put, args=(queue, ready))
    holder.start()
    assert ready.wait(10)
    return holder


def queue_bytes(queue) -> bytes:
    return bytes(queue.queue_obj_buffer) + bytes(queue.shared_memory)


def test_faster_fifo_is_imported_only_by_the_transport():
    allowed = {REPO / "sample_factory" / "signal_slot" / "transport.py"}
    importers = []
    for folder in ("sample_factory", "sf_examples", "tests", "scripts"):
        for path in sorted((REPO / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0:
                    names = [node.module or ""]
                else:
                    continue
                if any(name.split(".")[0] == "faster_fifo" for name in names) and path not in allowed:
                    importers.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert not importers, f"only signal_slot/transport.py may import faster_fifo: {importers}"


def test_the_layout_is_found_and_verified_here():
    assert transport.check_repair_layout() is None
    assert transport.repair_available()


def test_a_lock_held_by_a_killed_process_is_freed_and_whole_messages_kept():
    ctx = multiprocessing.get_context("fork")
    queue = transport.make_queue(10_000)
    queue.put_many(["a", "b"])
    holder = start_holder(queue)
    assert transport.lock_owner(queue) == holder.pid
    done = ctx.Event()
    putter = ctx.Process(target=put_one, args=(queue, "c", done))
    putter.start()
    assert not done.wait(1.0), "the putter waits on the held lock"
    assert not transport.free_lock_of_dead(queue, os.getpid()), "only the holder's death frees it"

    os.kill(holder.pid, signal.SIGKILL)
    holder.join()
    assert transport.free_lock_of_dead(queue, holder.pid)
    assert done.wait(10), "the putter took the freed lock"
    putter.join()
    assert queue.get_many(timeout=1) == ["a", "b", "c"], "the half-written message is gone, the whole ones kept"
    assert transport.lock_owner(queue) == 0
    queue.put("d")
    assert queue.get(timeout=1) == "d"


def test_a_queue_nobody_holds_is_left_alone():
    queue = transport.make_queue(1000)
    queue.put("x")
    assert not transport.free_lock_of_dead(queue, 12345)
    assert queue.get(timeout=1) == "x"


# --- another faster-fifo: the layout the repair expects is not there ----------------------------


@pytest.fixture
def fresh_probe():
    """The layout is probed anew in the test, and again (unplanted) after it."""
    transport._probe.cache_clear()
    yield
    transport._probe.cache_clear()


def zero_mutex_attribute(queue) -> bytes:
    """What the probe would read from a faster-fifo whose struct holds no process-shared attribute where expected."""
    raw = bytearray(bytes(queue.queue_obj_buffer))
    for i in range(0, len(raw) - 3, 4):
        if int.from_bytes(raw[i : i + 4], "little") == 0x80000000:
            raw[i : i + 4] = bytes(4)
    return bytes(raw)


def shifted_layout(raw: bytes, max_size: int):
    """A layout found, but one size_t off from the real one (a field added in front of head)."""
    real = FIND_LAYOUT(raw, max_size)
    return transport._Layout(head=real.head - 8, mutex=real.mutex)


@pytest.mark.parametrize(
    "plant, detail",
    [
        (("_struct_bytes", zero_mutex_attribute), "no process-shared mutex"),
        (("_find_layout", shifted_layout), "fields are not zero"),
    ],
    ids=["not found", "found but wrong"],
)
def test_a_layout_not_recognised_is_named_in_one_line_and_nothing_is_touched(monkeypatch, fresh_probe, plant, detail):
    queue = transport.make_queue(10_000)
    queue.put_many(["a", "b"])
    holder = start_holder(queue)  # with the real layout this queue would be repaired
    os.kill(holder.pid, signal.SIGKILL)
    holder.join()
    before = queue_bytes(queue)

    monkeypatch.setattr(transport, *plant)
    reason = transport.check_repair_layout()
    assert reason is not None and "\n" not in reason
    assert reason.startswith("faster-fifo ") and "queue layout not recognised" in reason and detail in reason
    assert transport.check_repair_layout() is reason, "probed once"
    assert not transport.repair_available()

    assert not transport.free_lock_of_dead(queue, holder.pid)
    assert transport.lock_owner(queue) == 0, "unknown"
    assert queue_bytes(queue) == before, "the locked queue is left exactly as it was"
    normal = transport.make_queue(1000)
    normal.put_many(["x", "y"])
    assert normal.get_many(timeout=1) == ["x", "y"]
