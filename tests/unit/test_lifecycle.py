"""A pipeline's life cycle is a table: every phase and event, and a pipeline walking it."""

from __future__ import annotations

import math

import pytest
import trio

from logdriver import LogRecord, batch_of
from logdriver._exceptions import LogDriverError
from logdriver.abc import DELIVERED, SendResult, SinkStream
from logdriver.config.pipeline_options import pipeline_options
from logdriver.delivery.lifecycle import TRANSITIONS, Event, Lifecycle, Phase
from logdriver.delivery.pipeline import SinkPipeline
from logdriver.delivery.sender import run_alone


def test_every_phase_and_event_is_listed_or_refused() -> None:
    for phase in Phase:
        for event in Event:
            machine = Lifecycle()
            machine.phase = phase
            if (phase, event) in TRANSITIONS:
                assert machine.apply(event, 5.0) is TRANSITIONS[phase, event]
            else:
                with pytest.raises(LogDriverError, match=f"from {phase.value} on {event.value}"):
                    machine.apply(event)
    # Only the sender's finish leaves a phase for done, and nothing leaves done.
    assert {after for (before, _), after in TRANSITIONS.items() if before is Phase.DONE} == {Phase.DONE}
    assert [(p, e) for p, e in TRANSITIONS if p is Phase.DONE and e is Event.FINISH] == []


def test_an_earlier_deadline_replaces_a_later_one() -> None:
    machine = Lifecycle()
    assert machine.deadline == math.inf
    machine.apply(Event.END_INPUT)
    assert machine.phase is Phase.DRAINING
    machine.apply(Event.DEADLINE, 10.0)
    machine.apply(Event.DEADLINE, 20.0)
    assert (machine.phase, machine.deadline) == (Phase.FLUSHING, 10.0)


class Recording(SinkStream):
    def __init__(self) -> None:
        self.lines = 0

    async def send_batch(self, batch: object) -> SendResult:
        self.lines += len(batch)  # type: ignore[arg-type]
        return DELIVERED

    async def aclose(self) -> None:
        pass


async def test_a_pipeline_walks_open_draining_done() -> None:
    stream = Recording()
    pipeline = SinkPipeline("fake", "c" * 64, stream, pipeline_options("fake", {}, {"batch-max-wait": "1s"}, {}))
    async with trio.open_nursery() as nursery:
        await nursery.start(run_alone, pipeline)
        assert pipeline.phase is Phase.OPEN
        await pipeline.put(batch_of([LogRecord("stdout", 1, b"one")]))
        pipeline.close()
        assert pipeline.phase is Phase.DRAINING  # what it holds still goes out
        await pipeline.finished()
    assert (pipeline.phase, stream.lines) == (Phase.DONE, 1)


async def test_a_deadline_makes_a_pipeline_flush() -> None:
    pipeline = SinkPipeline("fake", "c" * 64, Recording(), pipeline_options("fake", {}, {}, {}))
    async with trio.open_nursery() as nursery:
        await nursery.start(run_alone, pipeline)
        pipeline.close(trio.current_time() + 5)
        assert pipeline.phase is Phase.FLUSHING
        await pipeline.finished()
    assert pipeline.phase is Phase.DONE
