"""On the real engine: bad input from one container or client never ends the plugin, and a
container that exits while its destination is down loses nothing (FluentServer, OpenSearch)."""

from __future__ import annotations

import json
import os
import re
import resource
import socket
import subprocess
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..es_peer import SearchNode
from ..fluent_peer import FluentPeer
from ..ports import free_port
from .conftest import IMAGE, Plugin, docker, logs

STEADY = "for i in $(seq 1 3000); do echo steady $i; sleep 0.002; done"


def plugin_call(plugin: Plugin, data: bytes, *, hang_up: bool = False) -> bytes:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(30)
        sock.connect(plugin.socket)
        sock.sendall(data)
        if hang_up:
            return b""  # gone before the answer
        sock.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
        return reply


def post(endpoint: str, body: dict[str, object]) -> bytes:
    data = json.dumps(body).encode()
    return f"POST {endpoint} HTTP/1.1\r\nHost: p\r\nContent-Length: {len(data)}\r\n\r\n".encode() + data


TLS = {"sinks": "fluentd", "fluentd-address": "tls://127.0.0.1:1"}
BAD_OPTS = [
    ({"tag": "{{truncate .Name}}"}, "tag"),
    ({"tag": "{{lower .Name .ID}}"}, "tag"),
    ({"tag": "{{" * 20000}, "tag"),
    ({"max-size": "9" * 400}, "max-size"),
    ({"partial-max-size": "9" * 400}, "partial-max-size"),
    ({"labels-regex": "(a)\\1"}, "labels-regex"),
    (
        {"sinks": "fluentd", "fluentd-address": "tls://127.0.0.1:1", "fluentd-tls-ca": "/nonexistent.pem"},
        "fluentd-tls-ca",
    ),
    (
        {"sinks": "fluentd", "fluentd-address": "tls://127.0.0.1:1", "fluentd-tls-cert": "/etc/hostname"},
        "fluentd-tls-cert",
    ),
    ({"sinks": "elasticsearch", "es-index": "logs-{{foo .Name}}"}, "es-index"),
    ({"sinks": "elasticsearch", "es-url": "https://127.0.0.1:1", "es-tls-ca": "/nonexistent.pem"}, "es-tls-ca"),
    # Options bounded by what they cost, and secrets that would show in docker inspect.
    ({"file-max-size": "1k", "file-max-file": "1000"}, "file-max-file"),
    ({"sinks": "kafka", "kafka-brokers": ",".join(f"b{i}.example:9092" for i in range(4000))}, "kafka-brokers"),
    ({"sinks": "elasticsearch", "es-api-key": "a-secret-in-docker-inspect"}, "es-api-key"),
    ({"sinks": "elasticsearch", "es-data-stream": "../_security/user/mallory"}, "es-data-stream"),
    # Unknown options fail, naming the closest known one; no prefix of ours is needed to be refused.
    ({"sinks": "fluentd", "fluentd-adress": "tcp://127.0.0.1:1"}, "fluentd-address"),
    ({"foo": "bar"}, "foo"),
]


def test_bad_input_never_ends_the_plugin(make_plugin: object) -> None:
    metrics = f"127.0.0.1:{free_port()}"
    plugin: Plugin = make_plugin(LOGDRIVER_METRICS_ADDRESS=metrics)  # type: ignore[operator]
    assert plugin.process is not None
    pid = plugin.process.pid
    steady = plugin.create("sh", "-c", STEADY, opts={"file-format": "text"})
    docker("start", steady)
    for opts, option in BAD_OPTS:
        container = plugin.create("echo", "never", opts=opts)
        result = docker("start", container, check=False)
        assert result.returncode != 0, opts
        assert repr(option) in result.stderr.decode(), result.stderr.decode()[:500]
    # A backtracking-prone regex is fine under RE2: it runs, and at once.
    regex = plugin.run("echo", "regex ok", opts={"labels-regex": "^(a+)+$"}, args=("--label", "a" * 5000 + "b=1"))
    # Hostile clients on the plugin socket and the metrics port.
    for body in (
        {"Info": {"ContainerID": steady}, "Config": {"Since": "2026-13-01T00:00:00Z"}},
        {"Info": {"ContainerID": steady}, "Config": {"Until": "0000-01-01T00:00:00Z"}},
        {"Info": {"ContainerID": "\x00" * 64}, "Config": {}},
        {"Info": {"ContainerID": "a" * 300}, "Config": {}},
    ):
        assert plugin_call(plugin, post("/LogDriver.ReadLogs", body)).startswith(b"HTTP/1.1 500")
    half = post("/LogDriver.StartLogging", {"File": "/run/x", "Info": {"ContainerID": steady}})[:-10]
    for _ in range(5):
        plugin_call(plugin, half, hang_up=True)
    assert plugin_call(plugin, half).startswith(b"HTTP/1.1 400")
    request = urllib.request.Request(f"http://{metrics}/health", method="HEAD")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
        assert response.read() == b""
    idle = [socket.create_connection(metrics.split(":"), timeout=5) for _ in range(40)]  # type: ignore[arg-type]
    for sock in idle:
        sock.close()
    # Still the same process, and nobody lost a line.
    assert docker("wait", steady, timeout=120).stdout.strip() == b"0"
    assert plugin.process.poll() is None
    assert plugin.process.pid == pid
    expected = b"".join(b"steady %d\n" % i for i in range(1, 3001))
    assert logs(steady) == (expected, b"")
    assert b"".join(plugin.file_dir.glob(f"{steady[:12]}-*.log").__next__().read_bytes().splitlines(True)) == expected
    assert logs(regex) == (b"regex ok\n", b"")
    control = plugin.run("sh", "-c", "seq 1 1000")
    assert logs(control) == (b"".join(b"%d\n" % i for i in range(1, 1001)), b"")
    with urllib.request.urlopen(f"http://{metrics}/metrics", timeout=10) as response:
        assert b"logdriver_active_fifos" in response.read()


