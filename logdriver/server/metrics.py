"""Prometheus metrics and a health endpoint, served over HTTP (h11) on a TCP address.

Values are read from the Driver when scraped, so the hot path keeps plain
integer counters and pays nothing for metrics. ``/health`` answers 503 when a
sink has been failing to deliver for longer than ``failing_after`` seconds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import h11
import orjson
import trio
from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from logdriver._native import PROCESSING_COUNTERS
from logdriver.config.units import listen_address
from logdriver.delivery.pipeline_statistics import PipelineStatistics
from logdriver.server.driver import Driver, PluginStatistics
from logdriver.server.http import Limits, Request, guarded, response_bytes, serve_h11

log = logging.getLogger("logdriver.metrics")

# Any local user can reach this port: few connections, short timeouts, tiny requests.
# A new connection at the cap evicts the oldest: a local client holding connections open
# cannot keep a health probe out (a probe sends its request at once and is done in ms).
LIMITS: Final = Limits(
    max_connections=32, request_timeout=5.0, idle_timeout=10.0, max_body=64 << 10, max_head=16 << 10, evict_oldest=True
)
BIND_RETRY_MAX = 30.0


Values = Callable[[PluginStatistics], Iterable[tuple[Sequence[str], float]]]


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One metric family: its name, kind, help and labels, and where its values come from."""

    name: str
    kind: str  # counter or gauge
    help: str
    labels: tuple[str, ...]
    values: Values


def _one(read: Callable[[PluginStatistics], float]) -> Values:
    return lambda stats: [((), read(stats))]


def _per_sink(read: Callable[[PipelineStatistics], float]) -> Values:
    return lambda stats: [((name,), read(snap)) for name, snap in stats.sinks.items()]


def _per_sink_and(label_values: Mapping[str, Callable[[PipelineStatistics], float]]) -> Values:
    return lambda stats: [
        ((name, label), read(snap)) for name, snap in stats.sinks.items() for label, read in label_values.items()
    ]


# The processing steps' counters (the `outcome` label), from the steps' own tables.
PROCESSING_OUTCOMES: Final = tuple(name for name, _ in PROCESSING_COUNTERS)


def _processing_totals(stats: PluginStatistics) -> Iterable[tuple[Sequence[str], float]]:
    for outcome in PROCESSING_OUTCOMES:
        yield (outcome,), stats.fifos.processing.get(outcome, 0)


def _processing_per_container(stats: PluginStatistics) -> Iterable[tuple[Sequence[str], float]]:
    """A container's series are its own steps' counters (what it configured), zeros too."""
    for short_id, name, fifo in stats.processing:
        for outcome, value in sorted(fifo.processing.items(), key=lambda item: _ORDER[item[0]]):
            yield (short_id, name, outcome), value


_ORDER: Final = {name: index for index, name in enumerate(PROCESSING_OUTCOMES)}


def _budgets(stats: PluginStatistics) -> Iterable[tuple[Sequence[str], float]]:
    for budget in stats.budgets:
        yield (budget.name, "used"), budget.used
        yield (budget.name, "limit"), budget.limit


