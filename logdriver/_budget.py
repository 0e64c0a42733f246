"""Plugin-wide budgets: one for memory (queues and partial lines), one for disk (spools, dead letters).

Each container's queue has its own limits (``buffer-max-bytes``,
``buffer-max-entries``); a budget bounds them all together, so that many
containers, or many stopped containers still draining to a dead destination,
cannot take the host's memory or disk. A queue that would go over its budget
is full, whatever its own limits say, and its overflow policy applies (drops
counted). Memory is charged per line with ``ENTRY_OVERHEAD`` on top of the
line's bytes: what a queued line really costs in the process.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

# Bytes a queued line costs beyond its text: its record in the native batch, the
# batch objects and queue slots around it (measured: 60-80 bytes at 5,000 lines a batch).
ENTRY_OVERHEAD: Final = 80


@dataclass(slots=True)
class Budget:
    """A byte allowance shared by many holders; they ``take`` before holding and ``give`` back after."""

    name: str
    limit: int
    used: int = 0
    peak: int = 0
    refusals: int = 0  # times a holder was refused: its queue counted as full

    def room(self) -> int:
        return max(0, self.limit - self.used)

    def try_take(self, amount: int) -> bool:
        if self.used + amount > self.limit:
            self.refusals += 1
            return False
        self.take(amount)
        return True

    def take(self, amount: int) -> None:
        """Charge unconditionally (what is already held, such as a spool found at startup)."""
        self.used += amount
        self.peak = max(self.peak, self.used)

    def give(self, amount: int) -> None:
        self.used = max(0, self.used - amount)


def unlimited(name: str) -> Budget:
    return Budget(name, 1 << 62)


def memory_cost(entries: int, nbytes: int) -> int:
    return nbytes + ENTRY_OVERHEAD * entries
