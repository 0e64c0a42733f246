"""A pipeline's life cycle, kept as data: its phases and the events that move it.

::

    OPEN ──end_input──▶ DRAINING ──deadline──▶ FLUSHING
      │                    │                      │
      └──────deadline──────┼──────────────────────┘
                           ▼
    (any phase) ──finish──▶ DONE

- *open*: the FIFO feeds it; its sender delivers.
- *draining*: the FIFO ended (``docker stop``, or the container exited): no more input,
  and the sender delivers what is queued however long a destination is down, until
  the retry policy or a budget gives up on it (counted).
- *flushing*: a deadline is set (a plugin shutdown, or a start that failed): what is
  not delivered by then is dropped from memory, counted, or kept in the disk spool.
- *done*: stopped, its stream closed.

Only ``Deliveries`` sends ``END_INPUT`` and ``DEADLINE``; only the pipeline's sender
sends ``FINISH``. An event the table does not list for a phase is a bug: it raises.
"""

from __future__ import annotations

import enum
import math
from typing import Final

from logdriver._exceptions import LogDriverError


class Phase(enum.Enum):
    OPEN = "open"
    DRAINING = "draining"
    FLUSHING = "flushing"
    DONE = "done"


class Event(enum.Enum):
    END_INPUT = "end_input"  # the FIFO ended: deliver what is queued, take nothing new
    DEADLINE = "deadline"  # stop at a time (an earlier deadline replaces a later one)
    FINISH = "finish"  # the sender stopped it


TRANSITIONS: Final[dict[tuple[Phase, Event], Phase]] = {
    (Phase.OPEN, Event.END_INPUT): Phase.DRAINING,
    (Phase.OPEN, Event.DEADLINE): Phase.FLUSHING,
    (Phase.OPEN, Event.FINISH): Phase.DONE,  # its sender failed
    (Phase.DRAINING, Event.END_INPUT): Phase.DRAINING,
    (Phase.DRAINING, Event.DEADLINE): Phase.FLUSHING,
    (Phase.DRAINING, Event.FINISH): Phase.DONE,
    (Phase.FLUSHING, Event.END_INPUT): Phase.FLUSHING,
    (Phase.FLUSHING, Event.DEADLINE): Phase.FLUSHING,
    (Phase.FLUSHING, Event.FINISH): Phase.DONE,
    # A FIFO may end, or a shutdown reach, a pipeline whose sender already stopped it.
    (Phase.DONE, Event.END_INPUT): Phase.DONE,
    (Phase.DONE, Event.DEADLINE): Phase.DONE,
}


class Lifecycle:
    """The phase of one pipeline and its flush deadline (``inf`` until one is set)."""

    __slots__ = ("deadline", "phase")

    def __init__(self) -> None:
        self.phase = Phase.OPEN
        self.deadline = math.inf

    def apply(self, event: Event, deadline: float = math.inf) -> Phase:
        try:
            self.phase = TRANSITIONS[self.phase, event]
        except KeyError:
            raise LogDriverError(f"pipeline: no transition from {self.phase.value} on {event.value}") from None
        if event is Event.DEADLINE:
            self.deadline = min(self.deadline, deadline)
        return self.phase

    @property
    def taking_input(self) -> bool:
        return self.phase is Phase.OPEN
