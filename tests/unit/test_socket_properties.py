"""Property: whatever arrives on the plugin socket, the plugin answers it and keeps logging.

The real server and Driver, with every installed sink (the entry points), run in a
thread; hypothesis sends generated StartLogging, StopLogging and ReadLogs bodies:
every known option with hostile values, templates, sizes, Unicode and NUL, wrong JSON types. Every request must get an
HTTP answer of the kind the daemon expects, and afterwards a control FIFO must
still log to the file sink and read back through ReadLogs.
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logdriver.__main__ import load_sinks
from logdriver.config.options import OPTIONS
from logdriver.config.pipeline_options import PIPELINE_OPTIONS
from logdriver.config.settings import Settings
from logdriver.reading.registry import FifoRegistry
from logdriver.server.driver import Driver
from logdriver.server.unix import serve_unix
from logdriver.store.log_store import LogStore
from logdriver.testing import encode_entry, encode_frame

CID = "ab" * 32


class PluginThread:
    """The plugin's socket server and Driver in a thread of their own, as in production."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.socket = str(state / "plugin.sock")
        self.settings = Settings.from_env({"LOGDRIVER_STATE_DIR": str(state), "LOGDRIVER_GC_INTERVAL": "0s"})
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._scope: trio.CancelScope | None = None
        self._thread = threading.Thread(target=self._main, daemon=True)

    def _main(self) -> None:
        try:
            trio.run(self._serve)
        except BaseException as exc:
            self.error = exc
            self.ready.set()

    async def _serve(self) -> None:
        sinks = load_sinks(self.settings)
        store = LogStore(str(self.state / "store"), self.settings.store_max_bytes)
        driver = Driver(self.settings, sinks, store, FifoRegistry(str(self.state / "fifos.json")))
        self._token = trio.lowlevel.current_trio_token()
        with trio.CancelScope() as self._scope:
            async with trio.open_nursery() as nursery:
                await nursery.start(driver.run)
                await nursery.start(serve_unix, self.socket, driver)
                self.ready.set()
        store.close()

    def __enter__(self) -> PluginThread:
        self._thread.start()
        assert self.ready.wait(20)
        assert self.error is None, self.error
        return self

    def __exit__(self, *exc: object) -> None:
        if self._scope is not None and self._token is not None:
            trio.from_thread.run_sync(self._scope.cancel, trio_token=self._token)
        self._thread.join(30)

    def call(self, endpoint: str, body: bytes) -> tuple[int, bytes]:
        head = f"POST {endpoint} HTTP/1.1\r\nHost: p\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(30)
            sock.connect(self.socket)
            sock.sendall(head.encode() + body)
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        status_line, _, rest = data.partition(b"\r\n")
        assert status_line.startswith(b"HTTP/1.1 "), data[:200]
        return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


@pytest.fixture(scope="module")
def plugin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PluginThread]:
    with PluginThread(tmp_path_factory.mktemp("fuzz")) as thread:
        yield thread
        assert thread.error is None
        assert thread._thread.is_alive()


SINK_OPTIONS = ["fluentd-address", "fluentd-tls-ca", "fluentd-tls-cert", "fluentd-shared-key", "fluentd-buffer-limit"]
SINK_OPTIONS += ["es-url", "es-index", "es-tls-ca", "es-tls-cert", "es-request-timeout", "es-data-stream"]
NAMES = sorted(
    {
        *OPTIONS,
        *(option.name for option in PIPELINE_OPTIONS),
        *SINK_OPTIONS,
        "file-typo",
        "fluentd-overflow",
        "es-batch-max-bytes",
    }
)
HOSTILE = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        [
            "1" * 400,
            "-1",
            "0",
            "1e400",
            "nan",
            "99999999999999999999p",
            "{{" * 2000,
            "{{truncate .Name}}",
            "{{lower .Name .ID}}",
            "{{index .ContainerLabels}}",
            "{{foo .Name}}",
            "{{.Nope}}",
            "{{pad .Name 1}}",
            '{{"unclosed}}',
            "^(a+)+$",
            "(",
            "(a)\\1",
            "/nonexistent/ca.pem",
            "/etc/hostname",
            "tls://127.0.0.1:1",
            "unix:///nonexistent",
            "http://user:pw@[::1",
            "logs-{{foo .Name}}-%Y",
            "file,fluentd,elasticsearch",
            "carrier-pigeon",
            "none,file",
            "disk",
            "block",
            "\x00",
        ]
    ),
)
SECRETS = st.fixed_dictionaries(
    {}, optional={"fluentd-shared-key": st.just("s3cr3t"), "es-password": st.just("s3cr3t"), "sinks": HOSTILE}
)
CONFIG = st.builds(lambda a, b: {**a, **b}, st.dictionaries(st.sampled_from(NAMES), HOSTILE, max_size=6), SECRETS)
WRONG_TYPES = st.one_of(st.none(), st.integers(), st.lists(st.integers(), max_size=2), st.text(max_size=5))


