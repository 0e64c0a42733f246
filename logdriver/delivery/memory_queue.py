"""Sans-IO: one sink's bounded queue of batches for one container, and its overflow policy.

Limits are in line bytes and in entries. When a batch does not fit:
- ``block``: nothing is taken; the caller waits for room (and so stops reading
  the FIFO, so the container's writes block, as json-file's do);
- ``drop-newest``: the part of the new batch that fits is taken, the rest dropped;
- ``drop-oldest``: the oldest queued entries are dropped to make room.
Every dropped entry is counted; the caller logs them. The plugin-wide memory
budget (``_budget``) is one more limit: a batch over it does not fit either.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Protocol

from logdriver._native import LogBatch
from logdriver.config.pipeline_options import Overflow
from logdriver.delivery.budget import (
    BATCH_OVERHEAD,
    ENTRY_OVERHEAD,
    Allowance,
    memory_cost,
    request_bytes,
    request_cost,
    unlimited,
)


@dataclass(slots=True)
class Offer:
    """What ``BatchQueue.offer`` did with a batch."""

    accepted: int = 0
    dropped: int = 0
    must_wait: bool = False
    spilled: int = 0  # of the accepted, how many went to disk (``buffer=hybrid``)


class QueueView(Protocol):
    """What a sender may read of a pipeline's queue (``SinkPipeline.backlog``): read only."""

    @property
    def entries(self) -> int:
        """Lines queued, not handed out."""
        ...

    @property
    def bytes(self) -> int:
        """What the queue holds, as it counts bytes against its limit."""
        ...

    def oldest_since(self) -> float | None:
        """When the oldest queued line came in (trio time; None: nothing queued)."""
        ...


class LineQueue(Protocol):
    """What a pipeline needs of its queue, in memory (``BatchQueue``) or on disk (``DiskQueue``).

    ``take`` hands out lines from the front; ``ack`` says everything handed out is
    settled (delivered, dead-lettered or given up). ``close`` ends the queue and
    returns how many lines are lost with it: a memory queue loses what it holds
    plus ``unsettled`` (handed out, not yet settled); a spool keeps everything
    unacknowledged for the next start and loses nothing.
    """

    @property
    def entries(self) -> int:
        """Queued, not handed out."""
        ...

    @property
    def bytes(self) -> int:
        """What the queue holds, as it counts bytes against its limit."""
        ...

    def offer(self, batch: LogBatch, now: float) -> Offer: ...
    def oldest_since(self) -> float | None: ...
    def take(self, max_entries: int, max_bytes: int) -> LogBatch | None: ...
    def ack(self) -> None: ...
    def close(self, unsettled: int) -> int: ...

    @property
    def undelivered(self) -> int:
        """Lines queued or handed out and not yet acked."""
        ...

    @property
    def spooled_bytes(self) -> int:
        """Bytes on disk (0 for a memory queue)."""
        ...


