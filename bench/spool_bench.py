"""Disk spool append throughput: 1M lines of 200 bytes in read-sized batches.

Usage: python bench/spool_bench.py [--lines N] [--batch N] [--dir DIR]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time

from logdriver import LogRecord, batch_of
from logdriver.config.pipeline_options import Overflow
from logdriver.delivery.spool import DiskQueue


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--dir", default="/var/tmp")
    args = parser.parse_args()
    line = b"x" * 200
    batch = batch_of([LogRecord("stdout", 1_764_338_556_000_000_000 + i, line) for i in range(args.batch)])
    directory = tempfile.mkdtemp(prefix="spool-bench-", dir=args.dir)
    try:
        spool = DiskQueue(directory, 1 << 40, 1 << 40, Overflow.BLOCK)
        started = time.perf_counter()
        for _ in range(args.lines // args.batch):
            spool.offer(batch, 0.0)
        spool.close()  # includes the final fsync
        elapsed = time.perf_counter() - started
    finally:
        shutil.rmtree(directory)
    megabytes = args.lines * len(line) / 1e6
    print(
        f"spool append: {args.lines:,} lines of {len(line)} B in {elapsed:.2f} s = "
        f"{megabytes / elapsed:.0f} MB/s of lines ({spool.bytes / elapsed / 1e6:.0f} MB/s on disk, fsync every 1 s)"
    )


if __name__ == "__main__":
    main()
