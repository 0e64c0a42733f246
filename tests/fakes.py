"""Fake sinks for tests. Named fakes: no sink is ever tested only against these."""

from __future__ import annotations

import gzip
import http.server
import threading
import time
from collections.abc import Callable

import trio

from logdriver import LogBatch, LogRecord, records_of
from logdriver.abc import DELIVERED, SendResult, SinkStream


class FakeStream(SinkStream):
    """Records what it is sent; can be told to stall, fail all, or fail some."""

    def __init__(self) -> None:
        self.delivered: list[LogRecord] = []
        self.attempts: list[tuple[float, int]] = []  # (time, batch size) of every send
        self.fail_times = 0  # the next N sends fail whole
        self.retry_after: float | None = None  # what those failures ask (HTTP's Retry-After)
        self.reject: dict[bytes, str] = {}  # lines refused for good, with the reason
        self.retry_lines: set[bytes] = set()  # lines refused once each, then taken
        self.stalled = trio.Event()
        self.stalled.set()  # set: not stalled
        self.closed = False

    def stall(self) -> None:
        self.stalled = trio.Event()

    def resume(self) -> None:
        self.stalled.set()

    async def send_batch(self, batch: LogBatch) -> SendResult:
        self.attempts.append((trio.current_time(), len(batch)))
        await self.stalled.wait()
        records = records_of(batch)
        if self.fail_times:
            self.fail_times -= 1
            return SendResult.retry_all(len(batch), self.retry_after)
        retry, rejected = [], {}
        for index, record in enumerate(records):
            if record.line in self.reject:
                rejected[index] = self.reject[record.line]
            elif record.line in self.retry_lines:
                self.retry_lines.discard(record.line)
                retry.append(index)
            else:
                self.delivered.append(record)
        return SendResult(retry=retry, rejected=rejected) if retry or rejected else DELIVERED

    async def aclose(self) -> None:
        self.closed = True


class FakeHttpEndpoint:
    """A fake HTTP endpoint (http.server in a thread) that takes POSTs and answers as told:
    the lying and broken servers a real Collector or VictoriaLogs never is (those are in
    tests/sinks/test_conformance.py). Gzip bodies are kept inflated."""

    def __init__(
        self,
        answers: list[tuple[int, dict[str, str], bytes, float]],
        answer: Callable[[bytes], tuple[int, dict[str, str], bytes, float]] | None = None,
    ) -> None:
        self.answers = answers  # (status, headers, body, seconds to wait first), the last repeats
        self.answer = answer  # or an answer made from each request's body
        self.bodies: list[bytes] = []
        self.encodings: list[str] = []
        self.headers: list[dict[str, str]] = []  # each request's, names lower-cased
        self.paths: list[str] = []
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                fake.encodings.append(self.headers.get("content-encoding", ""))
                fake.headers.append({k.lower(): v for k, v in self.headers.items()})
                fake.paths.append(self.path)
                fake.bodies.append(gzip.decompress(body) if self.headers.get("content-encoding") == "gzip" else body)
                if fake.answer is not None:
                    status, headers, answer, wait = fake.answer(fake.bodies[-1])
                else:
                    status, headers, answer, wait = fake.answers[min(len(fake.bodies), len(fake.answers)) - 1]
                if wait < 0:  # a reply that drips: a byte every -wait seconds, never done
                    self.send_response(status)
                    self.send_header("content-length", "100000")
                    self.end_headers()
                    try:
                        for _ in range(1000):
                            self.wfile.write(b"\x00")
                            self.wfile.flush()
                            time.sleep(-wait)
                    except OSError:
                        pass  # the client gave up, as it should
                    return
                time.sleep(wait)
                self.send_response(status)
                for key, value in {**headers, "content-length": str(len(answer))}.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
