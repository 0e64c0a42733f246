"""Prometheus metrics and a health endpoint, served over HTTP (h11) on a TCP address.

Values are read from the Driver when scraped, so the hot path keeps plain
integer counters and pays nothing for metrics. ``/health`` answers 503 when a
sink has been failing to deliver for longer than ``failing_after`` seconds.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import h11
import orjson
import trio
from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from logdriver.config.units import listen_address
from logdriver.server.driver import Driver
from logdriver.server.http import Limits, Request, guarded, response_bytes, serve_h11

log = logging.getLogger("logdriver.metrics")

# Any local user can reach this port: few connections, short timeouts, tiny requests.
# A new connection at the cap evicts the oldest: a local client holding connections open
# cannot keep a health probe out (a probe sends its request at once and is done in ms).
LIMITS = Limits(
    max_connections=32, request_timeout=5.0, idle_timeout=10.0, max_body=64 << 10, max_head=16 << 10, evict_oldest=True
)
BIND_RETRY_MAX = 30.0


class DriverCollector(Collector):
    def __init__(self, driver: Driver) -> None:
        self.driver = driver

    def collect(self) -> Iterator[Metric]:
        sinks = self.driver.sink_statistics()
        lines = CounterMetricFamily(
            "logdriver_sink_lines", "Log lines per sink and outcome", labels=["sink", "outcome"]
        )
        size = CounterMetricFamily(
            "logdriver_sink_bytes", "Line bytes per sink and direction", labels=["sink", "direction"]
        )
        failures = CounterMetricFamily("logdriver_sink_send_failures", "Failed sends per sink", labels=["sink"])
        requests = CounterMetricFamily(
            "logdriver_sink_requests",
            "Requests sent per sink (first attempts; one carries many containers)",
            labels=["sink"],
        )
        request_lines = CounterMetricFamily(
            "logdriver_sink_request_lines",
            "Lines in those requests (divide by requests: lines per request)",
            labels=["sink"],
        )
        buffer_lines = GaugeMetricFamily("logdriver_buffer_lines", "Lines queued per sink", labels=["sink"])
        buffer_bytes = GaugeMetricFamily("logdriver_buffer_bytes", "Line bytes queued per sink", labels=["sink"])
        spool_bytes = GaugeMetricFamily("logdriver_spool_bytes", "Bytes in disk spools per sink", labels=["sink"])
        oldest = GaugeMetricFamily("logdriver_oldest_queued_seconds", "Age of the oldest queued line", labels=["sink"])
        failing = GaugeMetricFamily(
            "logdriver_sink_failing_seconds", "How long sends have been failing", labels=["sink"]
        )
        for name, snap in sorted(sinks.items()):
            t = snap.totals
            for outcome, value in (
                ("in", t.lines_in),
                ("delivered", t.lines_out),
                ("dropped", t.dropped),
                ("retried", t.retried),
                ("dead_lettered", t.dead_lettered),
            ):
                lines.add_metric([name, outcome], value)
            size.add_metric([name, "in"], t.bytes_in)
            size.add_metric([name, "out"], t.bytes_out)
            failures.add_metric([name], t.send_failures)
            requests.add_metric([name], snap.requests)
            request_lines.add_metric([name], snap.request_lines)
            buffer_lines.add_metric([name], snap.buffer_lines)
            buffer_bytes.add_metric([name], snap.buffer_bytes)
            spool_bytes.add_metric([name], snap.spool_bytes)
            oldest.add_metric([name], snap.oldest_age)
            failing.add_metric([name], snap.failing_for)
        yield from (
            lines,
            size,
            failures,
            requests,
            request_lines,
            buffer_lines,
            buffer_bytes,
            spool_bytes,
            oldest,
            failing,
        )
        events = CounterMetricFamily(
            "logdriver_sink_events", "Sink-specific events (see each sink's docs)", labels=["sink", "event"]
        )
        for name, sink in sorted(self.driver.sinks.items()):
            for event, value in sorted(sink.counters().items()):
                events.add_metric([name, event], value)
        yield events
        fifo = self.driver.fifo_statistics()
        yield CounterMetricFamily("logdriver_fifo_entries", "Entries read from FIFOs", value=fifo.entries)
        yield CounterMetricFamily("logdriver_fifo_bytes", "Bytes read from FIFOs", value=fifo.bytes)
        yield CounterMetricFamily("logdriver_decode_errors", "Undecodable entries", value=fifo.decode_errors)
        yield CounterMetricFamily(
            "logdriver_corrupt_frames", "Corrupt frame headers (resynced)", value=fifo.corrupt_frames
        )
        yield GaugeMetricFamily("logdriver_active_fifos", "FIFOs being read", value=self.driver.active_fifos)
        yield GaugeMetricFamily(
            "logdriver_active_reads", "docker logs streams being served", value=self.driver.active_reads
        )
        yield GaugeMetricFamily(
            "logdriver_store_bytes", "Size of the docker logs store", value=self.driver.store.total_bytes
        )
        yield CounterMetricFamily(
            "logdriver_store_write_errors", "FIFO reads the docker logs store could not write", value=fifo.store_errors
        )
        yield CounterMetricFamily(
            "logdriver_partial_lines_cut_by_budget",
            "Open partial lines sent as pieces because the memory budget was full",
            value=fifo.partial_cut_by_budget,
        )
        yield CounterMetricFamily(
            "logdriver_fifo_failures", "FIFO tasks ended by an unexpected error", value=self.driver.fifo_failures
        )
        deliveries = self.driver.deliveries
        yield CounterMetricFamily(
            "logdriver_pipeline_failures", "Sink pipelines ended by an unexpected error", value=deliveries.failures
        )
        yield GaugeMetricFamily(
            "logdriver_pipelines_draining",
            "Pipelines of stopped containers still delivering queued lines",
            value=deliveries.draining,
        )
        budgets = GaugeMetricFamily(
            "logdriver_budget_bytes", "Plugin-wide budgets: used and limit", labels=["budget", "kind"]
        )
        refusals = CounterMetricFamily(
            "logdriver_budget_refusals", "Times a queue was full because a budget was spent", labels=["budget"]
        )
        for budget in (self.driver.memory, self.driver.disk):
            budgets.add_metric([budget.name, "used"], budget.used)
            budgets.add_metric([budget.name, "limit"], budget.limit)
            refusals.add_metric([budget.name], budget.refusals)
        yield budgets
        yield refusals
        lost = CounterMetricFamily(
            "logdriver_dead_letters_lost", "Rejected lines the dead-letter file could not take", labels=["sink"]
        )
        for name, letters in sorted(deliveries.dead_letters.items()):
            lost.add_metric([name], letters.lost)
        yield lost


def health(driver: Driver, failing_after: float) -> tuple[int, bytes]:
    failing = {
        name: round(s.failing_for, 1) for name, s in driver.sink_statistics().items() if s.failing_for > failing_after
    }
    body = {
        "status": "unhealthy" if failing else "ok",
        "failing_sinks_seconds": failing,
        "active_fifos": driver.active_fifos,
        "draining_pipelines": driver.deliveries.draining,
        "memory_budget_used": round(driver.memory.used / driver.memory.limit, 3),
        "disk_budget_used": round(driver.disk.used / driver.disk.limit, 3),
    }
    return (503 if failing else 200), orjson.dumps(body)


async def serve_metrics(
    address: str,
    driver: Driver,
    failing_after: float,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``/metrics`` and ``/health`` on ``host:port`` until cancelled.

    Started at once: metrics never hold up logging. A port that cannot be bound (another
    process holds it, an address not on this host) is logged and tried again with
    backoff, up to every ``BIND_RETRY_MAX`` seconds.
    """
    host, port = listen_address(address)
    task_status.started()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DriverCollector(driver))
    # process_start_time_seconds (restarts), CPU seconds, resident memory, open descriptors.
    ProcessCollector(registry=registry)
    delay = 1.0
    while True:
        try:
            listeners = await trio.open_tcp_listeners(port, host=host)
            break
        except OSError as exc:
            log.error(
                "metrics port %s cannot be bound (%s); logging goes on; trying again in %g s",
                address,
                exc.strerror or exc,
                delay,
            )
            await trio.sleep(delay)
            delay = min(delay * 2, BIND_RETRY_MAX)
    log.info("metrics on http://%s/metrics, health on /health", address)

    async def respond(stream: trio.abc.Stream, conn: h11.Connection, request: Request) -> None:
        path = request.target.split("?", 1)[0]
        headers = [("Connection", "close")]
        if request.method not in ("GET", "HEAD"):
            status, body, kind = 405, b"method not allowed\n", "text/plain"
            headers.append(("Allow", "GET, HEAD"))
        elif path == "/metrics":
            status, body, kind = 200, generate_latest(registry), "text/plain; version=0.0.4"
        elif path == "/health":
            status, body = health(driver, failing_after)
            kind = "application/json"
        else:
            status, body, kind = 404, b"not found\n", "text/plain"
        headers.append(("Content-Type", kind))
        await stream.send_all(response_bytes(conn, status, headers, body, head_only=request.method == "HEAD"))

    async def handle(stream: trio.abc.Stream) -> None:
        await serve_h11("metrics port", stream, LIMITS, respond)

    await trio.serve_listeners(guarded("metrics port", handle, LIMITS), listeners)
