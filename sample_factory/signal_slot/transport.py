"""The transport: faster-fifo queues, the spare queues of restarted processes, and the queue repair.

This is the only module of the project that imports `faster_fifo` (tests/test_transport.py checks
it): every queue is made by `make_queue`, and only this module knows the queue's memory layout.

The repair. faster-fifo guards each queue with a process-shared pthread mutex that is not robust: a
process killed inside `put` or `get` (kill -9, the OOM killer) leaves it locked, and every later
reader and writer of that queue blocks forever, in C, where no timeout or signal reaches it. The
runner calls `free_lock_of_dead` on every queue as soon as one of its processes dies: if the dead
process held the lock, what its unfinished put wrote is dropped (whole messages stay), the lock is
released, and the processes waiting on it are woken.

The queue lives in shared memory as a C++ struct: its size_t fields (the last four: head, tail,
size and message count), then the mutex attribute and the mutex. The mutex is glibc's: `__lock`,
`__count`, `__owner` (thread id), `__nusers`, `__kind`. The layout changed between faster-fifo
versions, so it is found on a fresh queue and then exercised there once (a put and a get, a lock
taken and a half-written message repaired) before any real queue is touched. Where that fails
(another faster-fifo, another libc), `check_repair_layout` says why in one line and
`free_lock_of_dead` touches nothing.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.metadata
import multiprocessing
import platform
import threading
from dataclasses import dataclass

import faster_fifo

# Thousands of messages in flight (a message is typically < 200 bytes). A loop's ring buffer is
# shared memory that gets fully touched as messages go round it: every MiB here is a MiB of PSS.
DEFAULT_QUEUE_BYTES = 1024 * 1024

Queue = faster_fifo.Queue  # the type, for annotations


def make_queue(max_size_bytes: int = DEFAULT_QUEUE_BYTES) -> Queue:
    """A queue between processes: put/get/get_many of picklable messages, `max_size_bytes` of ring."""
    return faster_fifo.Queue(max_size_bytes=max_size_bytes)


class SpareQueues:
    """Fresh queues for event loops whose process is started anew (EventLoop.move_to_spare_queue),
    shared by the loops of a run: any restart takes the next one, whichever loop it is for."""

    def __init__(self, count: int, queue_max_bytes: int = DEFAULT_QUEUE_BYTES):
        self.queues = [make_queue(queue_max_bytes) for _ in range(count)]
        self._taken = multiprocessing.RawValue(ctypes.c_uint32, 0)

    def take(self) -> int | None:
        """The index of an unused queue, None when all are taken. Only one process (the runner) takes."""
        if self._taken.value >= len(self.queues):
            return None
        self._taken.value += 1
        return self._taken.value - 1


# --- the repair ---------------------------------------------------------------------------------

_PSHARED_MUTEXATTR = 0x80000000  # glibc's process-shared bit in a mutex attribute
_PSHARED_MUTEX_KIND = 128  # the same bit in the mutex's __kind
_LOCK, _OWNER, _NUSERS, _KIND = 0, 8, 12, 16  # offsets of glibc's mutex fields
_SIZE_T = ctypes.sizeof(ctypes.c_size_t)
_FUTEX_WAKE = 1
_SYS_FUTEX = {"x86_64": 202, "aarch64": 98}.get(platform.machine())
_PROBE_BYTES = 256


@dataclass(frozen=True)
class _Layout:
    head: int  # offsets in the queue struct; tail, size and count follow head
    mutex: int


def _struct_bytes(queue: Queue) -> bytes:
    """What the probe reads: the queue's C++ struct as it lies in shared memory."""
    return bytes(queue.queue_obj_buffer)