def test_a_container_whose_file_cannot_be_written_costs_its_neighbours_nothing(plugin: Plugin) -> None:
    """Audit finding: a container whose file the sink could not open (a 240-character name)
    was retried, forever, ahead of every container writing files: a bystander got 205 of
    258,000 lines into its file, and its FIFO blocked after 4.7 s."""
    blocked = plugin.create("sh", "-c", "seq 1 20000")
    plugin.file_dir.mkdir(parents=True, exist_ok=True)
    name = docker("inspect", "-f", "{{.Name}}", blocked).stdout.decode().strip().lstrip("/")
    (plugin.file_dir / f"{blocked[:12]}-{name}.log").mkdir()  # a directory where its file goes
    long_name = "n" * 240  # the audit's case: now cut to 100 bytes in the file name
    named = docker("create", "--name", long_name, f"--log-driver={plugin.name}", IMAGE, "seq", "1", "5000")
    long_named = named.stdout.decode().strip()
    plugin.containers.append(long_named)
    bystander = plugin.create("sh", "-c", "seq 1 200000", opts={"file-format": "text"})
    for container in (blocked, long_named, bystander):
        docker("start", container)
    for container in (blocked, long_named, bystander):
        assert docker("wait", container, timeout=120).stdout.strip() == b"0"
    assert plugin.closing_counts(bystander, "file") == (200_000, 0)
    lines = next(plugin.file_dir.glob(f"{bystander[:12]}-*.log")).read_bytes().splitlines()
    assert lines == [b"%d" % i for i in range(1, 200_001)]
    assert len(plugin.file_records(long_named)) == 5000
    # The blocked container's lines went to the dead letters with the reason, counted.
    letters = next((plugin.state_dir / "deadletter" / "file").glob("*.jsonl")).read_bytes().splitlines()
    assert len(letters) == 20_000
    assert b"Is a directory" in letters[0]
    assert logs(blocked)[0] == b"".join(b"%d\n" % i for i in range(1, 20_001))  # docker logs has them


LINES = 5000
WRITER = f"for i in $(seq 1 {LINES}); do echo out $i; [ $((i % 500)) = 0 ] && sleep 0.2; done; true"


@pytest.mark.parametrize("buffer", ["memory", "disk"])
def test_a_container_that_exits_during_a_fluentd_outage_loses_nothing(
    make_plugin: object, tmp_path: Path, buffer: str
) -> None:
    plugin: Plugin = make_plugin()  # type: ignore[operator]
    port = free_port()  # nothing listens: Fluentd is down for the container's whole life
    opts = {"sinks": "fluentd", "fluentd-address": f"tcp://127.0.0.1:{port}", "buffer": buffer}
    container = plugin.run("sh", "-c", WRITER, opts=opts)  # default settings otherwise
    docker("rm", container)  # and it is gone before the destination returns
    plugin.containers.remove(container)
    if buffer == "disk":
        plugin.stop()  # the plugin restarts meanwhile: the spool carries the lines over
        plugin.start()
    time.sleep(10)
    with FluentPeer(tmp_path, port=port) as peer:
        events = peer.wait_for(LINES, timeout=120)
        # The pipeline that delivered: the container's own, or, after the restart, its spool's.
        finished = rf"sink fluentd for {container[:12]} finished: \d+ in, {LINES} delivered, 0 dropped"
        deadline = time.monotonic() + 60
        while not re.search(finished, plugin.log()):
            assert time.monotonic() < deadline, plugin.log()[-3000:]
            time.sleep(0.2)
        time.sleep(1)  # anything sent twice would have arrived by now
        events = peer.events()
    logged = Counter(str(e["record"]["log"]) for e in events)
    assert logged == Counter(f"out {i}" for i in range(1, LINES + 1))  # every line, once
    spools = plugin.state_dir / "spool" / "fluentd"
    assert not spools.exists() or not any(spools.iterdir())  # delivered spools are deleted


