"""The event loop: signals and slots, across threads and processes, and timers.

An `EventLoopObject` lives in exactly one `EventLoop`. Its class declares signals
(`trajectory_ready = signal()`), and any of its methods can be a slot. Connecting a signal
to a slot of an object in another loop makes `emit(...)` post a small message
`(object_id, slot_name, args)` to the receiving loop's queue (`transport.make_queue`); a loop in
the same thread gets it through a local deque without touching the queue.

Messages are pickled, so they must stay small: slot indices, versions, short lists of
stats. Bulk data lives in shared-memory tensors (see `algo/shared_buffers.py`).

A loop runs in the current thread (`run()`), in its own thread, or in its own process
(`process.EventLoopProcess`). Objects and connections are set up in the parent, before the
processes start; each process then receives its loop and its objects in one pickle, so
that references between objects of the same loop stay identical after unpickling.
"""

from __future__ import annotations

import ctypes
import heapq
import itertools
import logging
import multiprocessing
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, NamedTuple

from sample_factory.signal_slot.transport import DEFAULT_QUEUE_BYTES, Queue, SpareQueues, make_queue

log = logging.getLogger(__name__)

_thread_state = threading.local()

# SF_STRICT_SIGNALS=1 (the tests set it): an emit that reaches no slot, or whose payload is not its signal's
# declared type, raises naming the signal, so that a misspelled, unwired or mistyped signal fails loudly.
STRICT_SIGNALS = os.environ.get("SF_STRICT_SIGNALS") == "1"


class UnconnectedSignalError(RuntimeError):
    pass


def current_loop() -> EventLoop | None:
    """The loop running in this thread, if any."""
    return getattr(_thread_state, "loop", None)


