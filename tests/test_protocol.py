"""Typed messages: every signal of the system names its payload type, and strict mode holds emits to it."""

from __future__ import annotations

import pytest

from sample_factory.algo import protocol
from sample_factory.algo.learning.learner_worker import LearnerWorker
from sample_factory.algo.sampling.rollout_worker import RolloutWorker
from sample_factory.pbt.population_based_training import PopulationBasedTraining
from sample_factory.runner.runner import Runner
from sample_factory.runner.supervisor import Supervisor
from sample_factory.signal_slot import loop as loop_module
from sample_factory.signal_slot.loop import EventLoop, EventLoopObject, UnconnectedSignalError, signal

CARRIES_NOTHING = {(Runner, "stop_requested")}


@pytest.mark.parametrize("component", [RolloutWorker, LearnerWorker, Supervisor, PopulationBasedTraining, Runner])
def test_every_declared_signal_names_its_payload_type(component):
    declared = {name: value for name, value in vars(component).items() if isinstance(value, signal)}
    assert declared, f"{component.__name__} declares no signal"
    for name, sig in declared.items():
        if (component, name) in CARRIES_NOTHING:
            assert sig.payload is None
            continue
        assert sig.payload is not None, f"{component.__name__}.{name} declares no payload type"
        assert sig.payload.__module__ == protocol.__name__, f"{component.__name__}.{name}: payloads live in protocol"


def test_named_signals_carry_their_payload_type():
    specs = [
        (protocol.inference_requested(1), "inference_requested_p1", protocol.InferenceRequest),
        (protocol.actions_ready(3), "actions_ready_w3", protocol.ActionsReady),
        (protocol.trajectory_ready(0), "trajectory_ready_p0", protocol.TrajectoryReady),
        (protocol.save_best(2), "save_best_p2", protocol.SaveBest),
        (protocol.new_hyperparams(0), "new_hyperparams_p0", protocol.NewHyperparams),
        (protocol.export_weights(0), "export_weights_p0", protocol.ExportWeights),
        (protocol.import_weights(0), "import_weights_p0", protocol.ImportWeights),
    ]
    for spec, name, payload in specs:
        assert (spec.name, spec.payload) == (name, payload)


class _Sender(EventLoopObject):
    finished = signal(protocol.EpisodesFinished)


class _Receiver(EventLoopObject):
    def __init__(self, loop):
        super().__init__(loop, "receiver")
        self.got = []

    def on_finished(self, finished: protocol.EpisodesFinished):
        self.got.append(finished.episodes)

    def on_ready(self, ready: protocol.TrajectoryReady):
        self.got.append(ready.slots)


@pytest.fixture
def strict(monkeypatch):
    monkeypatch.setattr(loop_module, "STRICT_SIGNALS", True)


def test_a_payload_of_its_type_reaches_the_slot_whole(strict):
    loop = EventLoop("test")
    sender, receiver = _Sender(loop, "sender"), _Receiver(loop)
    sender.finished.connect(receiver.on_finished)
    sender.named_signal(protocol.trajectory_ready(0)).connect(receiver.on_ready)
    # Not run by this thread: the messages go through the loop's queue, pickled as across processes.
    sender.finished.emit(protocol.EpisodesFinished([{"reward": 1.0}]))
    sender.named_signal(protocol.trajectory_ready(0)).emit(protocol.TrajectoryReady(0, [4, 5]))
    loop.run_once(max_wait_sec=0.5)
    assert receiver.got == [[{"reward": 1.0}], [4, 5]]


@pytest.mark.parametrize(
    "emit",
    [
        lambda s: s.finished.emit([{"reward": 1.0}]),  # the fields without their type
        lambda s: s.finished.emit(protocol.TrajectoryReady(0, [1])),  # another message
        lambda s: s.finished.emit(),  # nothing
        lambda s: s.named_signal(protocol.trajectory_ready(0)).emit(0, [1, 2]),  # 2.x-style positional args
    ],
    ids=["fields", "another-type", "nothing", "positional"],
)
def test_strict_mode_refuses_a_payload_not_of_the_declared_type_and_names_the_signal(strict, emit):
    loop = EventLoop("test")
    sender, receiver = _Sender(loop, "sender"), _Receiver(loop)
    sender.finished.connect(receiver.on_finished)
    sender.named_signal(protocol.trajectory_ready(0)).connect(receiver.on_ready)
    with pytest.raises(TypeError, match=r"sender\.(finished|trajectory_ready_p0) emitted .*its payload is one"):
        emit(sender)


def test_strict_mode_still_refuses_an_emit_nobody_receives(strict):
    sender = _Sender(EventLoop("test"), "sender")
    with pytest.raises(UnconnectedSignalError, match="sender.finished"):
        sender.finished.emit(protocol.EpisodesFinished([]))
