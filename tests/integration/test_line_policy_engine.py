"""The line policy on the real engines (issue 32): a container writing 5,000 lines a second
against ``rate-limit=1000/s`` with an exempt pattern, and keep/drop, through the file sink,
``docker logs`` still showing every line the container wrote (the store is before those
steps); redaction in the file sink, in Fluentd (the real FluentServer) and in ``docker logs``."""

from __future__ import annotations

import re
from pathlib import Path

from ..fluent_peer import FluentPeer
from .conftest import Plugin, logs

MARKER = re.compile(r"^logdriver: rate limit: ([\d,]+) lines \(([\d,]+) bytes\) dropped in the last \d+ s$")

# 2,500 lines every half second, 25 of them audit lines, six times: 5,000 lines a second.
BURSTS = (
    "for s in 1 2 3 4 5 6; do seq $((s * 10000 + 1)) $((s * 10000 + 2475)); "
    "seq $((s * 100 + 1)) $((s * 100 + 25)) | sed 's/^/AUDIT /'; sleep 0.5; done"
)


def test_a_rate_limit_marks_what_it_drops_and_passes_what_is_exempt(plugin: Plugin) -> None:
    opts = {"rate-limit": "1000/s", "rate-limit-exempt": "^AUDIT "}
    container = plugin.run("sh", "-c", BURSTS, opts=opts)
    plugin.closing_counts(container, "file")
    records = plugin.file_records(container)
    markers = [str(r["message"]) for r in records if r["stream"] == "logdriver"]
    lines = [str(r["message"]) for r in records if r["stream"] == "stdout"]
    dropped = 0
    for marker in markers:
        found = MARKER.match(marker)
        assert found, marker
        dropped += int(found[1].replace(",", ""))
    assert len(lines) + dropped == 6 * 2500  # every line written: shipped, or counted in a marker
    assert sum(line.startswith("AUDIT ") for line in lines) == 6 * 25  # exempt: every one passes
    assert 1000 <= len(lines) - 150 <= 1000 + 1000 * 5, len(lines)  # the burst, then 1,000 a second
    assert 1 <= len(markers) <= 8  # one a second at most
    stdout, _ = logs(container)
    assert len(stdout.splitlines()) == 6 * 2500  # docker logs shows what the container wrote


def test_keep_drop_and_min_level_leave_docker_logs_whole(plugin: Plugin) -> None:
    script = "echo 'GET /healthz 200'; echo 'DEBUG cache warm'; echo 'INFO ready'; echo 'ERROR no route' >&2"
    container = plugin.run("sh", "-c", script, opts={"drop-lines": "healthz", "min-level": "info"})
    plugin.closing_counts(container, "file")
    assert sorted(str(r["message"]) for r in plugin.file_records(container)) == ["ERROR no route", "INFO ready"]
    stdout, stderr = logs(container)
    assert (stdout, stderr) == (b"GET /healthz 200\nDEBUG cache warm\nINFO ready\n", b"ERROR no route\n")


# A made-up secret of three presets, a private key over several lines, and a near miss.
SECRETS = (
    "echo 'login password=hunter2 ok'; echo 'paid with 4111 1111 1111 1111'; "
    "printf -- '-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBgkqhkiG9w0B\\n-----END PRIVATE KEY-----\\n'; "
    "echo 'password policy updated' >&2"
)
REDACTED = ["login password=[REDACTED] ok", "paid with [REDACTED]", "[REDACTED]", "[REDACTED]", "[REDACTED]"]


def test_redaction_in_the_file_sink_in_fluentd_and_in_docker_logs(plugin: Plugin, tmp_path: Path) -> None:
    with FluentPeer(tmp_path) as peer:
        opts = {"sinks": "file,fluentd", "fluentd-address": f"127.0.0.1:{peer.port}", "redact": "all"}
        container = plugin.run("sh", "-c", SECRETS, opts=opts)
        events = peer.wait_for(6, timeout=30)
    plugin.closing_counts(container, "file")
    records = plugin.file_records(container)
    assert [r["message"] for r in records if r["stream"] == "stdout"] == REDACTED
    assert [r["message"] for r in records if r["stream"] == "stderr"] == ["password policy updated"]
    assert sorted(e["record"]["log"] for e in events) == sorted([*REDACTED, "password policy updated"])
    stdout, stderr = logs(container)
    assert stdout.decode().splitlines() == REDACTED  # the store kept the redacted lines
    assert stderr == b"password policy updated\n"
    raw = plugin.run("sh", "-c", SECRETS, opts={"redact": "all", "redact-store": "false"})
    assert b"hunter2" in logs(raw)[0]  # unless told to keep them
