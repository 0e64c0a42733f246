"""Sans-IO retry policy: exponential backoff with full jitter, a delay cap, a time cap.

Full jitter (delay drawn uniformly from 0 to the exponential bound) spreads the
retries of many containers hitting the same dead destination, instead of
having them all reconnect in step.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    initial: float = 0.5
    max_delay: float = 30.0
    max_elapsed: float = math.inf  # give up on a batch after this long (inf: never)
    max_attempts: int = 0  # give up after this many retries (0: never)

    def bound(self, attempt: int) -> float:
        """The largest delay before retry number ``attempt`` (0-based)."""
        return min(self.max_delay, self.initial * 2.0 ** min(attempt, 60))

    def delay(self, attempt: int, rng: random.Random) -> float:
        return rng.uniform(0.0, self.bound(attempt))

    def gives_up(self, elapsed: float, next_delay: float, retries_done: int = 0) -> bool:
        """Whether to stop: waiting ``next_delay`` more would pass the total-time cap,
        or ``retries_done`` already reached the retry cap."""
        if self.max_attempts and retries_done >= self.max_attempts:
            return True
        return elapsed + next_delay > self.max_elapsed