def _find_layout(raw: bytes, max_size: int) -> _Layout | None:
    """The layout of a fresh queue of `max_size` bytes whose struct is `raw`, None if not recognised."""
    for attr in range(4 * _SIZE_T, len(raw) - 4, _SIZE_T):
        if int.from_bytes(raw[attr : attr + 4], "little") != _PSHARED_MUTEXATTR:
            continue
        mutex = attr + _SIZE_T  # the attribute (4 bytes), padded to the mutex's alignment
        kind = int.from_bytes(raw[mutex + _KIND : mutex + _KIND + 4], "little")
        if kind == _PSHARED_MUTEX_KIND and int.from_bytes(raw[0:_SIZE_T], "little") == max_size:
            return _Layout(head=attr - 4 * _SIZE_T, mutex=mutex)
    return None


def _fields(queue: Queue, layout: _Layout) -> list[ctypes.c_size_t]:
    """head, tail, size and message count, as views of the queue's memory."""
    base = ctypes.addressof(queue.queue_obj_buffer)
    return [ctypes.c_size_t.from_address(base + layout.head + k * _SIZE_T) for k in range(4)]


def _mutex_word(queue: Queue, layout: _Layout, field: int, ctype=ctypes.c_int):
    return ctype.from_address(ctypes.addressof(queue.queue_obj_buffer) + layout.mutex + field)


def _verify(queue: Queue, layout: _Layout) -> str | None:
    """Exercises `layout` on `queue` (fresh, this module's alone); None if it held, else what did not.

    No queue operation is made while the lock word reads taken: with a wrong layout it would hang."""

    def unlocked() -> bool:
        return _mutex_word(queue, layout, _LOCK).value == 0 and _mutex_word(queue, layout, _OWNER).value == 0

    def state() -> tuple[int, ...]:
        return tuple(f.value for f in _fields(queue, layout))

    if state() != (0, 0, 0, 0) or not unlocked():
        return "a fresh queue's fields are not zero"
    queue.put("probe", timeout=1.0)
    head, tail, size, count = state()
    message_bytes = int.from_bytes(_ring_read(queue, head, 0, _SIZE_T), "little")
    if not unlocked() or count != 1 or size != tail - head or size != _SIZE_T + message_bytes:
        return "a put does not move the fields as expected"
    if queue.get(block=False) != "probe" or state()[1:] != (tail, 0, 0) or not unlocked():
        return "a get does not move the fields as expected"

    queue.put("whole", timeout=1.0)
    libc = ctypes.CDLL(None)
    libc.pthread_mutex_lock(ctypes.c_void_p(ctypes.addressof(queue.queue_obj_buffer) + layout.mutex))
    if _mutex_word(queue, layout, _OWNER).value != threading.get_native_id():
        return "a lock taken does not name its thread as the owner"  # the queue stays locked: abandoned
    # A put cut short after writing the size header of its message.
    _, tail_field, size_field, _ = _fields(queue, layout)
    capacity = ctypes.c_size_t.from_address(ctypes.addressof(queue.queue_obj_buffer)).value
    if tail_field.value + _SIZE_T > capacity:
        return "the tail is past the ring's end"
    ctypes.memmove(ctypes.addressof(queue.shared_memory) + tail_field.value, (100).to_bytes(_SIZE_T, "little"), _SIZE_T)
    tail_field.value = (tail_field.value + _SIZE_T) % capacity
    size_field.value += _SIZE_T
    _repair(queue, layout)
    if not unlocked() or queue.get_many(block=False) != ["whole"] or state()[2:] != (0, 0):
        return "a repaired queue does not keep its whole messages"
    return None


def _faster_fifo_version() -> str:
    try:
        return importlib.metadata.version("faster-fifo")
    except importlib.metadata.PackageNotFoundError:
        return getattr(faster_fifo, "__version__", "?")