# Every metric the plugin exports (besides the process_* ones), in the order scraped; the
# reference in docs/reference.md is generated from this table.
METRICS: Final = (
    MetricSpec(
        "logdriver_sink_lines",
        "counter",
        "Log lines per sink and outcome",
        ("sink", "outcome"),
        _per_sink_and(
            {
                "in": lambda s: s.totals.lines_in,
                "delivered": lambda s: s.totals.lines_out,
                "dropped": lambda s: s.totals.dropped,
                "retried": lambda s: s.totals.retried,
                "dead_lettered": lambda s: s.totals.dead_lettered,
                "spilled": lambda s: s.totals.spilled,
            }
        ),
    ),
    MetricSpec(
        "logdriver_sink_bytes",
        "counter",
        "Line bytes per sink and direction",
        ("sink", "direction"),
        _per_sink_and({"in": lambda s: s.totals.bytes_in, "out": lambda s: s.totals.bytes_out}),
    ),
    MetricSpec(
        "logdriver_sink_send_failures",
        "counter",
        "Failed sends per sink",
        ("sink",),
        _per_sink(lambda s: s.totals.send_failures),
    ),
    MetricSpec(
        "logdriver_sink_requests",
        "counter",
        "Requests sent per sink (first attempts; one carries many containers)",
        ("sink",),
        _per_sink(lambda s: s.requests),
    ),
    MetricSpec(
        "logdriver_sink_request_lines",
        "counter",
        "Lines in those requests (divide by requests: lines per request)",
        ("sink",),
        _per_sink(lambda s: s.request_lines),
    ),
    MetricSpec(
        "logdriver_buffer_lines", "gauge", "Lines queued per sink", ("sink",), _per_sink(lambda s: s.buffer_lines)
    ),
    MetricSpec(
        "logdriver_buffer_bytes", "gauge", "Line bytes queued per sink", ("sink",), _per_sink(lambda s: s.buffer_bytes)
    ),
    MetricSpec(
        "logdriver_spool_bytes",
        "gauge",
        "Bytes on disk per sink: buffer=disk spools and buffer=hybrid spills",
        ("sink",),
        _per_sink(lambda s: s.spool_bytes),
    ),
    MetricSpec(
        "logdriver_oldest_queued_seconds",
        "gauge",
        "Age of the oldest queued line",
        ("sink",),
        _per_sink(lambda s: s.oldest_age),
    ),
    MetricSpec(
        "logdriver_sink_failing_seconds",
        "gauge",
        "How long sends have been failing",
        ("sink",),
        _per_sink(lambda s: s.failing_for),
    ),
    MetricSpec(
        "logdriver_sink_events",
        "counter",
        "Sink-specific events (see each sink's docs)",
        ("sink", "event"),
        lambda stats: [
            ((name, event), value)
            for name, events in stats.sink_events.items()
            for event, value in sorted(events.items())
        ],
    ),
    MetricSpec("logdriver_fifo_entries", "counter", "Entries read from FIFOs", (), _one(lambda s: s.fifos.entries)),
    MetricSpec("logdriver_fifo_bytes", "counter", "Bytes read from FIFOs", (), _one(lambda s: s.fifos.bytes)),
    MetricSpec("logdriver_decode_errors", "counter", "Undecodable entries", (), _one(lambda s: s.fifos.decode_errors)),
    MetricSpec(
        "logdriver_corrupt_frames",
        "counter",
        "Corrupt frame headers (resynced)",
        (),
        _one(lambda s: s.fifos.corrupt_frames),
    ),
    MetricSpec("logdriver_active_fifos", "gauge", "FIFOs being read", (), _one(lambda s: s.active_fifos)),
    MetricSpec(
        "logdriver_active_reads", "gauge", "docker logs streams being served", (), _one(lambda s: s.active_reads)
    ),
    MetricSpec("logdriver_store_bytes", "gauge", "Size of the docker logs store", (), _one(lambda s: s.store.bytes)),
    MetricSpec(
        "logdriver_store_write_errors",
        "counter",
        "FIFO reads the docker logs store could not write",
        (),
        _one(lambda s: s.fifos.store_errors),
    ),
    MetricSpec(
        "logdriver_partial_lines_cut_by_budget",
        "counter",
        "Open partial lines sent as pieces because the memory budget was full",
        (),
        _one(lambda s: s.fifos.partial_cut_by_budget),
    ),
    MetricSpec(
        "logdriver_processing_events",
        "counter",
        "Multiline and parse=json outcomes, all containers (multiline_lines / multiline_events: lines per event)",
        ("outcome",),
        _processing_totals,
    ),
    MetricSpec(
        "logdriver_container_processing_events",
        "counter",
        "The same per running container that sets multiline or parse (series end with the container)",
        ("container_id", "container_name", "outcome"),
        _processing_per_container,
    ),
    MetricSpec(
        "logdriver_fifo_failures",
        "counter",
        "FIFOs whose reading ended on an unexpected error",
        (),
        _one(lambda s: s.fifo_failures),
    ),
    MetricSpec(
        "logdriver_pipeline_failures",
        "counter",
        "Senders (and their pipelines) ended by an unexpected error",
        (),
        _one(lambda s: s.deliveries.failures),
    ),
    MetricSpec(
        "logdriver_pipelines_draining",
        "gauge",
        "Pipelines of stopped containers still delivering queued lines",
        (),
        _one(lambda s: s.deliveries.draining),
    ),
    MetricSpec(
        "logdriver_sink_clients",
        "gauge",
        "Destination clients open (connection pools, producers): one per sink and destination in use",
        ("sink",),
        lambda stats: [((sink,), count) for sink, count in sorted(stats.deliveries.clients.open.items())],
    ),
    MetricSpec("logdriver_budget_bytes", "gauge", "Plugin-wide budgets: used and limit", ("budget", "kind"), _budgets),
    MetricSpec(
        "logdriver_budget_refusals",
        "counter",
        "Times a queue was full because a budget was spent",
        ("budget",),
        lambda stats: [((b.name,), b.refusals) for b in stats.budgets],
    ),
    MetricSpec(
        "logdriver_dead_letters_lost",
        "counter",
        "Rejected lines the dead-letter file could not take",
        ("sink",),
        lambda stats: [((name,), lost) for name, lost in stats.deliveries.dead_letters_lost.items()],
    ),
    MetricSpec(
        "logdriver_policy_generation",
        "gauge",
        "Operator policies taken since the plugin started (0: none); see policy-status.json",
        (),
        _one(lambda s: s.policy.generation if s.policy else 0),
    ),
    MetricSpec(
        "logdriver_policy_loaded_timestamp_seconds",
        "gauge",
        "When the policy in force was taken (Unix time; 0: none)",
        (),
        _one(lambda s: s.policy.loaded_at if s.policy else 0),
    ),
    MetricSpec(
        "logdriver_policy_load_seconds",
        "gauge",
        "How long parsing, validating and switching every running container to it took",
        (),
        _one(lambda s: s.policy.load_seconds if s.policy else 0),
    ),
    MetricSpec(
        "logdriver_policy_rejected",
        "counter",
        "Policies refused (invalid, an unsafe file, or one a running container cannot take); the last one is kept",
        (),
        _one(lambda s: s.policy.rejected if s.policy else 0),
    ),
    MetricSpec(
        "logdriver_policy_rule_matches",
        "counter",
        "Containers a rule of the policy in force selected, at their start or when the policy came",
        ("rule",),
        lambda stats: [((rule,), count) for rule, count in (stats.policy.rule_matches if stats.policy else {}).items()],
    ),
    MetricSpec(
        "logdriver_policy_rule_containers",
        "gauge",
        "Running containers each rule of the policy in force selects",
        ("rule",),
        lambda stats: [((rule,), count) for rule, count in stats.rule_containers.items()],
    ),
)


