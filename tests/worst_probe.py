"""Every input at its worst (issue 30): one container sets every option it may set to its
worst value (the largest number each accepts, its nastiest accepted pattern) and writes the
worst lines it can, to a destination that answers the worst it can; a bystander with
default options ships to the operator's destination beside it, and is measured.

``python -m tests.worst_probe SECONDS``: runs the real Driver and plugin socket in this
process (a subprocess of the test, so that pytest's memory does not count) and prints one
JSON object: the bystander's lines written and delivered, the worst ``Plugin.Activate``
round trip, the process's peak RSS over its RSS before the first line, and the budget.

Both destinations are fakes (``FakeHttpEndpoint``, named fakes): the operator's answers
at once; the container's answers in turn with a gzip-of-gzip bomb, a 64 KiB reply of
one-byte fields, a partial success refusing everything, 429 with Retry-After, and a reply
that drips a byte at a time. The option values come from the registry (``worst_log_opts``),
so a new numeric option joins by itself; any other needs its worst value in ``EXPLICIT``.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import multiprocessing
import os
import socket
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Iterator
from typing import Any

import trio

from logdriver.config.options import CONTAINER_OPTIONS
from logdriver.config.pipeline_options import PIPELINE_OPTIONS
from logdriver.config.registry import Option
from logdriver.config.settings import Settings
from logdriver.reading.registry import FifoRegistry
from logdriver.server.driver import Driver
from logdriver.server.rpc import StartLogging, StopLogging
from logdriver.server.unix import serve_unix
from logdriver.store.log_store import LogStore
from logdriver.testing import encode_entry, encode_frame
from logdriver_sinks.otlp import MAX_REPLY, OtlpSink

from .fakes import FakeHttpEndpoint
from .memory_probe import reset_peak, rss_kib
from .sinks.test_otlp import OK, _partial

BUDGET = "64Mi"
COSTLY_PATTERN = "[ab]{0,1000}X|[ab]{0,1000}Y"  # the costliest that compiles (tests/unit/test_costly_processing.py)

# The worst value of each option that is not a number, for the OTLP sink the container ships to.
EXPLICIT: dict[str, str] = {
    "sinks": "otlp",
    "tag": "{{.ID}}" * 580,  # near the template cap, rendered 64 characters a piece
    "labels": "",
    "no-file": "false",  # the docker logs copy written: the costlier
    "keep-file": "true",
    "labels-regex": ".*",
    "env": "",
    "env-regex": ".*",
    "multiline": "",  # custom patterns instead: the costlier
    "multiline-start": COSTLY_PATTERN,
    "multiline-continue": COSTLY_PATTERN.replace("X", "Z").replace("Y", "W"),
    "parse": "json",
    # The line policy at its costliest: every line matched against two costly patterns, none
    # dropped by them, and a rate limit that passes everything (its exemption matched first).
    "redact": "all",
    # A costly redact-pattern drops the lines it cannot check (redaction fails closed), so the
    # destination's worst answers would go unexercised; its matcher is the patterns' above.
    "redact-pattern": "",
    "redact-mode": "hash",
    "redact-store": "true",
    "drop-lines": COSTLY_PATTERN.replace("X", "Q").replace("Y", "R"),
    "keep-lines": "",
    "min-level": "trace",
    "rate-limit": "10000000/s",
    "rate-limit-bytes": "1g/s",
    "rate-limit-burst": "10000000",
    "rate-limit-exempt": COSTLY_PATTERN.replace("X", "S").replace("Y", "T"),
    "rate-limit-action": "block",
    "overflow": "drop-oldest",
    "buffer": "memory",
    "otlp-compression": "gzip",
    "otlp-service-name": "s" * 8000,
    "otlp-tls-ca": "",
    "otlp-tls-cert": "",
    "otlp-tls-key": "",
    "otlp-tls-verify": "false",
    # Durations whose maximum only makes the container wait on itself, at most a test's length,
    # and waits whose minimum is worse for the destination's neighbours (more requests):
    "otlp-timeout": "5s",
    "flush-timeout": "5s",
    "block-timeout": "5s",
    "batch-max-wait": "100ms",
    "retry-initial": "100ms",
    "retry-max-delay": "200ms",
}


def _accepted(option: Option, text: str) -> bool:
    try:
        option.parse(text)
    except ValueError:
        return False
    return True


def largest(option: Option) -> str | None:
    """The largest number ``option`` accepts (None when it takes no number): the registry's
    own bound, found by search from its default, so a new numeric option needs no entry."""
    try:
        value = option.parse(option.default) if option.default else None
    except ValueError:
        value = None
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    unit = "" if isinstance(value, int) else "s"
    low = max(1, int(value))
    if not _accepted(option, f"{low}{unit}"):
        return None
    high = low * 2
    while high < 10**18 and _accepted(option, f"{high}{unit}"):
        low, high = high, high * 2
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if _accepted(option, f"{middle}{unit}") else (low, middle)
    return f"{low}{unit}"


def options_to_set() -> list[Option]:
    """Every option a container may set for itself and its OTLP sink."""
    return [o for o in (*CONTAINER_OPTIONS, *PIPELINE_OPTIONS, *OtlpSink.config.options()) if o.log_opt]


def worst_log_opts(endpoint: str) -> dict[str, str]:
    opts = {}
    for option in options_to_set():
        if option.name in EXPLICIT:
            opts[option.name] = EXPLICIT[option.name]
        elif option.name == "otlp-endpoint":
            opts[option.name] = endpoint
        elif (value := largest(option)) is not None:
            opts[option.name] = value
        else:
            raise SystemExit(f"no worst value for the log-opt {option.name!r}: add it to EXPLICIT")
    return {k: v for k, v in opts.items() if v}


def worst_answers() -> Iterator[tuple[int, dict[str, str], bytes, float]]:
    deflate = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    bomb = b"".join([*(deflate.compress(bytes(1 << 20)) for _ in range(256)), deflate.flush()])
    answers = [
        (200, {"content-encoding": "gzip, gzip"}, gzip.compress(bomb), 0.0),
        (200, {"content-type": "application/x-protobuf"}, b"\x08\x01" * (MAX_REPLY // 2), 0.0),
        (200, {}, _partial(127, b"refused"), 0.0),
        (429, {"retry-after": "1"}, b"", 0.0),
        (200, {}, b"", -0.05),  # drips a byte every 50 ms
    ]
    while True:
        yield from answers


def worst_lines() -> Iterator[bytes]:
    """Frames of the worst lines, forever: lines the pattern finds costly, JSON of deep
    objects with long keys, and a 1 MiB line in Docker's 16 KiB pieces."""
    key = "k" * 3_000
    deep = '{"leaf":1}'
    for _ in range(15):
        deep = f'{{"{key}":{deep}}}'
    from logdriver import PartialInfo

    n = 0
    while True:
        n += 1
        yield encode_frame(encode_entry("stdout", n, b"ab" * 8000))
        yield encode_frame(encode_entry("stdout", n, deep.encode()))
        for piece in range(64):
            partial = PartialInfo(f"p{n}", piece + 1, piece == 63)
            yield encode_frame(encode_entry("stderr", n, b"p" * 16_384, partial))