class EventLoop:
    """Dispatches messages and timers to the objects that live in it."""

    def __init__(
        self,
        name: str,
        queue_max_bytes: int = DEFAULT_QUEUE_BYTES,
        owned_by_process: bool = False,
        spares: SpareQueues | None = None,
    ):
        self.name = name
        # The loop of an EventLoopProcess: its objects stop it when they stop (see stop_own_loop).
        self.owned_by_process = owned_by_process
        # A process killed while it waits on its queue leaves the queue's condition variable waiting
        # for it forever (faster-fifo's pthread objects are not robust): the next reader's wait and
        # its senders' puts would hang. A process started anew reads a spare queue instead, and
        # every copy of the loop, in every process, posts to the queue the shared index names.
        self._own_queue = make_queue(queue_max_bytes)
        self._spares = spares
        self._spare_index = multiprocessing.RawValue(ctypes.c_int32, -1)  # -1: its own queue
        # Messages taken off the queue, readable from every process (the benchmark counts them).
        self._received = multiprocessing.RawValue(ctypes.c_uint64, 0)
        # Turns of the loop (at least one a second while it runs): one that stands still is stuck in a callback.
        self._turns = multiprocessing.RawValue(ctypes.c_uint64, 0)
        self._init_local_state()

    def _init_local_state(self):
        self.objects: dict[str, EventLoopObject] = {}
        self._local: deque = deque()
        self._timers: list = []  # heap of (deadline, seq, Timer)
        self._timer_seq = itertools.count()
        self._idle_callbacks: list[Callable[[], None]] = []
        self.terminate_requested = False
        # Set (in this process's copy) once the loop's process is known dead: messages to it are dropped.
        # Nobody would read them, and a process killed inside a queue operation may have left the
        # queue's lock held, where a put would block forever.
        self.receiver_gone = False

    # Pickling carries only the address (name + queue): a loop's objects travel separately.
    def __getstate__(self):
        return {
            "name": self.name,
            "own_queue": self._own_queue,
            "spares": self._spares,
            "spare_index": self._spare_index,
            "received": self._received,
            "turns": self._turns,
            "owned": self.owned_by_process,
        }

    def __setstate__(self, state):
        self.name = state["name"]
        self._own_queue = state["own_queue"]
        self._spares = state["spares"]
        self._spare_index = state["spare_index"]
        self._received = state["received"]
        self._turns = state["turns"]
        self.owned_by_process = state["owned"]
        self._init_local_state()

    @property
    def queue(self) -> Queue:
        index = self._spare_index.value
        return self._own_queue if index < 0 else self._spares.queues[index]

    @queue.setter
    def queue(self, replacement):
        """Replaces the queue in use (tests wrap it to count what goes through)."""
        index = self._spare_index.value
        if index < 0:
            self._own_queue = replacement
        else:
            self._spares.queues[index] = replacement

    @property
    def own_queue(self) -> Queue:
        """The queue the loop was made with (in use until its first move_to_spare_queue)."""
        return self._own_queue

    def move_to_spare_queue(self) -> bool:
        """Called with the loop's process dead, before it is started anew: from now on every copy of
        this loop posts to, and the new process reads, an unused spare queue. False when none is left.
        Messages left in the old queue are lost: the restart protocol asks for them again."""
        index = self._spares.take() if self._spares is not None else None
        if index is None:
            return False
        self._spare_index.value = index
        return True

    @property
    def messages_received(self) -> int:
        """Messages this loop has taken off its queue so far (from other threads or processes)."""
        return self._received.value

    @property
    def turns(self) -> int:
        """Times this loop has gone round so far, readable from every process (a heartbeat)."""
        return self._turns.value

    def __repr__(self):
        return f"EventLoop({self.name})"

    def register(self, obj: EventLoopObject):
        if obj.object_id in self.objects and self.objects[obj.object_id] is not obj:
            raise ValueError(f"Object id {obj.object_id!r} is already used in loop {self.name}")
        self.objects[obj.object_id] = obj

    def add_idle_callback(self, callback: Callable[[], None]):
        """`callback()` runs each time the loop has drained the messages it received."""
        self._idle_callbacks.append(callback)

    def post(self, object_id: str, slot_name: str, args: tuple):
        message = (object_id, slot_name, args)
        if current_loop() is self:
            self._local.append(message)
        elif self.receiver_gone:
            return
        else:
            # A full queue means the receiver is stuck or dead; don't block forever on it.
            self.queue.put(message, block=True, timeout=30.0)

    def add_timer(self, timer: Timer):
        heapq.heappush(self._timers, (timer.deadline, next(self._timer_seq), timer))

    def stop(self):
        self.terminate_requested = True

    def _dispatch(self, message):
        object_id, slot_name, args = message
        obj = self.objects.get(object_id)
        if obj is None:
            log.warning("%s: message %s for unknown object %s dropped", self.name, slot_name, object_id)
            return
        getattr(obj, slot_name)(*args)

    def _fire_due_timers(self) -> float:
        """Runs the timers that are due; returns seconds until the next one (or a default)."""
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            _, _, timer = heapq.heappop(self._timers)
            if timer.cancelled:
                continue
            timer.fire()
            if timer.periodic and not timer.cancelled:
                timer.deadline = max(timer.deadline + timer.interval_sec, now)
                self.add_timer(timer)
            now = time.monotonic()
        if self._timers:
            return max(0.0, self._timers[0][0] - now)
        return 1.0

    def _drain_local(self) -> int:
        handled = 0
        while self._local:
            self._dispatch(self._local.popleft())
            handled += 1
        return handled

    def _run_idle_callbacks(self):
        for callback in self._idle_callbacks:
            callback()

    def run_once(self, max_wait_sec: float = 1.0) -> int:
        """Processes whatever is ready (waiting at most `max_wait_sec`); returns messages handled."""
        self._turns.value += 1
        handled = self._drain_local()
        wait_sec = min(max_wait_sec, self._fire_due_timers())
        self._run_idle_callbacks()
        if self._local:
            return handled + self._drain_local()
        if self.terminate_requested:
            # A slot or timer has just stopped the loop: take what is queued, but don't block on
            # the queue (run() would otherwise exit only after idling for max_wait_sec).
            wait_sec = 0.0
        try:
            messages = self.queue.get_many(block=wait_sec > 0, timeout=wait_sec)
        except queue.Empty:
            messages = ()
        if messages:
            self._received.value += len(messages)
        for message in messages:
            self._dispatch(message)
            handled += 1
        handled += self._drain_local()
        self._run_idle_callbacks()
        return handled

    def run(self):
        """Runs until `stop()` is called (by a slot, a timer, or `stop_loop` sent as a message)."""
        previous = current_loop()
        _thread_state.loop = self
        try:
            for obj in list(self.objects.values()):
                obj.on_loop_started()
            while not self.terminate_requested:
                self.run_once()
        finally:
            _thread_state.loop = previous


