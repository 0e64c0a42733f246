"""Fixtures for tests against the real Docker engine (``make test`` starts it).

The plugin runs as a legacy plugin under the name ``logdriver-it`` so that a
``make run`` instance on the same machine is left alone.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

IMAGE = "logdriver-test"
ROOT = Path(__file__).resolve().parents[2]


def docker(
    *args: str, check: bool = True, timeout: float = 120, stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    result = subprocess.run(["docker", *args], capture_output=True, timeout=timeout, check=False, input=stdin)
    if check and result.returncode != 0:
        raise AssertionError(
            f"docker {' '.join(args)} failed ({result.returncode}): {result.stderr.decode(errors='replace')}"
        )
    return result


@dataclass(frozen=True)
class Engine:
    name: str  # part of every engine-facing test's id
    version: str  # what the server must report, so that an id cannot name the wrong engine
    host: str
    ensure: tuple[str, ...]  # the script under scripts/ that starts it (and builds it), with its arguments
    pidfile: str
    in_ci: bool  # `make test` runs it; the others are a `make test-engines ENGINES=...` away

    @property
    def socket(self) -> str:
        return self.host.removeprefix("unix://")

    def start(self) -> None:
        subprocess.run(
            [str(ROOT / "scripts" / self.ensure[0]), *self.ensure[1:]], check=True, stdout=subprocess.DEVNULL
        )

    def restart(self) -> None:
        """SIGTERM to dockerd (it stops its containers, as on a host's `systemctl restart
        docker`), then start it again the way `make test` did."""
        pid = int(Path(self.pidfile).read_text())
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 60
        while _alive(pid):
            assert time.monotonic() < deadline, f"dockerd {pid} did not stop"
            time.sleep(0.2)
        self.start()


def _alive(pid: int) -> bool:
    """Running: not gone and not a zombie (PID 1 here may not reap dockerd at once)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _second(major: int, version: str, in_ci: bool) -> Engine:
    run = f"/run/logdriver-docker{major}"
    return Engine(
        f"docker-{version}", f"{version}.", f"unix://{run}/docker.sock", ("ensure-engine.sh", str(major)),
        f"{run}/docker.pid", in_ci,
    )  # fmt: skip


# CI runs the oldest and the newest engine supported; docs/compatibility.md says why.
ENGINES = (
    Engine("docker-20.10", "20.10.", "unix:///var/run/docker.sock", ("ensure-docker.sh",), "/var/run/docker.pid", True),
    _second(28, "28.5", in_ci=False),
    _second(29, "29.8", in_ci=True),
)


def selected_engines() -> tuple[Engine, ...]:
    """Those CI runs; LOGDRIVER_TEST_ENGINES=docker-28.5 (comma-separated, or `all`) picks others."""
    wanted = [name.strip() for name in os.environ.get("LOGDRIVER_TEST_ENGINES", "").split(",") if name.strip()]
    if wanted == ["all"]:
        return ENGINES
    unknown = set(wanted) - {engine.name for engine in ENGINES}
    if unknown:
        raise pytest.UsageError(
            f"LOGDRIVER_TEST_ENGINES: unknown {sorted(unknown)}; known: {[e.name for e in ENGINES]}"
        )
    return tuple(engine for engine in ENGINES if engine.name in wanted or (not wanted and engine.in_ci))


def running_engine_sockets() -> list[str]:
    return [engine.socket for engine in ENGINES if os.path.exists(engine.socket)]


@pytest.fixture(scope="session", autouse=True, params=selected_engines(), ids=lambda engine: engine.name)
def engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    """Every test here runs once per engine; `docker` (and the plugin's children) reach it
    through DOCKER_HOST."""
    engine: Engine = request.param
    previous = os.environ.get("DOCKER_HOST")
    os.environ["DOCKER_HOST"] = engine.host
    if subprocess.run(["docker", "info"], capture_output=True, check=False).returncode != 0:
        engine.start()
    elif docker("image", "inspect", IMAGE, check=False).returncode != 0:
        subprocess.run([str(ROOT / "scripts" / "build-test-image.sh"), IMAGE], check=True)
    version = docker("version", "--format", "{{.Server.Version}}").stdout.decode().strip()
    assert version.startswith(engine.version), f"{engine.host} runs {version}, not {engine.name}"
    yield engine
    if previous is None:
        os.environ.pop("DOCKER_HOST", None)
    else:
        os.environ["DOCKER_HOST"] = previous


class Plugin:
    """A logdriver process serving dockerd on a legacy socket; restartable, killable."""

    def __init__(self, name: str, state_dir: Path, env: dict[str, str]) -> None:
        self.name = name
        self.state_dir = state_dir
        self.socket = f"/run/docker/plugins/{name}.sock"
        self.env = {
            **os.environ,
            "LOGDRIVER_SOCKET": self.socket,
            "LOGDRIVER_STATE_DIR": str(state_dir),
            "LOGDRIVER_LOG_LEVEL": "DEBUG",
            # As on a host with both engines: the plugin serves both, so it asks both before
            # deleting a container's logs as removed.
            "LOGDRIVER_DOCKER_SOCKETS": ",".join(running_engine_sockets()),
            **env,
        }
        self.log_path = state_dir / "plugin.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.containers: list[str] = []

    @property
    def file_dir(self) -> Path:
        return Path(self.env.get("LOGDRIVER_FILE_DIR", str(self.state_dir / "files")))

    def start(self) -> None:
        with open(self.log_path, "ab") as log:  # the child keeps its own copy of the fd
            self.process = subprocess.Popen(
                [sys.executable, "-m", "logdriver"], env=self.env, stdout=log, stderr=log, cwd=ROOT
            )
        deadline = time.monotonic() + 20
        while not os.path.exists(self.socket):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"plugin did not start:\n{self.log()}")
            time.sleep(0.05)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=30)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def run(
        self, *command: str, opts: dict[str, str] | None = None, args: tuple[str, ...] = (), driver: str | None = None
    ) -> str:
        """``docker run -d`` with this plugin (or ``driver``) and wait for the exit."""
        container = self.create(*command, opts=opts, args=args, driver=driver)
        docker("start", container)
        assert docker("wait", container, timeout=300).stdout.strip() == b"0"
        return container

    def create(
        self, *command: str, opts: dict[str, str] | None = None, args: tuple[str, ...] = (), driver: str | None = None
    ) -> str:
        log_opts = [f"--log-opt={k}={v}" for k, v in (opts or {}).items()]
        name = f"it-{uuid.uuid4().hex[:10]}"
        result = docker(
            "create", "--name", name, f"--log-driver={driver or self.name}", *log_opts, *args, IMAGE, *command
        )
        container = result.stdout.decode().strip()
        self.containers.append(container)
        return container

    def wait_exit(self, container: str, progress: Callable[[], int], stall: float = 90, limit: float = 600) -> int:
        """The container's exit code, waiting as long as ``progress()`` (say, lines at a peer)
        keeps growing: a loaded CI machine is slow, not stuck. A stall fails with the plugin's log."""
        deadline = time.monotonic() + limit
        last, since = progress(), time.monotonic()
        while True:
            try:
                return int(docker("wait", container, timeout=10).stdout.strip())
            except subprocess.TimeoutExpired:
                pass
            now, seen = time.monotonic(), progress()
            if seen != last:
                last, since = seen, now
            if now - since >= stall or now >= deadline:
                state = docker("inspect", "-f", "{{.State.Status}}", container, check=False).stdout.decode().strip()
                raise AssertionError(
                    f"{container[:12]} ({state}) at {seen} after {now - since:.0f}s without progress;"
                    f" plugin log:\n{self.log()[-4000:]}"
                )

    def closing_counts(self, container: str, sink: str, timeout: float = 60) -> tuple[int, int]:
        """(delivered, dropped) for ``sink`` from the final log line of the container's pipeline
        that carried lines (it finishes once everything is delivered or given up), once it is logged."""
        pattern = rf"sink {re.escape(sink)} for {container[:12]} finished: [1-9]\d* in, (\d+) delivered, (\d+) dropped"
        deadline = time.monotonic() + timeout
        while (match := re.search(pattern, self.log())) is None:
            assert time.monotonic() < deadline, self.log()[-3000:]
            time.sleep(0.1)
        return int(match.group(1)), int(match.group(2))

    def file_records(self, container: str) -> list[dict[str, object]]:
        paths = sorted(self.file_dir.glob(f"{container[:12]}-*.log"))
        assert paths, f"no file-sink file for {container[:12]} in {self.file_dir}"
        return [orjson.loads(line) for line in paths[0].read_bytes().splitlines()]

    def cleanup(self) -> None:
        if self.process is not None and self.process.poll() is not None and self.containers:
            self.start()  # a dead plugin leaves containers frozen in write(): rm -f would hang
        if self.containers:
            docker("rm", "-f", *self.containers, check=False)
        self.stop()


@pytest.fixture
def make_plugin(tmp_path: Path, engine: Engine) -> Iterator[object]:
    plugins: list[Plugin] = []
    # Every engine finds every legacy plugin in /run/docker/plugins: a name per engine lets
    # the engines' tests run side by side (`make test` does).
    name = f"logdriver-it-{engine.name.removeprefix('docker-').replace('.', '')}"

    def factory(**env: str) -> Plugin:
        plugin = Plugin(name, tmp_path / f"state{len(plugins)}", env)
        plugin.state_dir.mkdir()
        plugins.append(plugin)
        plugin.start()
        return plugin

    yield factory
    for plugin in plugins:
        plugin.cleanup()


@pytest.fixture
def plugin(make_plugin: object) -> Plugin:
    return make_plugin()  # type: ignore[operator, no-any-return]


def logs(container: str, *args: str) -> tuple[bytes, bytes]:
    result = docker("logs", *args, container, timeout=300)
    return result.stdout, result.stderr
