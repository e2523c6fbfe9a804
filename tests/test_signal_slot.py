"""Signals and slots within a loop, across threads and across (spawned) processes; timers; stopping."""

from __future__ import annotations

import multiprocessing
import os
import signal as os_signal
import threading
import time

import pytest

from sample_factory.signal_slot import loop as loop_module
from sample_factory.signal_slot.loop import EventLoop, EventLoopObject, Timer, current_loop, signal
from sample_factory.signal_slot.process import EventLoopProcess
from sample_factory.signal_slot.transport import SpareQueues

pytestmark = pytest.mark.timeout(60)

DEADLINE_SEC = 20.0


# --- objects (module level: the ones that go to child processes must be picklable) ---------------


class Pinger(EventLoopObject):
    """Sends `ping(n)` and counts `pong`s; stops its loop (and tells the peer) after `rounds`."""

    ping = signal()
    finished = signal()

    def __init__(self, event_loop, object_id, rounds: int):
        super().__init__(event_loop, object_id)
        self.rounds = rounds
        self.pongs = []
        self.threads = set()

    def on_loop_started(self):
        self.ping.emit(0)

    def on_pong(self, n, responder_thread):
        self.threads.add(threading.get_ident())
        self.pongs.append((n, responder_thread))
        if n + 1 < self.rounds:
            self.ping.emit(n + 1)
        else:
            self.finished.emit()
            self.stop_loop()


class Ponger(EventLoopObject):
    pong = signal()

    def __init__(self, event_loop, object_id):
        super().__init__(event_loop, object_id)
        self.pings = []

    def on_ping(self, n):
        self.pings.append(n)
        self.pong.emit(n, threading.get_ident())


class Recorder(EventLoopObject):
    """Main-process side: sends requests, records what comes back."""

    request = signal()
    hang_request = signal()
    shutdown = signal()

    def __init__(self, event_loop, object_id):
        super().__init__(event_loop, object_id)
        self.received = []

    def on_message(self, *args):
        self.received.append(args)


class ChildWorker(EventLoopObject):
    """Lives in a child process: answers requests via a signal and a named signal."""

    answer = signal()

    def __init__(self, event_loop, object_id, factor: int):
        super().__init__(event_loop, object_id)
        self.factor = factor
        self.started_in_pid = None

    def on_loop_started(self):
        self.started_in_pid = os.getpid()
        self.named_signal(f"ready_{self.object_id}").emit(os.getpid())

    def on_request(self, value):
        # The reply says which process and loop computed it, and that on_loop_started ran there.
        loop = current_loop()
        self.answer.emit(value * self.factor, os.getpid(), self.started_in_pid, loop.name if loop else None)


class Sleeper(EventLoopObject):
    """A slot that never returns: the process hangs and has to be killed."""

    entered = signal()

    def hang(self):
        self.entered.emit(os.getpid())
        while True:
            time.sleep(1.0)


def run_until(loop: EventLoop, condition, deadline_sec: float = DEADLINE_SEC):
    """Runs `loop` in this thread with `run_once()` until `condition()` or the deadline."""
    deadline = time.monotonic() + deadline_sec
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for a message"
        loop.run_once(max_wait_sec=0.05)


class CountingQueue:
    """Wraps a loop's queue to count messages that went through it."""

    def __init__(self, q):
        self.q = q
        self.puts = 0

    def put(self, *args, **kwargs):
        self.puts += 1
        return self.q.put(*args, **kwargs)

    def get_many(self, *args, **kwargs):
        return self.q.get_many(*args, **kwargs)


# --- one loop -----------------------------------------------------------------------------------


def test_local_delivery_in_one_loop():
    loop = EventLoop("local")
    counting = CountingQueue(loop.queue)
    loop.queue = counting
    pinger = Pinger(loop, "pinger", rounds=5)
    ponger = Ponger(loop, "ponger")
    pinger.ping.connect(ponger.on_ping)
    ponger.pong.connect(pinger.on_pong)
    pinger.finished.connect(ponger.stop_loop)

    start = time.monotonic()
    loop.run()  # returns because pinger stops the loop after the last round
    # Stopped from a locally delivered slot: run() returns at once, without idling on the queue.
    assert time.monotonic() - start < 0.5

    assert ponger.pings == [0, 1, 2, 3, 4]
    me = threading.get_ident()
    assert pinger.pongs == [(n, me) for n in range(5)]
    assert pinger.threads == {me}
    assert counting.puts == 0, "messages within a running loop must not go through its queue"
    assert current_loop() is None, "run() must restore the thread's previous loop"