def write_hostile(path: str, stop: Any, count: Any) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    for frame in worst_lines():
        view = memoryview(frame)
        while view:
            if stop.is_set():
                return
            try:
                view = view[os.write(fd, view) :]
            except BlockingIOError:
                time.sleep(0.001)
        count.value += 1


def write_bystander(path: str, stop: Any, count: Any) -> None:
    """200 lines a second, paced by the clock: a line late is written as soon as it can be,
    so that only a write that blocks (the plugin not reading) makes the count fall short."""
    fd = os.open(path, os.O_WRONLY)
    started, n = time.monotonic(), 0
    while not stop.is_set():
        due = int((time.monotonic() - started) * 200)
        frames = [encode_frame(encode_entry("stdout", i, b"bystander-%06d" % i)) for i in range(n, due)]
        if frames:
            os.write(fd, b"".join(frames))
            n = due
            count.value = n
        time.sleep(0.005)


def probe_activate(sock: str, stop: Any, worst: Any, probes: Any) -> None:
    while not stop.is_set():
        worst.value = max(worst.value, activate_seconds(sock))
        probes.value += 1
        time.sleep(0.05)


def activate_seconds(path: str) -> float:
    started = time.monotonic()
    with socket.socket(socket.AF_UNIX) as client:
        client.settimeout(10)
        client.connect(path)
        client.sendall(b"POST /Plugin.Activate HTTP/1.1\r\nHost: plugin\r\nContent-Length: 0\r\n\r\n")
        assert b"LogDriver" in client.recv(4096)
    return time.monotonic() - started


