"""Throughput of logdriver against Docker's own drivers, measured in the same run.

Each workload runs detached (``docker run -d`` then ``docker wait``) through
logdriver (file sink + docker-logs store), ``local``, ``json-file`` and ``none``,
interleaved round-robin, RUNS times each; the median wall time from start to
wait gives lines/s and MB/s. The plugin's CPU seconds (utime+stime from /proc)
per 1M lines and its peak RSS (VmHWM) are reported as well.

Usage: python bench/bench.py [--runs 5] [--lines 1000000] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMAGE = "logdriver-test"
PLUGIN = "logdriver-bench"
DRAIN = "logdriver-drain"
STALLED = "logdriver-stalled"  # a second plugin whose Fluentd server accepts and never answers
# label → (log driver, log-opts)
DRIVERS: dict[str, tuple[str, dict[str, str]]] = {
    "logdriver (file)": (PLUGIN, {}),
    "logdriver (store only)": (PLUGIN, {"sinks": "none"}),
    "logdriver (file+discard)": (PLUGIN, {"sinks": "file,discard"}),
    "logdriver (discard)": (PLUGIN, {"sinks": "discard"}),
    "logdriver (stalled sink)": (STALLED, {"sinks": "fluentd", "overflow": "drop-newest"}),
    "drain-only plugin": (DRAIN, {}),
    "local": ("local", {}),
    "json-file": ("json-file", {}),
    "none": ("none", {}),
}
TICKS = os.sysconf("SC_CLK_TCK")


def workloads(lines: int) -> dict[str, tuple[str, int]]:
    """name → (shell command, bytes of output)."""
    seq_bytes = sum(len(str(i)) + 1 for i in range(1, lines + 1))
    return {
        f"seq 1 {lines}": (f"seq 1 {lines}", seq_bytes),
        f"{lines} x 200 B lines": (f"yes $(head -c 199 /dev/zero | tr '\\0' x) | head -n {lines}", lines * 200),
    }


def docker(*args: str) -> str:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"docker {args[0]}: {done.stderr.strip()[:500]}")
    return done.stdout.strip()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def engine_socket() -> str:
    """The API socket of the engine under test: DOCKER_HOST (make bench runs on either)."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not host.startswith("unix://"):
        raise SystemExit(f"DOCKER_HOST={host}: the benchmarks measure a local engine on a unix socket")
    return os.path.realpath(host.removeprefix("unix://"))


def dockerd_pid() -> int:
    """The dockerd listening on engine_socket(): two engines may run side by side."""
    path = engine_socket()
    inodes = set()
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 8 and os.path.realpath(fields[7]) == path:
            inodes.add(f"socket:[{fields[6]}]")
    for entry in Path("/proc").iterdir():
        try:  # a process may end while we look
            if (
                entry.name.isdigit()
                and "dockerd" in (entry / "comm").read_text(errors="replace")
                and any(os.readlink(fd) in inodes for fd in (entry / "fd").iterdir())
            ):
                return int(entry.name)
        except OSError:
            continue
    raise RuntimeError(f"no dockerd listens on {path}")


def engine_root() -> str:
    """The engine's data root (json-file logs live under it)."""
    return docker("info", "--format", "{{.DockerRootDir}}")


def start_plugin(name: str, state_dir: str, **env: str) -> subprocess.Popen[bytes]:
    """logdriver serving dockerd as the legacy plugin ``name``; returns once its socket exists."""
    socket_path = f"/run/docker/plugins/{name}.sock"
    settings = {"LOGDRIVER_SOCKET": socket_path, "LOGDRIVER_STATE_DIR": state_dir, "LOGDRIVER_LOG_LEVEL": "WARNING"}
    process = subprocess.Popen([sys.executable, "-m", "logdriver"], env={**os.environ, **settings, **env}, cwd=ROOT)
    while not os.path.exists(socket_path):
        if process.poll() is not None:
            raise RuntimeError(f"plugin {name} exited with {process.returncode}")
        time.sleep(0.05)
    return process