def test_connections_and_named_signals(monkeypatch):
    monkeypatch.setattr(loop_module, "STRICT_SIGNALS", False)  # outside the tests an unconnected emit is a no-op
    loop = EventLoop("local")
    sender = Recorder(loop, "sender")
    receiver = Recorder(loop, "receiver")
    other = Recorder(loop, "other")

    assert sender.request.num_connections == 0
    sender.request.emit("nobody listens")  # no connection: nothing happens
    assert loop.run_once(max_wait_sec=0.0) == 0

    sender.request.connect(receiver.on_message)
    sender.request.connect(receiver.on_message)  # a duplicate is ignored
    assert sender.request.num_connections == 1
    sender.named_signal("policy_0").connect(receiver.on_message)
    sender.named_signal("policy_1").connect(other.on_message)
    assert sender.named_signal("policy_0").num_connections == 1

    with pytest.raises(TypeError):
        sender.request.connect(print)
    with pytest.raises(ValueError):
        Recorder(loop, "receiver")  # object ids are unique within a loop

    # Emitted outside the running loop: delivered through the queue on the next run_once().
    sender.request.emit(1, "a")
    sender.named_signal("policy_0").emit(2)
    sender.named_signal("policy_1").emit(3)
    sender.named_signal("policy_2").emit(4)  # nothing connected to that name
    run_until(loop, lambda: len(receiver.received) == 2 and len(other.received) == 1)
    assert receiver.received == [(1, "a"), (2,)]
    assert other.received == [(3,)]

    sender.request.disconnect_all()
    sender.request.emit(5)
    loop.run_once(max_wait_sec=0.05)
    assert receiver.received == [(1, "a"), (2,)]


# --- two loops in two threads --------------------------------------------------------------------


def test_signals_between_threads():
    loop1 = EventLoop("thread1")
    loop2 = EventLoop("thread2")
    pinger = Pinger(loop1, "pinger", rounds=20)
    ponger = Ponger(loop2, "ponger")
    pinger.ping.connect(ponger.on_ping)
    ponger.pong.connect(pinger.on_pong)
    pinger.finished.connect(ponger.stop_loop)  # stop_loop is a slot like any other

    t2 = threading.Thread(target=loop2.run, daemon=True)
    t1 = threading.Thread(target=loop1.run, daemon=True)
    t2.start()
    t1.start()
    try:
        t1.join(DEADLINE_SEC)
        t2.join(DEADLINE_SEC)
        assert not t1.is_alive() and not t2.is_alive(), "loops did not stop"
    finally:
        loop1.stop()
        loop2.stop()

    assert ponger.pings == list(range(20))
    assert [n for n, _ in pinger.pongs] == list(range(20))
    # Each slot ran in the thread of its own loop.
    assert {thread for _, thread in pinger.pongs} == {t2.ident}
    assert pinger.threads == {t1.ident}


# --- main process <-> EventLoopProcess -----------------------------------------------------------


def test_signals_between_processes_both_directions():
    ctx = multiprocessing.get_context("spawn")
    main_loop = EventLoop("main")
    main = Recorder(main_loop, "main")

    process = EventLoopProcess("child_loop", ctx)
    worker = ChildWorker(process.event_loop, "worker", factor=3)
    main.request.connect(worker.on_request)
    main.shutdown.connect(worker.stop_loop)
    worker.answer.connect(main.on_message)
    ready = Recorder(main_loop, "ready")
    worker.named_signal("ready_worker").connect(ready.on_message)

    process.start()
    try:
        assert process.pid is not None and process.pid != os.getpid()
        # The child announces itself through a named signal from on_loop_started.
        run_until(main_loop, lambda: ready.received)
        assert ready.received == [(process.pid,)]

        main.request.emit(7)
        main.request.emit(10)
        run_until(main_loop, lambda: len(main.received) == 2)
        assert main.received == [
            (21, process.pid, process.pid, "child_loop"),
            (30, process.pid, process.pid, "child_loop"),
        ]
        assert worker.started_in_pid is None  # the parent's copy never ran

        main.shutdown.emit()
        assert process.join(DEADLINE_SEC) is True
        assert not process.is_alive()
        assert process.exitcode == 0
    finally:
        if process.is_alive():
            process.join(0.1)


