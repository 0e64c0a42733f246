"""What one FIFO log reports: its counters, and its faults logged at most once a minute.

The counters are cumulative for the FIFO's whole life: a processing stage that a new
operator policy replaced leaves its counters here (``retire_stage``), so that a container's
``rate_limited_lines`` do not go back to zero when its options change.
"""

from __future__ import annotations

import logging
import math
import os
from collections import Counter
from typing import Any, Final

import trio

from logdriver.delivery.totals import FifoStatistics

log = logging.getLogger("logdriver.driver")

ERROR_LOG_INTERVAL: Final = 60.0


class FifoAccounts:
    """The counters of the FIFO at ``path`` (container ``short_id``) and their log lines."""

    def __init__(self, path: str, short_id: str) -> None:
        self.path = path
        self.short_id = short_id
        self.counts = FifoStatistics()  # records, store errors and budget cuts; the rest is the decoder's
        self._retired: dict[str, int] = {}  # the counters of stages a reconfiguration replaced
        self._stage_counts: dict[str, int] = {}  # the stage's, as last read
        self._errors_reported = 0
        self._errors_reported_at = -math.inf
        self._store_error_logged_at = -math.inf
        self._budget_cut_logged_at = -math.inf

    # -- what happened -----------------------------------------------------------

    def store_failed(self, exc: OSError) -> None:
        """A docker logs write failed: these lines are missing from docker logs, never from the sinks."""
        self.counts.store_errors += 1
        now = trio.current_time()
        if now - self._store_error_logged_at >= ERROR_LOG_INTERVAL:
            self._store_error_logged_at = now
            log.error(
                "docker logs store cannot write for %s (%s); %d reads missing from docker logs so far",
                self.short_id,
                exc.strerror,
                self.counts.store_errors,
            )

    def budget_cut(self, pieces: int) -> None:
        """Open partial lines or events were sent as they were: the memory budget had no room."""
        self.counts.partial_cut_by_budget += pieces
        now = trio.current_time()
        if now - self._budget_cut_logged_at >= ERROR_LOG_INTERVAL:
            self._budget_cut_logged_at = now
            log.warning(
                "memory budget full: %d open partial lines or multiline events of %s sent as they were (%d so far)",
                pieces,
                self.short_id,
                self.counts.partial_cut_by_budget,
            )

    def decoder_errors(self, decoder: Any) -> None:
        """Log corrupt input as it happens, at most once a minute (counts are cumulative)."""
        if decoder.errors == self._errors_reported:
            return
        now = trio.current_time()
        if now - self._errors_reported_at < ERROR_LOG_INTERVAL:
            return
        self._errors_reported_at = now
        self._errors_reported = decoder.errors
        counts = decoder.statistics()
        log.error(
            "FIFO %s of %s: %d corrupt frame headers (%d bytes skipped to resync), %d undecodable entries so far",
            self.path,
            self.short_id,
            counts["oversize_frames"],
            counts["skipped_bytes"],
            counts["decode_errors"],
        )

    def retire_stage(self, counts: dict[str, int]) -> None:
        """A stage was replaced: its counters stay with the FIFO."""
        for name, value in counts.items():
            self._retired[name] = self._retired.get(name, 0) + value
        self._stage_counts = {}

    @property
    def retired(self) -> bool:
        return bool(self._retired)

    # -- what it says ----------------------------------------------------------------

    def statistics(self, decoder: Any, stage_counts: dict[str, int] | None) -> FifoStatistics:
        """The counters now; ``stage_counts`` None: the stage is busy, the last ones read."""
        if stage_counts is not None:
            self._stage_counts = stage_counts
        processing = Counter(self._retired)
        processing.update(self._stage_counts)
        counts = decoder.statistics()
        return FifoStatistics(
            entries=counts["entries"],
            records=self.counts.records,
            bytes=counts["bytes"],
            decode_errors=counts["decode_errors"],
            corrupt_frames=counts["oversize_frames"],
            skipped_bytes=counts["skipped_bytes"],
            store_errors=self.counts.store_errors,
            partial_cut_by_budget=self.counts.partial_cut_by_budget,
            processing=processing,
        )

    def closed(self, stats: FifoStatistics, reached_eof: bool) -> None:
        """The FIFO's last word: its corrupt input, if any, and what it carried."""
        if stats.corrupt_frames or stats.decode_errors:
            log.error(
                "FIFO %s of %s had %d corrupt frame headers (%d bytes skipped to resync) and %d undecodable entries",
                self.path,
                self.short_id,
                stats.corrupt_frames,
                stats.skipped_bytes,
                stats.decode_errors,
            )
        log.info(
            "FIFO %s of %s closed%s: %d entries, %d lines, %d bytes, %d decode errors, %d corrupt frames%s",
            os.path.basename(self.path)[:12],
            self.short_id,
            "" if reached_eof else " before EOF",
            stats.entries,
            stats.records,
            stats.bytes,
            stats.decode_errors,
            stats.corrupt_frames,
            f", {stats.store_errors} store write errors" if stats.store_errors else "",
        )