def run_once(driver: str, command: str, opts: dict[str, str] | None = None, args: tuple[str, ...] = ()) -> float:
    """Wall time of one container from start to wait; ``args`` go to ``docker create``."""
    log_opts = [f"--log-opt={k}={v}" for k, v in (opts or {}).items()]
    container = docker("create", f"--log-driver={driver}", *log_opts, *args, IMAGE, "sh", "-c", command)
    try:
        started = time.perf_counter()
        docker("start", container)
        code = docker("wait", container)
        elapsed = time.perf_counter() - started
        if code != "0":
            raise RuntimeError(f"{driver}: container exited {code}")
        return elapsed
    finally:
        docker("rm", "-f", container)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--only", help="run only workloads whose name contains this")
    parser.add_argument("--drivers", help="comma-separated: run only the drivers whose label contains one of these")
    args = parser.parse_args()

    state = tempfile.mkdtemp(prefix="logdriver-bench-", dir="/var/tmp")
    plugin = start_plugin(PLUGIN, state, LOGDRIVER_GC_INTERVAL="5s")
    # A peer that accepts connections and never answers: the sink stalls for the whole run.
    stalled_peer = socket.socket()
    stalled_peer.bind(("127.0.0.1", 0))
    stalled_peer.listen(64)
    stalled = start_plugin(
        STALLED,
        state + "-stalled",
        LOGDRIVER_GC_INTERVAL="5s",
        # The plugin-wide default address, as `docker plugin set` would give it.
        LOGDRIVER_FLUENTD_ADDRESS=f"tcp://127.0.0.1:{stalled_peer.getsockname()[1]}",
    )
    drain_socket = f"/run/docker/plugins/{DRAIN}.sock"
    drain = subprocess.Popen([sys.executable, str(ROOT / "bench" / "drain_plugin.py"), drain_socket], cwd=ROOT)
    while not os.path.exists(drain_socket):
        time.sleep(0.05)
    results: dict[str, dict[str, object]] = {}
    try:
        run_once(PLUGIN, "true")  # warm-up: the daemon activates plugins lazily
        run_once(DRAIN, "true")
        run_once(STALLED, "true")
        for name, (command, size) in workloads(args.lines).items():
            if args.only and args.only not in name:
                continue
            chosen = [d for d in DRIVERS if not args.drivers or any(w in d for w in args.drivers.split(","))]
            times: dict[str, list[float]] = {d: [] for d in chosen}
            cpu: dict[str, list[float]] = {d: [] for d in chosen if DRIVERS[d][0] in (PLUGIN, STALLED)}
            daemon_cpu: dict[str, list[float]] = {d: [] for d in chosen}
            daemon = dockerd_pid()
            for _ in range(args.runs):
                for label in chosen:
                    driver, opts = DRIVERS[label]
                    pid = stalled.pid if driver == STALLED else plugin.pid
                    before, daemon_before = cpu_seconds(pid), cpu_seconds(daemon)
                    times[label].append(run_once(driver, command, opts))
                    daemon_cpu[label].append(cpu_seconds(daemon) - daemon_before)
                    if label in cpu:
                        cpu[label].append(cpu_seconds(pid) - before)
            medians = {d: statistics.median(t) for d, t in times.items()}
            rows = {}
            for driver in chosen:
                rate = args.lines / medians[driver]
                rows[driver] = {
                    "lines_per_s": rate,
                    "mb_per_s": size / medians[driver] / 1e6,
                    "x_local": medians["local"] / medians[driver],
                    "x_json_file": medians["json-file"] / medians[driver],
                    "runs_s": times[driver],
                    "dockerd_cpu_s": statistics.median(daemon_cpu[driver]),
                }
            results[name] = {
                "drivers": rows,
                "plugin_cpu_s_per_1M": {k: statistics.median(v) * 1_000_000 / args.lines for k, v in cpu.items()},
                "plugin_peak_rss_mib": peak_rss_mib(plugin.pid),
                "stalled_plugin_peak_rss_mib": peak_rss_mib(stalled.pid),
            }
            print_table(name, results[name])
    finally:
        stalled_peer.close()
        for process in (plugin, drain, stalled):
            process.terminate()
            process.wait(timeout=30)
        subprocess.run(["rm", "-rf", state, state + "-stalled"], check=False)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


def print_table(name: str, result: dict[str, object]) -> None:
    print(f"\n## {name}  (median of runs; detached run + wait)")
    print(f"{'driver':<24}{'lines/s':>12}{'MB/s':>9}{'x local':>9}{'x json-file':>13}{'dockerd CPU s':>15}")
    rows = result["drivers"]
    assert isinstance(rows, dict)
    for driver, row in rows.items():
        label = driver
        print(
            f"{label:<24}{row['lines_per_s']:>12,.0f}{row['mb_per_s']:>9.1f}{row['x_local']:>9.2f}"
            f"{row['x_json_file']:>13.2f}{row['dockerd_cpu_s']:>15.2f}"
        )
    cpu, rss = result["plugin_cpu_s_per_1M"], result["plugin_peak_rss_mib"]
    assert isinstance(cpu, dict)
    per_mode = ", ".join(f"{k}: {v:.2f} s" for k, v in cpu.items())
    print(f"plugin CPU per 1M lines: {per_mode}; plugin peak RSS: {rss:.0f} MiB")
    stalled_rss = result["stalled_plugin_peak_rss_mib"]
    print(f"peak RSS of the plugin whose sink stalled all along (16 MiB buffer per container): {stalled_rss:.0f} MiB")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
