"""Frees a faster-fifo queue whose lock a killed process was holding.

faster-fifo guards each queue with a process-shared pthread mutex that is not robust: a process
killed inside `put` or `get` (kill -9, the OOM killer) leaves it locked, and every later reader and
writer of that queue blocks forever, in C, where no timeout or signal reaches it. The runner
calls `free_lock_of_dead` on every queue as soon as one of its processes dies: if the dead
process held the lock, what its unfinished put wrote is dropped (whole messages stay), the lock
is released, and the processes waiting on it are woken.

The queue lives in shared memory as a C++ struct: its size_t fields (the last four: head, tail,
size and message count), then the mutex attribute and the mutex. The layout is found by looking
at a fresh queue (it changed between faster-fifo versions), and `free_lock_of_dead` does nothing
where it cannot be found. The mutex is glibc's: `__lock`, `__count`, `__owner` (thread id),
`__nusers`, `__kind`.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import platform
from dataclasses import dataclass

import faster_fifo

log = logging.getLogger(__name__)

_PSHARED_MUTEXATTR = 0x80000000  # glibc's process-shared bit in a mutex attribute
_PSHARED_MUTEX_KIND = 128  # the same bit in the mutex's __kind
_SIZE_T = ctypes.sizeof(ctypes.c_size_t)
_FUTEX_WAKE = 1
_SYS_FUTEX = {"x86_64": 202, "aarch64": 98}.get(platform.machine())


@dataclass(frozen=True)
class _Layout:
    head: int  # offsets in the queue struct; tail, size and count follow head
    mutex: int


@functools.cache
def _layout() -> _Layout | None:
    probe = faster_fifo.Queue(max_size_bytes=64)
    raw = bytes(probe.queue_obj_buffer)
    words = [int.from_bytes(raw[i : i + 4], "little") for i in range(0, len(raw) - 3, 4)]
    for i, word in enumerate(words):
        attr = 4 * i
        if word != _PSHARED_MUTEXATTR or attr % _SIZE_T or attr < 4 * _SIZE_T:
            continue
        mutex = attr + _SIZE_T  # the attribute (4 bytes), padded to the mutex's alignment
        kind = int.from_bytes(raw[mutex + 16 : mutex + 20], "little")
        head = attr - 4 * _SIZE_T
        max_size = int.from_bytes(raw[0:_SIZE_T], "little")
        if kind == _PSHARED_MUTEX_KIND and max_size == 64 and _SYS_FUTEX is not None:
            return _Layout(head=head, mutex=mutex)
    log.warning(
        "faster-fifo %s: queue layout not recognised; a queue a killed process held stays locked",
        getattr(faster_fifo, "__version__", "?"),
    )
    return None


def lock_owner(queue: faster_fifo.Queue) -> int:
    """The thread id holding the queue's lock, 0 if none (or the layout is unknown)."""
    layout = _layout()
    if layout is None:
        return 0
    return ctypes.c_int.from_address(ctypes.addressof(queue.queue_obj_buffer) + layout.mutex + 8).value


def free_lock_of_dead(queue: faster_fifo.Queue, pid: int) -> bool:
    """If process `pid` (dead) holds the queue's lock: repair the queue, release the lock. True if it did.

    Only call it with `pid` dead: the queue is written without the lock, which nobody else can take."""
    layout = _layout()
    if layout is None or lock_owner(queue) != pid:
        return False
    base = ctypes.addressof(queue.queue_obj_buffer)
    _drop_partial_message(queue, base, layout)
    mutex = base + layout.mutex
    ctypes.c_int.from_address(mutex + 8).value = 0  # __owner
    nusers = ctypes.c_uint.from_address(mutex + 12)
    nusers.value = max(0, nusers.value - 1)
    ctypes.c_int.from_address(mutex).value = 0  # __lock: free
    # Waiters sleep on the lock word; each woken one tries to take it, the others sleep again.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall(_SYS_FUTEX, ctypes.c_void_p(mutex), _FUTEX_WAKE, 2**31 - 1, None, None, 0)
    return True


def _drop_partial_message(queue: faster_fifo.Queue, base: int, layout: _Layout):
    """Walks the ring from head, keeps whole (size header, message) pairs and cuts off the rest."""
    fields = [ctypes.c_size_t.from_address(base + layout.head + k * _SIZE_T) for k in range(4)]
    head, _, size, _ = (f.value for f in fields)
    capacity = ctypes.c_size_t.from_address(base).value
    ring = ctypes.addressof(queue.shared_memory)

    def read(offset: int, n: int) -> bytes:
        start = (head + offset) % capacity
        first = min(n, capacity - start)
        return ctypes.string_at(ring + start, first) + ctypes.string_at(ring, n - first)

    kept = count = 0
    while size - kept >= _SIZE_T:
        msg_size = int.from_bytes(read(kept, _SIZE_T), "little")
        if msg_size > size - kept - _SIZE_T:
            break
        kept += _SIZE_T + msg_size
        count += 1
    fields[1].value = (head + kept) % capacity  # tail
    fields[2].value = kept  # size
    fields[3].value = count
