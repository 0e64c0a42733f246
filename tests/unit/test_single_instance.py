"""One plugin per state directory, and no server from a mistyped command (issue 30, finding 5).

A second server on the same state directory reopened a running container's FIFO from
the shared registry, read its lines, and deleted the live plugin's socket on exit.
These run the real ``python -m logdriver`` in subprocesses.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from logdriver._files import lock_exclusive


def environment(tmp_path: Path) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("LOGDRIVER_")},
        "LOGDRIVER_STATE_DIR": str(tmp_path / "state"),
        "LOGDRIVER_SOCKET": str(tmp_path / "plugin.sock"),
        "LOGDRIVER_DOCKER_SOCKETS": str(tmp_path / "no-docker.sock"),
    }


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "logdriver", *args],
        env=environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def running_plugin(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    plugin = subprocess.Popen(
        [sys.executable, "-m", "logdriver"], env=environment(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    sock = tmp_path / "plugin.sock"
    deadline = time.monotonic() + 30
    while not sock.exists():
        assert plugin.poll() is None, plugin.stdout.read() if plugin.stdout else ""  # type: ignore[union-attr]
        assert time.monotonic() < deadline, "the plugin did not create its socket"
        time.sleep(0.05)
    yield plugin  # type: ignore[misc]
    plugin.terminate()
    plugin.communicate(timeout=30)


def answers(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX) as client:
        client.settimeout(5)
        client.connect(str(path))
        client.sendall(b"POST /Plugin.Activate HTTP/1.1\r\nHost: plugin\r\nContent-Length: 0\r\n\r\n")
        return b"LogDriver" in client.recv(4096)


@pytest.mark.parametrize("args", [["--help"]])
def test_help_prints_usage_and_serves_nothing(tmp_path: Path, args: list[str]) -> None:
    done = run(tmp_path, *args)
    assert done.returncode == 0
    assert "usage: python -m logdriver" in done.stdout
    assert not (tmp_path / "plugin.sock").exists()
    assert not (tmp_path / "state").exists()


@pytest.mark.parametrize("args", [["--bogus"], ["serve", "now"], ["options", "--format", "xml"]])
def test_an_unknown_argument_is_refused_and_serves_nothing(tmp_path: Path, args: list[str]) -> None:
    done = run(tmp_path, *args)
    assert done.returncode == 2
    assert "usage:" in done.stderr
    assert not (tmp_path / "plugin.sock").exists()


def test_version_and_options_still_work(tmp_path: Path) -> None:
    assert run(tmp_path, "--version").stdout.startswith("logdriver ")
    assert run(tmp_path, "options", "--format", "json").stdout.startswith("{")


def test_a_second_plugin_on_the_same_state_directory_refuses_and_touches_nothing(
    tmp_path: Path, running_plugin: subprocess.Popen[str]
) -> None:
    sock = tmp_path / "plugin.sock"
    inode = sock.stat().st_ino
    second = run(tmp_path)
    assert second.returncode == 2
    assert f"serving state directory {tmp_path / 'state'}" in second.stdout + second.stderr
    assert f"pid {running_plugin.pid}" in second.stdout + second.stderr
    assert sock.stat().st_ino == inode  # neither replaced nor removed
    assert answers(sock)
    assert running_plugin.poll() is None


def test_the_lock_goes_with_its_process(tmp_path: Path) -> None:
    """A plugin killed with -9 leaves no stale lock: the kernel releases it."""
    path = str(tmp_path / "lock")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"from logdriver._files import lock_exclusive; import time; lock_exclusive({path!r}); "
            "print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    assert holder.stdout.readline() == "held\n"
    assert lock_exclusive(path) is None
    holder.kill()
    holder.communicate()
    fd = lock_exclusive(path)
    assert fd is not None
    assert (os.stat(path).st_mode & 0o777) == 0o600
    os.close(fd)