def test_join_kills_hung_process():
    ctx = multiprocessing.get_context("spawn")
    main_loop = EventLoop("main")
    main = Recorder(main_loop, "main")

    process = EventLoopProcess("hung", ctx)
    sleeper = Sleeper(process.event_loop, "sleeper")
    main.hang_request.connect(sleeper.hang)
    main.shutdown.connect(sleeper.stop_loop)
    sleeper.entered.connect(main.on_message)

    process.start()
    try:
        main.hang_request.emit()
        run_until(main_loop, lambda: main.received)  # the child is now inside the endless slot
        assert main.received == [(process.pid,)]
        main.shutdown.emit()  # never processed

        start = time.monotonic()
        assert process.join(0.3) is False
        assert time.monotonic() - start < 6.0
        assert not process.is_alive()
        assert process.exitcode == -os_signal.SIGKILL
    finally:
        if process.is_alive():
            process.join(0.1)


def test_join_before_start_and_after_clean_stop():
    ctx = multiprocessing.get_context("spawn")
    process = EventLoopProcess("idle", ctx)
    assert process.join(0.1) is True  # never started
    assert process.pid is None and not process.is_alive() and process.exitcode is None

    # An object in the child receives stop_loop posted directly to its loop's address.
    Recorder(process.event_loop, "obj")
    process.start()
    process.event_loop.post("obj", "stop_loop", ())
    assert process.join(DEADLINE_SEC) is True
    assert process.exitcode == 0


# --- stopping and timers -------------------------------------------------------------------------


def test_stop_loop_message_stops_run():
    loop = EventLoop("stoppable")
    obj = Recorder(loop, "obj")
    obj.shutdown.connect(obj.stop_loop)
    obj.request.connect(obj.on_message)

    # Posted from another thread while the loop runs in this one.
    def sender():
        obj.request.emit("before stop")
        obj.shutdown.emit()

    thread = threading.Timer(0.05, sender)
    thread.start()
    start = time.monotonic()
    loop.run()
    thread.join()
    assert time.monotonic() - start < DEADLINE_SEC
    assert loop.terminate_requested
    assert obj.received == [("before stop",)]


def test_timers_periodic_oneshot_cancel():
    loop = EventLoop("timers")
    fired = {"periodic": [], "oneshot": [], "cancelled": [], "self_cancel": []}
    start = time.monotonic()

    def on_periodic():
        fired["periodic"].append(time.monotonic() - start)

    Timer(loop, 0.05, on_periodic)  # periodic is the default
    Timer(loop, 0.1, lambda: fired["oneshot"].append(time.monotonic() - start), periodic=False)
    cancelled = Timer(loop, 0.05, lambda: fired["cancelled"].append(1))
    cancelled.cancel()
    cancelled_once = Timer(loop, 0.05, lambda: fired["cancelled"].append(2), periodic=False)
    cancelled_once.cancel()

    self_cancel_holder = []

    def on_self_cancel():
        fired["self_cancel"].append(time.monotonic() - start)
        if len(fired["self_cancel"]) == 3:
            self_cancel_holder[0].cancel()  # cancelled from its own callback

    self_cancel_holder.append(Timer(loop, 0.03, on_self_cancel))
    Timer(loop, 0.5, loop.stop, periodic=False)

    loop.run()
    elapsed = time.monotonic() - start

    assert elapsed >= 0.5
    assert fired["cancelled"] == []
    assert len(fired["oneshot"]) == 1 and fired["oneshot"][0] >= 0.1
    assert len(fired["self_cancel"]) == 3
    periodic = fired["periodic"]
    # 0.05 s period over ~0.5 s: about 10 ticks; a slow machine may lose some, never gain.
    assert 3 <= len(periodic) <= 10
    assert periodic[0] >= 0.05
    assert all(b > a for a, b in zip(periodic, periodic[1:]))
    assert all(t >= 0.05 * (i + 1) - 1e-6 for i, t in enumerate(periodic))