@functools.cache
def _probe() -> tuple[_Layout | None, str | None]:
    """(layout, None) when the repair can work here, else (None, why not)."""

    def not_recognised(detail: str):
        libc = " ".join(platform.libc_ver()) or "unknown libc"
        return None, (
            f"faster-fifo {_faster_fifo_version()} ({libc}, {platform.machine()}): queue layout not recognised "
            f"({detail}); a queue a killed process held stays locked"
        )

    if _SYS_FUTEX is None:
        return not_recognised("no futex syscall number for this machine")
    probe = make_queue(_PROBE_BYTES)
    layout = _find_layout(_struct_bytes(probe), _PROBE_BYTES)
    if layout is None:
        return not_recognised("no process-shared mutex after the ring's fields")
    try:
        problem = _verify(probe, layout)
    except Exception as exc:  # any failure of the probe means: do not repair
        problem = f"the probe queue failed: {type(exc).__name__}"
    return (layout, None) if problem is None else not_recognised(problem)


def check_repair_layout() -> str | None:
    """None when the queue layout the repair relies on is found and verified here; otherwise one line
    saying why not (naming the faster-fifo version). Probed once per process, on first use."""
    return _probe()[1]


def repair_available() -> bool:
    """Whether `free_lock_of_dead` can free a queue here (see check_repair_layout)."""
    return _probe()[0] is not None


def _layout() -> _Layout | None:
    return _probe()[0]


def lock_owner(queue: Queue) -> int:
    """The thread id holding the queue's lock, 0 if none (or the layout is not verified)."""
    layout = _layout()
    if layout is None:
        return 0
    return _mutex_word(queue, layout, _OWNER).value


def free_lock_of_dead(queue: Queue, pid: int) -> bool:
    """If process `pid` (dead) holds the queue's lock: repair the queue, release the lock. True if it did.

    Only call it with `pid` dead: the queue is written without the lock, which nobody else can take.
    Where the layout is not verified (check_repair_layout) it touches nothing and returns False."""
    layout = _layout()
    if layout is None or _mutex_word(queue, layout, _OWNER).value != pid:
        return False
    _repair(queue, layout)
    return True


def _repair(queue: Queue, layout: _Layout):
    """Drops the half-written message of the lock's holder, then releases the lock and wakes its waiters."""
    _drop_partial_message(queue, layout)
    _mutex_word(queue, layout, _OWNER).value = 0
    nusers = _mutex_word(queue, layout, _NUSERS, ctypes.c_uint)
    nusers.value = max(0, nusers.value - 1)
    lock = _mutex_word(queue, layout, _LOCK)
    lock.value = 0  # free
    # Waiters sleep on the lock word; each woken one tries to take it, the others sleep again.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall(_SYS_FUTEX, ctypes.c_void_p(ctypes.addressof(lock)), _FUTEX_WAKE, 2**31 - 1, None, None, 0)


def _ring_read(queue: Queue, head: int, offset: int, n: int) -> bytes:
    """`n` bytes of the ring, `offset` bytes after `head`, wrapping around its end."""
    capacity = ctypes.c_size_t.from_address(ctypes.addressof(queue.queue_obj_buffer)).value
    ring = ctypes.addressof(queue.shared_memory)
    start = (head + offset) % capacity
    first = min(n, capacity - start)
    return ctypes.string_at(ring + start, first) + ctypes.string_at(ring, n - first)


def _drop_partial_message(queue: Queue, layout: _Layout):
    """Walks the ring from head, keeps whole (size header, message) pairs and cuts off the rest."""
    fields = _fields(queue, layout)
    head, _, size, _ = (f.value for f in fields)
    capacity = ctypes.c_size_t.from_address(ctypes.addressof(queue.queue_obj_buffer)).value
    kept = count = 0
    while size - kept >= _SIZE_T:
        msg_size = int.from_bytes(_ring_read(queue, head, kept, _SIZE_T), "little")
        if msg_size > size - kept - _SIZE_T:
            break
        kept += _SIZE_T + msg_size
        count += 1
    fields[1].value = (head + kept) % capacity  # tail
    fields[2].value = kept  # size
    fields[3].value = count
