"""The operator policy on the real engines (issue 34): a running container, selected by its
label, gets a rate limit and redaction without being recreated, keeps them across a plugin
restart, keeps them when an invalid policy is offered, then loses them; every line it wrote
is shipped once, in order, or counted in a rate-limit marker."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import orjson

from .conftest import ROOT, Plugin, docker

MARKER = re.compile(r"^logdriver: rate limit: ([\d,]+) lines \(([\d,]+) bytes\) dropped in the last \d+ s$")
# About 100 numbered lines a second, each with a made-up secret.
WRITER = 'i=0; while true; do i=$((i+1)); echo "n=$i password=hunter2"; sleep 0.01; done'
TAME = """
rules:
  - name: tame-noisy
    match: {label: {app: "~nois.*"}}
    enforce: {rate-limit: 20/s, redact: all}
"""


def policy(plugin: Plugin, tmp_path: Path, action: str, text: str = "") -> subprocess.CompletedProcess[str]:
    args = [sys.executable, "-m", "logdriver", "policy", "--state-dir", str(plugin.state_dir), action]
    if action != "show":
        file = tmp_path / "policy.yaml"
        file.write_text(text)
        args.append(str(file))
    return subprocess.run(args, capture_output=True, text=True, timeout=60, cwd=ROOT, check=False)


def written(plugin: Plugin, container: str) -> list[dict[str, object]]:
    paths = sorted(plugin.file_dir.glob(f"{container[:12]}-*.log"))
    return [orjson.loads(line) for path in paths for line in path.read_bytes().splitlines()]


def wait_for_lines(plugin: Plugin, container: str, more_than: int, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    while (count := len(written(plugin, container))) <= more_than:
        assert time.monotonic() < deadline, plugin.log()[-3000:]
        time.sleep(0.2)
    return count


def test_a_label_gets_a_rate_limit_and_redaction_live_keeps_them_then_loses_them(
    plugin: Plugin, tmp_path: Path
) -> None:
    container = plugin.create("sh", "-c", WRITER, args=("--label", "app=noisy"))
    docker("start", container)
    seen = wait_for_lines(plugin, container, 100)

    applied = policy(plugin, tmp_path, "apply", TAME)
    assert applied.returncode == 0, applied.stderr
    seen = wait_for_lines(plugin, container, seen + 60)
    shown = policy(plugin, tmp_path, "show")
    assert shown.returncode == 0, shown.stderr
    assert "tame-noisy" in shown.stdout
    assert re.search(r"rate-limit\s+20/s\s+rule tame-noisy \(enforce\)", shown.stdout), shown.stdout

    # An invalid policy changes nothing: refused with the rule and option, the one in force kept.
    refused = policy(plugin, tmp_path, "apply", "rules: [{name: bad, match: {}, enforce: {rate-limit: fast}}]")
    assert refused.returncode == 1
    assert "rule 'bad', option 'rate-limit'" in refused.stderr
    # One only the plugin can refuse (the options together, and with the running container's):
    # it says so, and the command puts the file back.
    conflict = "rules: [{name: clash, match: {}, enforce: {multiline: java, multiline-start: '^x'}}]"
    refused = policy(plugin, tmp_path, "apply", conflict)
    assert refused.returncode == 1, refused.stdout
    assert "clash" in refused.stderr
    assert (plugin.state_dir / "policy.yaml").read_text() == TAME

    # A restart keeps the policy (the FIFO resumes under it).
    plugin.stop()
    plugin.start()
    seen = wait_for_lines(plugin, container, seen + 60)
    assert "tame-noisy" in policy(plugin, tmp_path, "show").stdout

    cleared = policy(plugin, tmp_path, "apply", "rules: []")
    assert cleared.returncode == 0, cleared.stderr
    wait_for_lines(plugin, container, seen + 300)
    docker("stop", "-t", "1", container)
    finished = f"sink file for {container[:12]} finished"
    deadline = time.monotonic() + 60
    while plugin.log().count(finished) < 2:  # one at the restart, one at the end
        assert time.monotonic() < deadline, plugin.log()[-3000:]
        time.sleep(0.2)

    records = written(plugin, container)
    lines = [str(r["message"]) for r in records if r["stream"] == "stdout"]
    markers = [MARKER.match(str(r["message"])) for r in records if r["stream"] == "logdriver"]
    dropped = sum(int(found[1].replace(",", "")) for found in markers if found)
    assert all(markers)
    numbers = [int(line.split()[0].removeprefix("n=")) for line in lines]
    assert numbers == sorted(set(numbers))  # in order, none twice
    assert len(numbers) + dropped == numbers[-1]  # every line written: shipped or counted in a marker
    assert dropped > 0
    phases = [line.endswith("[REDACTED]") for line in lines]
    # Plain, then redacted from one read batch on, then plain again: one switch each way.
    first = phases.index(True)
    back = phases.index(False, first)
    assert not any(phases[:first])
    assert all(phases[first:back])
    assert not any(phases[back:])
