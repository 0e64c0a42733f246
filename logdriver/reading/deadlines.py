"""One task sends every container's multiline events whose time is up.

A FIFO whose stage holds an open event schedules the moment it falls due; the task
sleeps until the earliest and calls the FIFO's ``flush_due``, which schedules again if
another event is open. A FIFO has at most one live entry: a heap with lazy deletion,
compacted when stale entries outnumber live ones.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
from typing import Protocol

import trio

log = logging.getLogger("logdriver.driver")


class Due(Protocol):
    def flush_due(self, now: float) -> None: ...


class Deadlines:
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Due]] = []
        self._live: dict[Due, float] = {}
        self._order = itertools.count()
        self._wake = trio.Event()

    def schedule(self, owner: Due, when: float) -> None:
        """Call ``owner.flush_due`` at ``when`` (or at its earlier time already scheduled)."""
        current = self._live.get(owner)
        if current is not None and current <= when:
            return
        self._live[owner] = when
        if not self._heap or when < self._heap[0][0]:
            self._wake.set()
        heapq.heappush(self._heap, (when, next(self._order), owner))
        if len(self._heap) > 2 * len(self._live) + 64:
            self._heap = [(w, n, o) for w, n, o in self._heap if self._live.get(o) == w]
            heapq.heapify(self._heap)

    def discard(self, owner: Due) -> None:
        self._live.pop(owner, None)

    def __len__(self) -> int:
        return len(self._live)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            now = trio.current_time()
            while self._heap and self._heap[0][0] <= now:
                when, _, owner = heapq.heappop(self._heap)
                if self._live.get(owner) != when:
                    continue  # rescheduled earlier, or discarded
                del self._live[owner]
                try:
                    owner.flush_due(now)
                except Exception:  # one container's failure must not stop the others' timers
                    log.exception("sending due multiline events failed")
            self._wake = trio.Event()
            with trio.move_on_at(self._heap[0][0] if self._heap else math.inf):
                await self._wake.wait()
