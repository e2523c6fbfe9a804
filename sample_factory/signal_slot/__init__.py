"""Signals and slots between event loops, in threads and processes, in three parts:

* `loop`: the event loop, `signal` / `BoundSignal`, `EventLoopObject`, `Timer`, `current_loop`, and
  the strict mode (SF_STRICT_SIGNALS=1: an emit that reaches no slot raises).
* `process`: `EventLoopProcess` (a loop in a child process), dying with the parent, killing a
  process tree, stack dumps; `forkserver_guard` makes the fork server die with the main process.
* `transport`: the queues (`make_queue`, `SpareQueues`) and the repair of a queue whose lock a
  killed process held, with its start-up check (`check_repair_layout`).

`loop` and `process` build on `transport`, and `transport` is the only module of the project that
imports `faster_fifo`.
"""
