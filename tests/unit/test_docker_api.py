"""Which stored containers are gone: with two engines on a host, only those neither knows.

The engines here are FakeEngine, a fake: a unix-socket HTTP server that answers
``GET /containers/ID/json`` from a set of IDs. The real engines are asked in
tests/integration/test_end_to_end.py, on each engine with both running.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import trio

from logdriver import ConfigError
from logdriver.config.settings import Settings
from logdriver.server.docker_api import removed_containers


class FakeEngine:
    def __init__(self, path: Path, containers: set[str]) -> None:
        self.path = str(path)
        self.containers = containers

    async def serve(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
        await sock.bind(self.path)
        sock.listen()
        listener = trio.SocketListener(sock)
        task_status.started()
        await trio.serve_listeners(self._answer, [listener])

    async def _answer(self, stream: trio.abc.Stream) -> None:
        buffer = b""
        while True:
            while b"\r\n\r\n" not in buffer:
                chunk = await stream.receive_some()
                if not chunk:
                    return
                buffer += chunk
            head, buffer = buffer.split(b"\r\n\r\n", 1)
            container = head.split(b" ")[1].decode().split("/")[2]
            status = b"200 OK" if container in self.containers else b"404 Not Found"
            await stream.send_all(b"HTTP/1.1 " + status + b"\r\nContent-Length: 2\r\n\r\n{}")


async def test_a_container_is_removed_only_when_no_engine_knows_it(tmp_path: Path) -> None:
    first = FakeEngine(tmp_path / "first.sock", {"a"})
    second = FakeEngine(tmp_path / "second.sock", {"b"})
    async with trio.open_nursery() as nursery:
        await nursery.start(first.serve)
        await nursery.start(second.serve)
        assert await removed_containers(["a", "b", "c"], sockets=(first.path, second.path)) == {"c"}
        assert await removed_containers(["a", "b", "c"], sockets=(first.path,)) == {"b", "c"}
        # No engine asked (the setting emptied): nothing is known removed.
        assert await removed_containers(["a", "b", "c"], sockets=()) == set()
        # An engine not running: nothing can be called removed.
        with pytest.raises(httpx.ConnectError, match="No such file"):
            await removed_containers(["c"], sockets=(first.path, str(tmp_path / "absent.sock")))
        nursery.cancel_scope.cancel()


def test_engine_sockets_setting() -> None:
    assert Settings.from_env({}).docker_sockets == ("/var/run/docker.sock",)
    both = Settings.from_env({"LOGDRIVER_DOCKER_SOCKETS": "/var/run/docker.sock, /run/d2/docker.sock"})
    assert both.docker_sockets == ("/var/run/docker.sock", "/run/d2/docker.sock")
    assert Settings.from_env({"LOGDRIVER_DOCKER_SOCKETS": ""}).docker_sockets == ()
    with pytest.raises(ConfigError, match="LOGDRIVER_DOCKER_SOCKETS"):
        Settings.from_env({"LOGDRIVER_DOCKER_SOCKETS": "docker.sock"})