class SignalSpec(NamedTuple):
    """A signal whose name is made at run time (one per policy or per worker) and the type it carries."""

    name: str
    payload: type | None = None


class signal:  # noqa: N801 (reads like a keyword in class bodies, as Qt's `Signal`)
    """Declares a signal on an EventLoopObject subclass: `trajectory_ready = signal(TrajectoryReady)`.

    A signal with a payload type is emitted with one payload of that type, which the slot receives;
    one without carries whatever it is given (in strict mode nothing else is checked)."""

    def __init__(self, payload: type | None = None):
        self.payload = payload

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, obj, objtype=None):
        if obj is None:
            return self
        return BoundSignal(obj, self.name, self.payload)


class BoundSignal:
    __slots__ = ("_obj", "_name", "_payload")

    def __init__(self, obj: EventLoopObject, name: str, payload: type | None = None):
        self._obj = obj
        self._name = name
        self._payload = payload

    def connect(self, slot: Callable):
        receiver = getattr(slot, "__self__", None)
        if not isinstance(receiver, EventLoopObject):
            raise TypeError(f"Slot {slot!r} must be a method of an EventLoopObject")
        address = (receiver.event_loop, receiver.object_id, slot.__name__)
        connections = self._obj._connections.setdefault(self._name, [])
        if address not in connections:
            connections.append(address)

    def disconnect_all(self):
        self._obj._connections.pop(self._name, None)

    def emit(self, *args):
        connections = self._obj._connections.get(self._name)
        if STRICT_SIGNALS:
            self._check(args, connections)
        if not connections:
            return
        for loop, object_id, slot_name in connections:
            loop.post(object_id, slot_name, args)

    def _check(self, args: tuple, connections):
        where = f"{self._obj.object_id}.{self._name}"
        if not connections:
            raise UnconnectedSignalError(f"{where} emitted with no slot connected")
        if self._payload is not None and (len(args) != 1 or type(args[0]) is not self._payload):
            got = ", ".join(type(a).__name__ for a in args) or "nothing"
            raise TypeError(f"{where} emitted ({got}); its payload is one {self._payload.__name__}")

    @property
    def num_connections(self) -> int:
        return len(self._obj._connections.get(self._name, ()))


class EventLoopObject:
    """Base of every component: it lives in one loop and has signals and slots."""

    def __init__(self, event_loop: EventLoop, object_id: str):
        self.event_loop = event_loop
        self.object_id = object_id
        self._connections: dict[str, list] = {}
        event_loop.register(self)

    def named_signal(self, spec: SignalSpec | str) -> BoundSignal:
        """A signal whose name is made at run time (one per policy or per worker)."""
        if isinstance(spec, str):
            return BoundSignal(self, spec)
        return BoundSignal(self, spec.name, spec.payload)

    def on_loop_started(self):
        """Called in the loop's own thread/process before the first message."""

    def stop_loop(self):
        """A slot: stops this object's whole loop."""
        self.event_loop.stop()

    def stop_own_loop(self):
        """Stops the loop if it is a process's own; a shared loop (serial mode, the runner's) runs on."""
        if self.event_loop.owned_by_process:
            self.event_loop.stop()


class Timer:
    """Calls `callback()` after `interval_sec` once, or every `interval_sec` if periodic."""

    def __init__(self, loop: EventLoop, interval_sec: float, callback: Callable[[], Any], periodic: bool = True):
        self.interval_sec = interval_sec
        self.callback = callback
        self.periodic = periodic
        self.cancelled = False
        self.deadline = time.monotonic() + interval_sec
        loop.add_timer(self)

    def fire(self):
        self.callback()

    def cancel(self):
        self.cancelled = True