async def main(seconds: float, hostile_on: bool = True) -> dict[str, object]:
    state = tempfile.mkdtemp(prefix="worst-probe-")
    operator = FakeHttpEndpoint([OK])
    answers = worst_answers()
    lock = threading.Lock()

    def next_answer(_: bytes) -> tuple[int, dict[str, str], bytes, float]:
        with lock:
            return next(answers)

    hostile = FakeHttpEndpoint([], answer=next_answer)
    settings = Settings.from_env(
        {
            "LOGDRIVER_STATE_DIR": state,
            "LOGDRIVER_MEMORY_MAX_BYTES": BUDGET,
            "LOGDRIVER_STORE_MAX_BYTES": "64m",
            "LOGDRIVER_OTLP_ENDPOINT": operator.url,
            "LOGDRIVER_OTLP_COMPRESSION": "none",
            "LOGDRIVER_BATCH_MAX_WAIT": "100ms",
        }
    )
    sink = OtlpSink.from_settings(settings)
    store = LogStore(os.path.join(state, "store"), settings.store_max_bytes)
    driver = Driver(settings, {"otlp": sink}, store, FifoRegistry(os.path.join(state, "fifos.json")))
    sock = os.path.join(state, "plugin.sock")
    fifos = {}
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run)
        await nursery.start(serve_unix, sock, driver)
        containers = [("hostile", worst_log_opts(hostile.url))] if hostile_on else []
        for name, config in (*containers, ("bystander", {"sinks": "otlp"})):
            path = os.path.join(state, name)
            os.mkfifo(path, 0o600)
            fifos[name] = (path, os.open(path, os.O_RDWR))
            info = {
                "ContainerID": (name[0] * 64),
                "ContainerName": f"/{name}",
                "ContainerImageName": "busybox",
                "Config": config,
            }
            await driver.start_logging(StartLogging(path, info))
        before = rss_kib("VmRSS")
        reset_peak()

        # Writers and the Activate prober are processes of their own, as containers and dockerd
        # are: as threads here they would share the plugin's GIL and measure it, not logdriver.
        spawn = multiprocessing.get_context("spawn")
        stop = spawn.Event()
        counts = {name: spawn.Value("q", 0) for name in ("hostile", "bystander")}
        worst, probes = spawn.Value("d", 0.0), spawn.Value("q", 0)
        jobs = [
            spawn.Process(target=write_bystander, args=(fifos["bystander"][0], stop, counts["bystander"])),
            spawn.Process(target=probe_activate, args=(sock, stop, worst, probes)),
        ]
        if hostile_on:
            jobs.append(spawn.Process(target=write_hostile, args=(fifos["hostile"][0], stop, counts["hostile"])))
        for job in jobs:
            job.start()
        await trio.sleep(seconds)
        stop.set()
        while any(job.is_alive() for job in jobs):  # noqa: ASYNC110 - processes, not tasks
            await trio.sleep(0.05)
        written = {name: value.value for name, value in counts.items()}
        deadline = trio.current_time() + 10
        while trio.current_time() < deadline and _delivered(operator) < written["bystander"]:  # noqa: ASYNC110
            await trio.sleep(0.1)  # a fake in a thread: nothing to wait on but its bodies
        peak = rss_kib("VmHWM")
        result: dict[str, object] = {
            "bystander_written": written["bystander"],
            "bystander_delivered": _delivered(operator),
            "hostile_frames": written["hostile"],
            "hostile_requests": len(hostile.bodies),
            "activate_worst": worst.value,
            "activate_count": probes.value,
            "rss_growth": (peak - before) * 1024,
            "budget": driver.memory.limit,
            "budget_peak": driver.memory.peak,
            "processing": {
                **{
                    name: driver.statistics().fifos.processing.get(name, 0)
                    for name in ("multiline_pattern_gave_up", "processing_over_cpu_budget")
                },
                "partial_cut_by_budget": driver.statistics().fifos.partial_cut_by_budget,
            },
            "otlp": dataclasses.asdict(driver.statistics().sinks["otlp"].totals),
        }
        for path, fd in fifos.values():
            await driver.stop_logging(StopLogging(path))
            os.close(fd)
        nursery.cancel_scope.cancel()
    operator.close()
    hostile.close()
    return result


def _delivered(endpoint: FakeHttpEndpoint) -> int:
    return len({body_line for body in endpoint.bodies for body_line in _markers(body)})


def _markers(body: bytes) -> set[bytes]:
    found, at = set(), body.find(b"bystander-")
    while at >= 0:
        found.add(body[at : at + 16])
        at = body.find(b"bystander-", at + 1)
    return found


if __name__ == "__main__":
    print(json.dumps(trio.run(main, float(sys.argv[1]), "baseline" not in sys.argv[2:]), default=str))