class DriverCollector(Collector):
    """Builds every family in ``METRICS`` from one ``Driver.statistics()`` record per scrape."""

    def __init__(self, driver: Driver) -> None:
        self.driver = driver

    def collect(self) -> Iterator[Metric]:
        stats = self.driver.statistics()
        for spec in METRICS:
            family_type = CounterMetricFamily if spec.kind == "counter" else GaugeMetricFamily
            family = family_type(spec.name, spec.help, labels=list(spec.labels))
            for labels, value in spec.values(stats):
                family.add_metric(list(labels), value)
            yield family


def health(driver: Driver, failing_after: float) -> tuple[int, bytes]:
    stats = driver.statistics()
    # Only the operator's destinations decide the status: a container that names a dead
    # endpoint of its own must not get the plugin restarted by a liveness probe.
    failing = {
        name: round(s.operator_failing_for, 1)
        for name, s in stats.sinks.items()
        if s.operator_failing_for > failing_after
    }
    elsewhere = {
        name: round(s.failing_for, 1)
        for name, s in stats.sinks.items()
        if s.failing_for > failing_after and name not in failing
    }
    body = {
        "status": "unhealthy" if failing else "ok",
        "failing_sinks_seconds": failing,
        "failing_container_destinations_seconds": elsewhere,
        "active_fifos": stats.active_fifos,
        "draining_pipelines": stats.deliveries.draining,
        **{f"{b.name}_budget_used": round(b.used / b.limit, 3) for b in stats.budgets},
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
