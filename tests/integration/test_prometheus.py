"""The alerting rules and the Grafana dashboard against a real Prometheus (Debian's package)
scraping a live logdriver that carries traffic: every metric they name exists, and every
expression returns data or is expected to be empty on this host, for the reason given."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from ..ports import free_port
from .conftest import ROOT, Plugin, docker

pytestmark = pytest.mark.slow

RULES = ROOT / "ops" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "ops" / "grafana" / "logdriver.json"

# Alerts that stay quiet on this host, and why. Their series must still exist.
QUIET = {
    "LogdriverDown": "the plugin answers every scrape",
    "LogdriverRestarting": "it started once",
    "LogdriverSinkFailing": "the dead destination has failed for seconds, not 5 minutes",
    "LogdriverDeadLettersGrowing": "nothing is refused for good (retries go on)",
    "LogdriverDeadLettersLost": "the dead letters have room",
    "LogdriverBudgetNearFull": "the queues are tiny next to 256 MiB",
    "LogdriverQueueStale": "the oldest queued line is seconds old",
    "LogdriverSpoolGrowing": "no container uses buffer=disk",
    "LogdriverInternalFailures": "nothing failed unexpectedly",
    "LogdriverCorruptInput": "dockerd writes well-formed frames",
    "LogdriverStoreWriteErrors": "the disk has room",
    "LogdriverPolicyRefused": "no operator policy was offered",
}
# Every dashboard query returns data here: a counter or gauge with nothing to count
# (dead letters, disk spools, decode errors) is still a series, at 0.


class Prometheus:
    def __init__(self, base: Path, target: str) -> None:
        self.port = free_port()
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULES)],
            "scrape_configs": [{"job_name": "logdriver", "static_configs": [{"targets": [target]}]}],
        }
        (base / "prometheus.yml").write_text(yaml.safe_dump(config))
        binary = shutil.which("prometheus") or "/usr/bin/prometheus"
        self.log = open(base / "prometheus.log", "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [
                binary,
                f"--config.file={base / 'prometheus.yml'}",
                f"--storage.tsdb.path={base / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def query(self, expr: str) -> list[dict[str, Any]]:
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.load(response)
        assert body["status"] == "success", body
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "prometheus exited"
            try:
                if self.query('up{job="logdriver"} == 1'):
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise TimeoutError("prometheus did not scrape logdriver")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)
        self.log.close()


@pytest.fixture
def prometheus(make_plugin: Any, tmp_path: Path) -> Iterator[Prometheus]:
    if shutil.which("prometheus") is None:
        pytest.fail("prometheus is missing: make test installs Debian's package")
    metrics = f"127.0.0.1:{free_port()}"
    plugin: Plugin = make_plugin(LOGDRIVER_METRICS_ADDRESS=metrics)
    dead = f"127.0.0.1:{free_port()}"
    server = Prometheus(tmp_path, metrics)
    follow = None
    try:
        server.wait_ready()  # first, so that the drops below are increases it sees
        # Traffic: one container delivered to the file sink, one whose Fluentd server is
        # down with a 100-line queue (retries, then drops), both still running, and a
        # docker logs -f.
        plugin.run("sh", "-c", "seq 1 5000", opts={"sinks": "file"})
        running = plugin.create("sh", "-c", "seq 1 3000; sleep 120", opts={"sinks": "file"})
        stalled = plugin.create(
            "sh",
            "-c",
            "seq 1 3000; sleep 120",
            opts={
                "sinks": "fluentd",
                "fluentd-address": dead,
                "buffer": "memory",  # a full memory queue drops (the default would spill first)
                "buffer-max-entries": "100",
                "batch-max-wait": "0s",
            },
        )
        docker("start", running, stalled)
        follow = subprocess.Popen(["docker", "logs", "-f", running], stdout=subprocess.DEVNULL)
        time.sleep(8)  # enough scrapes for rate() and increase() over the last minute
        yield server
    finally:
        if follow is not None:
            follow.kill()
            follow.wait()
        server.stop()


def comparison_free(expr: str) -> str:
    """The part of an alert expression before its last top-level threshold: the signal."""
    match = list(re.finditer(r"\s(==|>=|>)\s", expr))
    return expr[: match[-1].start()] if match else expr


def test_every_alert_and_dashboard_query_returns_data(prometheus: Prometheus) -> None:
    rules = [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]
    assert {rule["alert"] for rule in rules} - set(QUIET) == {"LogdriverLinesDropped"}
    for rule in rules:
        expr = " ".join(rule["expr"].split())
        assert prometheus.query(comparison_free(expr)), f"{rule['alert']}: no series for {comparison_free(expr)}"
        firing = prometheus.query(expr)
        if rule["alert"] in QUIET:
            assert not firing, f"{rule['alert']} fired: {firing}"
        else:
            assert firing, f"{rule['alert']} should fire: a dead destination drops lines"

    dashboard = json.loads(DASHBOARD.read_text())
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr = target["expr"].replace("$__rate_interval", "1m").replace("$instance", ".*")
            assert prometheus.query(expr), f"panel {panel['title']!r}: no data for {expr}"
    by_title = {panel["title"]: panel for panel in dashboard["panels"]}
    delivered = by_title["Lines delivered per sink"]["targets"][0]["expr"].replace("$__rate_interval", "1m")
    assert {r["metric"]["sink"] for r in prometheus.query(delivered.replace("$instance", ".*"))} >= {"file"}