def test_run_once_wakes_up_for_timer_and_stop():
    loop = EventLoop("timer_wakeup")
    fired = []

    def on_timer():
        fired.append(time.monotonic())
        loop.stop()  # a timer stopping the loop: no further waiting on the queue

    Timer(loop, 0.1, on_timer, periodic=False)
    start = time.monotonic()
    calls = 0
    while not loop.terminate_requested:
        # Each call waits no longer than until the next timer, though allowed to wait 10 s.
        loop.run_once(max_wait_sec=10.0)
        calls += 1
        assert calls <= 100
    elapsed = time.monotonic() - start
    assert len(fired) == 1
    assert fired[0] - start >= 0.1
    assert elapsed < 0.6, f"run_once idled after the timer stopped the loop ({elapsed:.2f}s)"


def test_run_returns_promptly_when_timer_stops_loop():
    loop = EventLoop("timer_stop")
    Timer(loop, 0.05, loop.stop, periodic=False)
    start = time.monotonic()
    loop.run()
    assert 0.05 <= time.monotonic() - start < 0.6


def test_an_emit_that_reaches_no_slot_raises_in_strict_mode():
    """The tests run with SF_STRICT_SIGNALS=1 (conftest): a misspelled or unwired name fails loudly."""
    loop = EventLoop("strict")
    pinger = Pinger(loop, "pinger", rounds=1)
    assert loop_module.STRICT_SIGNALS
    with pytest.raises(loop_module.UnconnectedSignalError, match="pinger.ping"):
        pinger.ping.emit(0)
    with pytest.raises(loop_module.UnconnectedSignalError, match="pinger.actions_ready_w7"):
        pinger.named_signal("actions_ready_w7").emit(0)


# --- a loop started anew on a fresh queue -------------------------------------------------------


def wait_on_queue(loop):
    loop.queue.get_many(timeout=60)


def post_when_told(loop, go, posted):
    """A process holding its own copy of `loop` (as a sender does) posts once told to."""
    go.wait(30)
    loop.post("anyone", "slot", ("after the restart",))
    posted.set()


def read_one(loop, got):
    got.put(loop.queue.get(timeout=20))


def test_a_reader_killed_while_waiting_leaves_its_loop_a_fresh_queue_every_copy_posts_to():
    """faster-fifo's queue is left hung by a reader killed in its wait (the next reader and writers would
    block forever); move_to_spare_queue sends every copy of the loop, in every process, to a new one."""
    ctx = multiprocessing.get_context("spawn")
    loop = EventLoop("restartable", spares=SpareQueues(1))
    go, posted, got = ctx.Event(), ctx.Event(), ctx.Queue()
    sender = ctx.Process(target=post_when_told, args=(loop, go, posted))
    sender.start()
    reader = ctx.Process(target=wait_on_queue, args=(loop,))
    reader.start()
    time.sleep(2.0)  # the reader waits in get
    os.kill(reader.pid, os_signal.SIGKILL)
    reader.join()

    hung = loop.queue
    assert loop.move_to_spare_queue() and loop.queue is not hung and loop.own_queue is hung
    assert not loop.move_to_spare_queue(), "one spare, used"
    new_reader = ctx.Process(target=read_one, args=(loop, got))
    new_reader.start()
    go.set()
    assert posted.wait(DEADLINE_SEC), "the sender's post did not block"
    assert got.get(timeout=DEADLINE_SEC) == ("anyone", "slot", ("after the restart",))
    for p in (sender, new_reader):
        p.join(DEADLINE_SEC)
        assert p.exitcode == 0


def test_the_loops_of_a_run_share_its_spare_queues_one_per_restart():
    spares = SpareQueues(2, queue_max_bytes=64 * 1024)
    first, second = EventLoop("first", spares=spares), EventLoop("second", spares=spares)
    assert first.move_to_spare_queue() and first.queue is spares.queues[0]
    assert second.move_to_spare_queue() and second.queue is spares.queues[1]
    assert not first.move_to_spare_queue() and first.queue is spares.queues[0], "none left: stays where it is"
    assert not EventLoop("alone").move_to_spare_queue(), "a loop without spares cannot move"
