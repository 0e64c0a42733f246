"""The Loki drop-in on the real engines, into real VictoriaLogs (it takes Loki's push API):
a container keeps the Loki driver's log-opts, changes only ``--log-driver``, and ships.

Each of the Loki driver's known failures is a test here: Loki down and ``docker stop``,
``kill`` and ``rm`` never wait (grafana/loki#2361, #4082, moby#42705); 40 KB lines arrive
whole (#12262); ``docker logs`` and ``docker logs -f`` are served from the plugin's store
(#4447) and survive a plugin restart, as in an upgrade (#2439); short-lived containers
leave no pipeline, client, descriptor or memory behind (#17718: 200 here, on each engine,
as a 2-core CI machine churns them in about a minute; ``make bench`` churns 1,000); memory stays
within the plugin's budget while Loki is down, what does not fit waiting on disk (#3172)."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..loki_peer import VictoriaLogsPeer
from ..ports import free_port
from .churn import fds_and_rss, metric_sum, peak_rss, start_short_lived
from .conftest import Plugin, docker, logs

SCRIPT = (
    'seq 1 2000; for i in 1 2 3; do echo "err $i" >&2; done; '
    "head -c 40000 /dev/zero | tr '\\0' x; echo; printf 'no newline at the end'"
)


@pytest.fixture
def victoria(tmp_path: Path) -> Iterator[VictoriaLogsPeer]:
    peer = VictoriaLogsPeer(tmp_path / "victorialogs").start()
    yield peer
    peer.stop()


def test_the_loki_drivers_log_opts_ship_unchanged(plugin: Plugin, victoria: VictoriaLogsPeer) -> None:
    job = f"web-{uuid.uuid4().hex[:8]}"
    opts = {  # as a Loki driver user writes them: no sinks, Loki's own names
        "loki-url": victoria.push_url,
        "loki-external-labels": f"job={job},container_name={{{{.Name}}}}",
        "loki-batch-size": "400000",
        "loki-retries": "5",
        "loki-timeout": "5s",
        "max-size": "-1",
        "labels": "tier",
    }
    args = ("--label", "tier=front", "--label", "com.docker.compose.project=shop")
    container = plugin.run("sh", "-c", SCRIPT, opts=opts, args=args)
    delivered, dropped = plugin.closing_counts(container, "loki")
    assert (delivered, dropped) == (2005, 0)
    query = f'_stream:{{job="{job}"}}'
    assert victoria.wait_for(2005, query) == 2005
    rows = victoria.query(f"{query} | sort by (_time)")
    lines = [row["_msg"] for row in rows]
    assert [line for line in lines if line.isdigit()] == [str(n) for n in range(1, 2001)]
    assert "x" * 40000 in lines  # a 40 KB line, rejoined from Docker's 16 KiB pieces
    assert "no newline at the end" in lines
    name = docker("inspect", "-f", "{{.Name}}", container).stdout.decode().strip().removeprefix("/")
    stream = rows[0]["_stream"]
    for label in (f'container_name="{name}"', 'compose_project="shop"', 'tier="front"', "host="):
        assert label in stream, (label, stream)
    assert {row["container_id"] for row in rows} == {container}
    assert {row["stream"] for row in rows} == {"stdout", "stderr"}
    # docker logs works, from the plugin's own store (the Loki driver's local file).
    stdout, stderr = logs(container)
    assert stdout.decode().split("\n")[:3] == ["1", "2", "3"]
    assert stderr.decode().splitlines() == ["err 1", "err 2", "err 3"]


def test_loki_down_never_holds_stop_kill_or_rm(plugin: Plugin) -> None:
    dead = f"http://127.0.0.1:{free_port()}/loki/api/v1/push"  # nothing listens: every push fails
    opts = {"loki-url": dead, "loki-min-backoff": "100ms"}
    names = []
    for verb in ("stop", "kill", "rm"):
        container = plugin.create("sh", "-c", "seq 1 20000; sleep 600", opts=opts)
        docker("start", container)
        names.append((verb, container))
    time.sleep(3)  # the lines are read and queued, their pushes failing
    for verb, container in names:
        command = {"stop": ("stop", "-t", "1"), "kill": ("kill",), "rm": ("rm", "-f")}[verb]
        started = time.monotonic()
        docker(*command, container, timeout=60)
        took = time.monotonic() - started
        assert took < 10, f"docker {verb} took {took:.1f}s with Loki down"
    stopped = names[0][1]
    assert docker("logs", "--tail", "1", stopped).stdout.strip() == b"20000"  # served while Loki is down


def test_docker_logs_follow_keeps_going_and_survives_a_plugin_restart(
    make_plugin: object, victoria: VictoriaLogsPeer
) -> None:
    plugin: Plugin = make_plugin()  # type: ignore[operator]
    opts = {"loki-url": victoria.push_url}
    container = plugin.create("sh", "-c", "for i in $(seq 1 40); do echo tick $i; sleep 1; done", opts=opts)
    docker("start", container)
    with subprocess.Popen(["docker", "logs", "-f", container], stdout=subprocess.PIPE) as follow:
        assert follow.stdout is not None
        seen = [follow.stdout.readline().strip() for _ in range(35)]  # past the Loki driver's ~30 s
        assert seen[-1] == b"tick 35"
        follow.wait(timeout=60)
    assert docker("wait", container, timeout=60).stdout.strip() == b"0"
    plugin.stop()  # an upgrade: the plugin goes and comes back
    plugin.start()
    stdout, _ = logs(container)
    assert stdout.decode().splitlines()[-1] == "tick 40"


SHORT_LIVED = 200


def test_short_lived_containers_leave_nothing_behind(make_plugin: object, victoria: VictoriaLogsPeer) -> None:
    metrics = f"127.0.0.1:{free_port()}"
    plugin: Plugin = make_plugin(LOGDRIVER_METRICS_ADDRESS=metrics)  # type: ignore[operator]
    assert plugin.process is not None
    socket_path = os.environ["DOCKER_HOST"].removeprefix("unix://")
    opts = {"loki-url": victoria.push_url, "loki-external-labels": "job=short"}
    start_short_lived(socket_path, plugin.name, opts, 20)  # warm: the first client, imports, caches
    assert victoria.wait_for(20, '_stream:{job="short"}') == 20
    fds, rss = fds_and_rss(plugin.process.pid)
    start_short_lived(socket_path, plugin.name, opts, SHORT_LIVED)
    assert victoria.wait_for(20 + SHORT_LIVED, '_stream:{job="short"}', timeout=180) == 20 + SHORT_LIVED
    deadline = time.monotonic() + 60
    while (metric_sum(metrics, "logdriver_sink_clients"), metric_sum(metrics, "logdriver_pipelines_draining")) != (
        0,
        0,
    ):
        assert time.monotonic() < deadline, "pipelines or clients left open"
        time.sleep(0.2)
    after_fds, after_rss = fds_and_rss(plugin.process.pid)
    assert after_fds <= fds + 4, (fds, after_fds)  # no FIFO, socket or spool file left open
    assert after_rss - rss < 16 << 20, (rss, after_rss)  # nothing kept per container: < 80 KiB each (#17718)


def test_memory_stays_within_the_budget_while_loki_is_down(make_plugin: object, victoria: VictoriaLogsPeer) -> None:
    """grafana/loki#3172: the Loki driver's memory grew with every line while Loki was down."""
    plugin: Plugin = make_plugin(LOGDRIVER_MEMORY_MAX_BYTES="16Mi")  # type: ignore[operator]
    assert plugin.process is not None
    pid = plugin.process.pid
    victoria.stop()
    opts = {"loki-url": victoria.push_url, "loki-min-backoff": "200ms", "loki-max-backoff": "1s"}
    _, before = fds_and_rss(pid)
    # 103 MB of 86-byte lines: six times the budget, which spills to disk (buffer=hybrid).
    line = "a line of about a hundred bytes, written while Loki is down, padded out to its length"
    script = f"yes '{line}' | head -n 1200000"
    container = plugin.run("sh", "-c", script, opts=opts)
    peak = peak_rss(pid)
    assert peak - before < 160 << 20, f"peak RSS {peak >> 20} MiB, {before >> 20} MiB before"
    victoria.start()
    delivered, dropped = plugin.closing_counts(container, "loki", timeout=300)
    assert dropped == 0
    assert delivered == 1_200_000
