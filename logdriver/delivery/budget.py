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

import ctypes
import weakref
from dataclasses import dataclass, field
from typing import Final

# Bytes a queued line costs beyond its text (its record in the native batch), and a
# queued batch beyond its lines (the Python and Rust objects, the queue slot). Measured
# as RSS growth per queued line of 200 bytes: 487 at 1 line a batch, 390 at 5, 355 at 20,
# 321 at 100, 302 at 1,000 (tests/unit/test_memory_budget.py); the charge is at or above
# each but at 20 lines a batch (3 % under).
ENTRY_OVERHEAD: Final = 120
BATCH_OVERHEAD: Final = 450
# A batch handed to a sink is rendered into a request: its columns, the rendered body and
# the request's own copy cost about three times its line bytes more (measured with OTLP,
# the costliest: a 32 MiB batch took 95 MiB more RSS). Charged while the batch is out.
REQUEST_FACTOR: Final = 3
# The rendering of a request's first this-many line bytes is fixed overhead (about 768 KiB
# per request in flight), the rest is charged: so a full budget makes requests this size,
# never one line each, and the budget itself is never passed for rendering.
REQUEST_FLOOR: Final = 256 << 10


def request_cost(nbytes: int) -> int:
    """What rendering a request of ``nbytes`` line bytes is charged, beyond its lines."""
    return REQUEST_FACTOR * max(0, nbytes - REQUEST_FLOOR)


# Fair shares of a budget (``Budget.share``): one container holds at most a quarter of it,
# and its last eighth is kept for containers that hold less than a 64th. So a container
# (or a few) with a dead destination and big queues cannot take what a neighbour needs
# for its next read: the neighbour always finds room in the reserve.
SHARE_MAX: Final = 4  # a container's share is at most limit // SHARE_MAX
RESERVE: Final = 8  # limit // RESERVE is kept for small holders
SMALL: Final = 64  # a small holder holds less than limit // SMALL


@dataclass(slots=True)
class Budget:
    """A byte allowance shared by many holders; they ``take`` before holding and ``give`` back after."""

    name: str
    limit: int
    used: int = 0
    peak: int = 0
    recent_peak: int = 0  # the peak since the holder last looked (``take_recent_peak``)
    refusals: int = 0  # times a holder was refused: its queue counted as full
    _shares: weakref.WeakValueDictionary[str, Share] = field(default_factory=weakref.WeakValueDictionary, repr=False)

    def share(self, holder: str) -> Share:
        """The fair share of ``holder`` (a container): every queue and open line of one
        container takes from the same share, which lives as long as something holds it."""
        share = self._shares.get(holder)
        if share is None:
            share = self._shares[holder] = Share(self, holder)
        return share

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
        self.recent_peak = max(self.recent_peak, self.used)

    def give(self, amount: int) -> None:
        self.used = max(0, self.used - amount)

    def take_recent_peak(self) -> int:
        """The peak since the last call, which starts a new period."""
        peak, self.recent_peak = self.recent_peak, self.used
        return peak

    def statistics(self) -> BudgetStatistics:
        return BudgetStatistics(self.name, self.used, self.limit, self.peak, self.refusals)


class Share:
    """One holder's part of a ``Budget``, with its interface: at most ``limit // SHARE_MAX``,
    and the last ``limit // RESERVE`` of the budget only while it holds less than
    ``limit // SMALL``."""

    def __init__(self, budget: Budget, holder: str) -> None:
        self.budget = budget
        self.holder = holder
        self.used = 0

    @property
    def limit(self) -> int:
        return self.budget.limit // SHARE_MAX

    @property
    def refusals(self) -> int:
        return self.budget.refusals

    @refusals.setter
    def refusals(self, value: int) -> None:
        self.budget.refusals = value

    def room(self) -> int:
        budget = self.budget
        room = min(budget.room(), self.limit - self.used)
        if self.used >= budget.limit // SMALL:
            room = min(room, budget.limit - budget.limit // RESERVE - budget.used)
        return max(0, room)

    def try_take(self, amount: int) -> bool:
        if amount > self.room():
            self.budget.refusals += 1
            return False
        self.take(amount)
        return True

    def take(self, amount: int) -> None:
        self.used += amount
        self.budget.take(amount)

    def give(self, amount: int) -> None:
        self.used = max(0, self.used - amount)
        self.budget.give(amount)


@dataclass(frozen=True, slots=True)
class BudgetStatistics:
    name: str
    used: int
    limit: int
    peak: int
    refusals: int


# What a holder draws on: the whole budget, or its share of it.
Allowance = Budget | Share


def unlimited(name: str) -> Budget:
    return Budget(name, 1 << 62)


def memory_cost(entries: int, nbytes: int, batches: int = 1) -> int:
    return nbytes + ENTRY_OVERHEAD * entries + BATCH_OVERHEAD * batches


def request_bytes(max_bytes: int, room: int) -> int:
    """Line bytes a request may carry when the budget has ``room``: what the rendering
    costs must fit, down to ``REQUEST_FLOOR``."""
    return min(max_bytes, REQUEST_FLOOR + room // REQUEST_FACTOR)


# What queues free is not always given back by glibc's malloc (a heap seldom shrinks from
# the middle), so after a burst the process would keep its peak. ``release_free_memory``
# asks it to return every free page (malloc_trim), which the driver does when the memory
# budget has fallen well below its recent peak. Not a fixed mmap threshold: that gives
# memory back at once but costs a page fault per 4 KiB of every read (35 % more CPU).
RELEASE_AFTER: Final = 32 << 20  # bytes below the recent peak before memory is released
_libc: ctypes.CDLL | None = None


def release_free_memory() -> bool:
    """Return the allocator's free pages to the system; False where there is no glibc."""
    global _libc
    try:
        if _libc is None:
            _libc = ctypes.CDLL("libc.so.6")
        return bool(_libc.malloc_trim(0))
    except (OSError, AttributeError):
        return False
