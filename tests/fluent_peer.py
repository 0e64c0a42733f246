"""FluentPeer: the fluent org's real FluentServer (npm ``@fluent-org/logger``) as a subprocess.

Not a fake: this is an independent, maintained forward-protocol server, used
unmodified (tests/peers/fluent/server.js only wires its ``entry`` event to
stdout). ``make peers`` installs it; tests, end-to-end runs and ``make bench``
share this helper. Quirks that shape the checks here are in
../shared/docs/forward-and-bulk.md's appendix (acks come before entries are
emitted: poll; record strings may arrive as bytes).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

PEER_DIR = Path(__file__).parent / "peers" / "fluent"


class FluentPeer:
    def __init__(self, workdir: Path, name: str = "peer", port: int = 0, **env: str) -> None:
        if not (PEER_DIR / "node_modules" / "@fluent-org" / "logger").is_dir():
            raise RuntimeError("FluentServer is not installed: run `make peers`")
        self.output = workdir / f"{name}.jsonl"
        self.port = port
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> FluentPeer:
        """Start (or restart, on the same port) and wait until it listens."""
        env = {**os.environ, **self.env, "PEER_PORT": str(self.port)}
        offset = self.output.stat().st_size if self.output.exists() else 0
        node = shutil.which("node") or "node"
        with open(self.output, "ab") as out:
            self.process = subprocess.Popen([node, "server.js"], cwd=PEER_DIR, stdout=out, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(self.output, "rb") as out:
                out.seek(offset)
                for line in out:
                    if line.startswith(b'{"listening"'):
                        listening = json.loads(line)["listening"]
                        if isinstance(listening, int):
                            self.port = listening
                        return self
            if self.process.poll() is not None:
                raise RuntimeError(f"FluentServer exited with {self.process.returncode}")
            time.sleep(0.02)
        raise TimeoutError("FluentServer did not start listening")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None

    @property
    def address(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def _lines(self) -> list[dict[str, Any]]:
        if not self.output.exists():
            return []
        with open(self.output, "rb") as out:
            return [json.loads(line) for line in out if line.endswith(b"\n")]

    def events(self) -> list[dict[str, Any]]:
        return [line for line in self._lines() if "record" in line]

    def count(self) -> int:
        """The latest count printed in PEER_COUNT_ONLY mode."""
        counts = [line["count"] for line in self._lines() if "count" in line]
        return counts[-1] if counts else 0

    def reached(self, target: int) -> float | None:
        """When (unix time, 10 ms resolution) the PEER_COUNT_ONLY count first reached ``target``."""
        return next((line["t"] for line in self._lines() if line.get("count", -1) >= target), None)

    def wait_for(self, count: int, timeout: float = 20.0) -> list[dict[str, Any]]:
        """Events, once at least ``count`` arrived (entries are written after the ack)."""
        deadline = time.monotonic() + timeout
        while True:
            events = self.events()
            if len(events) >= count or time.monotonic() > deadline:
                return events
            time.sleep(0.05)

    def __enter__(self) -> FluentPeer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def received(peer: FluentPeer, count: int, within: float = 20.0) -> list[dict[str, Any]]:
    """``FluentPeer.wait_for`` for trio tests: polls without blocking the event loop
    (the peer is another process, so there is no event to wait on)."""
    import trio

    with trio.move_on_after(within):
        while len(peer.events()) < count:  # noqa: ASYNC110 - polling a file another process writes
            await trio.sleep(0.05)
    return peer.events()