def mostly(usual: st.SearchStrategy[Any], rare: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``usual`` nine times in ten."""
    return st.integers(0, 9).flatmap(lambda n: usual if n else rare)


# Mostly well-formed up to the options, so that most examples reach option validation and the sinks.
INFO = st.fixed_dictionaries(
    {
        "ContainerID": mostly(st.just(CID), st.one_of(st.text(max_size=70), WRONG_TYPES)),
        "Config": mostly(CONFIG, WRONG_TYPES),
    },
    optional={
        "ContainerName": st.one_of(st.text(max_size=20), WRONG_TYPES),
        "ContainerLabels": st.one_of(
            st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3), WRONG_TYPES
        ),
        "ContainerEnv": st.one_of(st.lists(st.text(max_size=10), max_size=3), WRONG_TYPES),
    },
)
TIMES = st.one_of(
    st.sampled_from(["2026-13-01T00:00:00Z", "0000-01-01T00:00:00Z", "9999-12-31T23:59:59.999999999Z", ""]),
    st.text(max_size=30),
    WRONG_TYPES,
)
READ_CONFIG = st.fixed_dictionaries(
    {},
    optional={
        "Since": TIMES,
        "Until": TIMES,
        "Tail": st.one_of(st.integers(-(2**70), 2**70), WRONG_TYPES),
        "Follow": st.booleans(),
    },
)
_serial = itertools.count()


def encode(request: dict[str, Any]) -> bytes:
    return json.dumps(request).encode()  # the stdlib's: integers of any size, as a hostile client may send


def fresh_fifo(state: Path) -> tuple[str, int]:
    path = str(state / f"fifo{next(_serial)}")
    os.mkfifo(path, 0o600)
    return path, os.open(path, os.O_RDWR)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(info=INFO, file_kind=st.sampled_from(["fifo"] * 6 + ["missing", "relative", "nul"]), read=READ_CONFIG)
def test_every_request_is_answered_and_the_plugin_keeps_logging(
    plugin: PluginThread, info: dict[str, Any], file_kind: str, read: dict[str, Any]
) -> None:
    path, writer = fresh_fifo(plugin.state)
    file = {"fifo": path, "missing": path + ".missing", "relative": "fifo", "nul": path + "\x00"}[file_kind]
    try:
        status, body = plugin.call("/LogDriver.StartLogging", encode({"File": file, "Info": info}))
        assert status == 200
        answer = orjson.loads(body)
        assert answer == {} or isinstance(answer.get("Err"), str)
        assert "internal error" not in answer.get("Err", "")  # every refusal names what is wrong
        assert b"s3cr3t" not in body  # secret option values are never echoed
        status, body = plugin.call("/LogDriver.StopLogging", orjson.dumps({"File": file}))
        assert (status, body) == (200, b"{}")  # always: an error would leak the daemon's FIFO
    finally:
        os.close(writer)  # EOF: a started FIFO finishes, and so does a follow stream of its container
    status, body = plugin.call("/LogDriver.ReadLogs", encode({"Info": info, "Config": read}))
    assert status in (200, 500)


def test_after_all_that_a_control_container_still_logs(plugin: PluginThread) -> None:
    path, writer = fresh_fifo(plugin.state)
    info = {"ContainerID": "cd" * 32, "ContainerName": "/control", "Config": {"sinks": "file"}}
    assert plugin.call("/LogDriver.StartLogging", orjson.dumps({"File": path, "Info": info})) == (200, b"{}")
    os.write(writer, b"".join(encode_frame(encode_entry("stdout", 1, b"control %d" % i)) for i in range(100)))
    plugin.call("/LogDriver.StopLogging", orjson.dumps({"File": path}))
    os.close(writer)
    for _ in range(100):  # the FIFO drains into the store just after StopLogging
        status, body = plugin.call("/LogDriver.ReadLogs", orjson.dumps({"Info": info, "Config": {"Tail": -1}}))
        assert status == 200
        if body.count(b"control ") == 100:
            break
        time.sleep(0.1)
    assert body.count(b"control ") == 100
