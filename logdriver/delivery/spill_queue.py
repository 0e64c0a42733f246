"""Sans-IO but for its files: ``buffer=hybrid``, a memory queue that spills onto disk when full.

A burst larger than the memory queue (``buffer-max-bytes``/``-entries``, or the
container's memory share) is written to a spill on disk instead of being
dropped, so a healthy destination that is only slower than the burst gets
every line and the container is not held (Fluent Bit's memory + filesystem
storage does the same). The spill is bounded by ``spill-max-bytes`` and the
container's disk share; past them the pipeline's overflow policy decides,
counted as ever.

Order holds per container: once a batch has spilled, every later batch goes to
the spill too until the sender has taken everything spilled, and the sender
takes the memory queue (older lines) before the spill. The spill is not
durable: no fsync, no cursor; its files are removed when it closes and at
plugin start, and what it holds at a shutdown is counted lost, as memory is.
``buffer=disk`` is the queue that survives a restart.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable

from logdriver._native import LogBatch
from logdriver.config.pipeline_options import Overflow
from logdriver.delivery.memory_queue import BatchQueue, Offer
from logdriver.delivery.spool import DiskQueue


class SpillQueue:
    """The ``LineQueue`` protocol: ``memory`` first, ``open_spill()`` (made on the first spill) after it."""

    def __init__(self, memory: BatchQueue, open_spill: Callable[[], DiskQueue], directory: str) -> None:
        if memory.overflow is not Overflow.BLOCK:
            raise ValueError("the memory part of a spill queue must refuse (block), not drop")
        self.memory = memory
        self._open_spill = open_spill
        self.directory = directory
        self.spill: DiskQueue | None = None
        shutil.rmtree(directory, ignore_errors=True)  # a spill is never carried over

    @property
    def spilling(self) -> bool:
        """Lines are on disk that the sender has not taken: new lines go there too (order)."""
        return self.spill is not None and self.spill.entries > 0

    @property
    def entries(self) -> int:
        return self.memory.entries + (self.spill.entries if self.spill else 0)

    @property
    def bytes(self) -> int:
        return self.memory.bytes + (self.spill.bytes if self.spill else 0)

    @property
    def spooled_bytes(self) -> int:
        return self.spill.bytes if self.spill else 0

    @property
    def undelivered(self) -> int:
        return self.memory.undelivered + (self.spill.undelivered if self.spill else 0)

    def oldest_since(self) -> float | None:
        oldest = self.memory.oldest_since()
        if oldest is None and self.spill is not None:
            oldest = self.spill.oldest_since()
        return oldest

    def offer(self, batch: LogBatch, now: float) -> Offer:
        if not batch:
            return Offer()
        if not self.spilling:
            offer = self.memory.offer(batch, now)
            if not offer.must_wait:
                return offer
        if self.spill is None:
            self.spill = self._open_spill()
        offer = self.spill.offer(batch, now)
        offer.spilled = offer.accepted
        return offer

    def take(self, max_entries: int, max_bytes: int) -> LogBatch | None:
        if self.memory.entries:
            return self.memory.take(max_entries, max_bytes)
        if self.spill is not None:
            return self.spill.take(max_entries, max_bytes)
        return None

    def ack(self) -> None:
        self.memory.ack()
        if self.spill is not None:
            self.spill.ack()

    def close(self, unsettled: int) -> int:
        """Lost: what memory holds, what the spill holds not handed out, and ``unsettled``."""
        lost = self.memory.close(unsettled)
        if self.spill is not None:
            lost += self.spill.entries
            spill, self.spill = self.spill, None
            try:
                spill.close()  # gives its memory and disk shares back
            finally:
                shutil.rmtree(self.directory, ignore_errors=True)
        return lost