class BatchQueue:
    def __init__(self, max_bytes: int, max_entries: int, overflow: Overflow, memory: Allowance | None = None) -> None:
        if max_bytes <= 0 or max_entries <= 0:
            raise ValueError("queue limits must be positive")
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self.overflow = overflow
        self.memory: Allowance = memory or unlimited("memory")
        self._items: deque[tuple[float, LogBatch]] = deque()
        self.bytes = 0
        self.entries = 0
        self._taken = 0  # handed out by take(), not yet acked
        # What those cost: lines handed out stay in memory until they are settled (a part
        # waiting for its retry time may wait long), so they stay charged to the budget.
        self._taken_cost = 0

    def __len__(self) -> int:
        return self.entries

    def oldest_since(self) -> float | None:
        """When the oldest queued entry was queued (the caller's clock), or None."""
        return self._items[0][0] if self._items else None

    def _fits(self, batch: LogBatch) -> bool:
        if self.bytes + batch.nbytes > self.max_bytes or self.entries + len(batch) > self.max_entries:
            return False
        if memory_cost(len(batch), batch.nbytes) > self.memory.room():
            self.memory.refusals += 1
            return False
        return True

    def _push(self, now: float, batch: LogBatch) -> None:
        self._items.append((now, batch))
        self.bytes += batch.nbytes
        self.entries += len(batch)
        self.memory.take(memory_cost(len(batch), batch.nbytes))

    def _pop(self) -> tuple[float, LogBatch]:
        queued_at, head = self._items.popleft()
        self.bytes -= head.nbytes
        self.entries -= len(head)
        self.memory.give(memory_cost(len(head), head.nbytes))
        return queued_at, head

    def offer(self, batch: LogBatch, now: float) -> Offer:
        if not batch:
            return Offer()
        if self._fits(batch):
            self._push(now, batch)
            return Offer(accepted=len(batch))
        if self.overflow is Overflow.BLOCK:
            if not self._items:  # a single batch larger than the queue still goes through
                self._push(now, batch)
                return Offer(accepted=len(batch))
            return Offer(must_wait=True)
        if self.overflow is Overflow.DROP_NEWEST:
            room = self._room_for(batch)
            kept = batch.slice(0, room)
            if kept:
                self._push(now, kept)
            return Offer(accepted=len(kept), dropped=len(batch) - len(kept))
        # DROP_OLDEST: make room from the front; keep the newest part of an oversize batch.
        offer = Offer()
        if len(batch) > self.max_entries or batch.nbytes > self.max_bytes:
            keep = min(len(batch), self.max_entries, max(1, _tail_count(batch, self.max_bytes)))
            offer.dropped = len(batch) - keep
            batch = batch.slice(len(batch) - keep, len(batch))
        while self._items and not self._fits(batch):
            head = self._items[0][1]
            excess_entries = self.entries + len(batch) - self.max_entries
            excess_bytes = max(
                self.bytes + batch.nbytes - self.max_bytes,
                memory_cost(len(batch), batch.nbytes) - self.memory.room(),
            )
            cut = max(excess_entries, head.count_within(excess_bytes) if excess_bytes > 0 else 0, 0)
            cut = min(max(cut, 1), len(head))
            self._split_head(cut)  # the dropped part is only counted, never built
            offer.dropped += cut
        if not self._fits(batch) and self.memory.room() < memory_cost(len(batch), batch.nbytes) and self._items:
            offer.dropped += len(batch)  # the budget is held by other queues: nothing of ours is left to drop
            return offer
        self._push(now, batch)
        offer.accepted = len(batch)
        return offer

    def _split_head(self, count: int) -> LogBatch:
        """Take the first ``count`` entries of the head batch out of the queue; return the whole head."""
        queued_at, head = self._pop()
        if count < len(head):
            rest = head.slice(count, len(head))
            self._items.appendleft((queued_at, rest))
            self.bytes += rest.nbytes
            self.entries += len(rest)
            self.memory.take(memory_cost(len(rest), rest.nbytes))
        return head

    def _room_for(self, batch: LogBatch) -> int:
        """How many leading entries of ``batch`` fit in the free room."""
        by_entries = min(self.max_entries - self.entries, len(batch))
        budget_room = self.memory.room() - BATCH_OVERHEAD
        free_bytes = min(self.max_bytes - self.bytes, budget_room - ENTRY_OVERHEAD * by_entries)
        while by_entries > 0 and free_bytes <= 0 and budget_room > 0:  # little budget left: fewer, then
            by_entries //= 2
            free_bytes = min(self.max_bytes - self.bytes, budget_room - ENTRY_OVERHEAD * by_entries)
        by_bytes = batch.count_within(free_bytes) if free_bytes > 0 else 0
        if by_bytes == 1 and (first := batch.slice(0, 1)).nbytes > free_bytes:
            # count_within returns at least one; an entry larger than the whole
            # buffer still goes through an empty queue, or it could never pass,
            # but never past the memory budget: that is memory the process would hold.
            fits_budget = memory_cost(1, first.nbytes) <= self.memory.room()
            by_bytes = 1 if not self.entries and fits_budget else 0
        return max(0, min(by_entries, by_bytes))

    def take(self, max_entries: int, max_bytes: int) -> LogBatch | None:
        """Up to the limits from the front (at least one entry), or None when empty; charged
        with what rendering it will cost, and no bigger than the budget has room for that."""
        max_bytes = request_bytes(max_bytes, self.memory.room())
        parts: list[LogBatch] = []
        entries = size = 0
        while self._items and entries < max_entries:
            head = self._items[0][1]
            want = min(max_entries - entries, head.count_within(max_bytes - size) if size < max_bytes else 0)
            if want <= 0:
                break
            head = self._split_head(want)
            if want < len(head):
                head = head.slice(0, want)
            parts.append(head)
            entries += len(head)
            size += head.nbytes
            if size >= max_bytes:
                break
        if not parts:
            return None
        self._taken += entries
        cost = memory_cost(entries, size, len(parts)) + request_cost(size)
        self.memory.take(cost)  # what _pop gave back: the lines are held until acked
        self._taken_cost += cost
        return parts[0] if len(parts) == 1 else LogBatch.concat(parts)

    def ack(self) -> None:
        self._taken = 0
        self.memory.give(self._taken_cost)
        self._taken_cost = 0

    @property
    def undelivered(self) -> int:
        return self.entries + self._taken

    @property
    def spooled_bytes(self) -> int:
        return 0

    def close(self, unsettled: int) -> int:
        """Empty the queue; returns the entries it held plus ``unsettled``: all lost."""
        return self.drain() + unsettled

    def drain(self) -> int:
        """Empty the queue; returns how many entries were in it."""
        dropped = self.entries
        self.memory.give(memory_cost(self.entries, self.bytes, len(self._items)))
        self._items.clear()
        self.bytes = self.entries = 0
        self._taken = 0
        self.memory.give(self._taken_cost)
        self._taken_cost = 0
        return dropped


def _tail_count(batch: LogBatch, max_bytes: int) -> int:
    """How many trailing entries of ``batch`` fit in ``max_bytes``."""
    count = 0
    size = 0
    for _source, _time, line, _partial in reversed(batch.tuples()):
        size += len(line)
        if size > max_bytes:
            break
        count += 1
    return count