@pytest.mark.parametrize("buffer", ["memory", "disk"])
def test_a_container_that_exits_while_opensearch_is_down_loses_nothing(
    plugin: Plugin, tmp_path_factory: pytest.TempPathFactory, buffer: str
) -> None:
    port = free_port()
    opts = {"sinks": "elasticsearch", "es-url": f"http://127.0.0.1:{port}", "es-index": "exit", "buffer": buffer}
    container = plugin.run("sh", "-c", WRITER, opts=opts)
    docker("rm", container)
    plugin.containers.remove(container)
    node = SearchNode(tmp_path_factory.mktemp("opensearch-late"), port=port).start()  # 25-60 s later
    try:
        delivered, dropped = plugin.closing_counts(container, "elasticsearch", timeout=120)
        documents = node.documents("exit")
    finally:
        node.stop()
    assert (delivered, dropped) == (LINES, 0)
    assert Counter(str(d["message"]) for d in documents) == Counter(f"out {i}" for i in range(1, LINES + 1))
    assert not any((plugin.state_dir / "spool").rglob("*.spool"))  # delivered spools are deleted


def test_state_is_readable_by_root_only(plugin: Plugin) -> None:
    plugin.run("echo", "secret", opts={"fluentd-shared-key": "k"})
    for path in [plugin.state_dir / "fifos.json", *plugin.state_dir.rglob("*")]:
        if path.exists() and path.name != "plugin.log" and not path.is_socket():
            mode = os.stat(path).st_mode & 0o777
            assert mode & 0o077 == 0, f"{path} is {oct(mode)}"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs: the plugin's whole state directory on a disk that fills."""
    mount = tmp_path / "small"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], check=False)
    if result.returncode != 0:
        pytest.skip("needs root to mount a tmpfs")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_and_exhausted_descriptors_leave_the_plugin_up(make_plugin: object, small_disk: Path) -> None:
    state = small_disk / "state"
    plugin: Plugin = make_plugin(LOGDRIVER_STATE_DIR=str(state), LOGDRIVER_LOG_LEVEL="INFO")  # type: ignore[operator]
    assert plugin.process is not None
    pid = plugin.process.pid
    # 6 MB of lines into a 4 MiB disk: the store and the file sink both hit ENOSPC.
    filler = plugin.run(
        "sh",
        "-c",
        "head -c 6000000 /dev/zero | tr '\\0' x | fold -w 1000",
        # A short queue that gives up soon, so the filler's file lines are settled (dropped or
        # dead-lettered, counted) before space returns, instead of filling it again.
        opts={"file-overflow": "drop-newest", "file-buffer-max-entries": "200", "file-retry-max-time": "1s"},
    )
    assert plugin.process.poll() is None
    assert "No space left on device" in plugin.log()
    deadline = time.monotonic() + 120
    while f"sink file for {filler[:12]} finished" not in plugin.log():
        assert time.monotonic() < deadline, plugin.log()[-3000:]
        time.sleep(0.2)
    # Space returns: new containers log and read back completely.
    docker("rm", "-f", filler)
    plugin.containers.remove(filler)
    for path in sorted((state / "files").glob("*"), reverse=True):
        path.unlink()
    for _ in range(100):  # store GC of a removed container runs every 10 min: delete its segments
        segments = list((state / "store").glob("*/*.log"))
        if not segments:
            break
        for segment in segments:
            segment.unlink(missing_ok=True)
        time.sleep(0.1)
    after = plugin.run("sh", "-c", "seq 1 2000")
    assert logs(after) == (b"".join(b"%d\n" % i for i in range(1, 2001)), b"")
    # Descriptors run out: the plugin may only refuse new containers, then recovers.
    in_use = len(os.listdir(f"/proc/{pid}/fd"))
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (in_use + 6, 4096))  # room for two or three more FIFOs
    refused = 0
    started = []
    for _ in range(8):
        container = plugin.create("sh", "-c", "sleep 30")
        result = docker("start", container, check=False)
        if result.returncode != 0:
            refused += 1
            break
        started.append(container)
    assert refused > 0
    assert plugin.process.poll() is None
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (4096, 4096))
    assert started  # containers started before the limit kept their logging
    docker("rm", "-f", *started, check=False)
    final = plugin.run("sh", "-c", "seq 1 500")
    assert logs(final) == (b"".join(b"%d\n" % i for i in range(1, 501)), b""), plugin.log()[-4000:]
    assert plugin.process.pid == pid
