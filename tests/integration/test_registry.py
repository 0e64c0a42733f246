"""Registry distribution on a real registry (Debian's docker-registry on 127.0.0.1, which
Docker accepts over plain HTTP): `make plugin-push`'s script pushes, `docker plugin install`
takes it under an alias, a container logs through it, and `docker plugin upgrade` to a
newer push keeps the settings and the `docker logs` store."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..ports import free_port
from .conftest import IMAGE, ROOT, docker, logs

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ALIAS = "logdriver-registry-it"


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[str]:
    binary = shutil.which("docker-registry")
    if binary is None:
        subprocess.run([str(ROOT / "scripts" / "apt-install.sh"), "docker-registry", "docker-registry"], check=True)
        binary = shutil.which("docker-registry") or "/usr/bin/docker-registry"
    address = f"127.0.0.1:{free_port()}"
    config = tmp_path / "registry.yml"
    config.write_text(
        f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {tmp_path / 'blobs'}\nhttp:\n  addr: {address}\n"
    )
    with open(tmp_path / "registry.log", "wb") as log:
        process = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://{address}/v2/", timeout=2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, (tmp_path / "registry.log").read_text()
                time.sleep(0.2)
        yield address
    finally:
        docker("plugin", "disable", "-f", ALIAS, check=False)
        docker("plugin", "rm", "-f", ALIAS, check=False)
        process.terminate()
        process.wait(30)


def push(registry: str, tag: str) -> None:
    env = {**os.environ, "PYTHON": sys.executable}
    subprocess.run(
        [str(ROOT / "scripts" / "build-plugin.sh"), "--push", registry, tag], check=True, env=env, timeout=900
    )


def rootfs(name: str) -> str:
    return docker("plugin", "inspect", "-f", "{{.Config.Rootfs.DiffIds}}", name).stdout.decode().strip()


def test_install_from_a_registry_and_upgrade_keeping_state(registry: str, tmp_path: Path) -> None:
    push(registry, "1.0.0-it")
    state = tmp_path / "state"
    state.mkdir()
    docker(
        "plugin", "install", "--grant-all-permissions", "--disable", "--alias", ALIAS, f"{registry}/logdriver:latest"
    )
    # Settings and secrets go in plugin-wide variables: each sink's is settable.
    docker(
        "plugin", "set", ALIAS, f"state.source={state}", "LOGDRIVER_FILE_FORMAT=text",
        "LOGDRIVER_ES_API_KEY=registry-test-key", "LOGDRIVER_KAFKA_SASL_PASSWORD=registry-test-password",
        "LOGDRIVER_FLUENTD_SHARED_KEY=registry-test-shared-key",
    )  # fmt: skip
    docker("plugin", "enable", "--timeout", "0", ALIAS)
    inspected = docker("plugin", "inspect", "-f", "{{.PluginReference}} {{.Enabled}}", ALIAS).stdout.decode().strip()
    assert inspected == f"{registry}/logdriver:latest true"
    # Every variable an operator may set is described in `docker plugin inspect`.
    described = docker(
        "plugin", "inspect", "-f", "{{range .Config.Env}}{{.Name}}={{.Description}}{{println}}{{end}}", ALIAS
    )
    for pair in described.stdout.decode().strip().splitlines():
        name, _, description = pair.partition("=")
        assert description, f"{name} has no description"
    container = docker("run", "-d", f"--log-driver={ALIAS}", IMAGE, "sh", "-c", "echo before; echo err >&2")
    container_id = container.stdout.decode().strip()
    try:
        assert docker("wait", container_id).stdout.strip() == b"0"
        assert logs(container_id) == (b"before\n", b"err\n")
        files = list((state / "files").glob(f"{container_id[:12]}-*.log"))
        assert len(files) == 1
        assert sorted(files[0].read_bytes().splitlines()) == [b"before", b"err"]  # text lines, as set
        before = rootfs(ALIAS)

        # The upgrade procedure of the README: a newer push, containers using the plugin
        # stopped (this one has exited), disable, upgrade, enable.
        push(registry, "1.0.1-it")
        docker("plugin", "disable", ALIAS)
        docker("plugin", "upgrade", "--grant-all-permissions", ALIAS, f"{registry}/logdriver:latest")
        # dockerd (20.10 and 28.5 alike) shows the kept mount source after an upgrade but mounts the
        # manifest's default at enable; setting it again (to the same value) applies it.
        source = docker("plugin", "inspect", "-f", "{{range .Settings.Mounts}}{{.Source}}{{end}}", ALIAS)
        assert source.stdout.decode().strip() == str(state)
        docker("plugin", "set", ALIAS, f"state.source={state}")
        docker("plugin", "enable", "--timeout", "0", ALIAS)
        assert rootfs(ALIAS) != before  # the new build
        env = docker("plugin", "inspect", "-f", "{{.Settings.Env}}", ALIAS).stdout.decode()
        assert "LOGDRIVER_FILE_FORMAT=text" in env
        assert logs(container_id) == (b"before\n", b"err\n")  # the store survived
        after = docker("run", "-d", f"--log-driver={ALIAS}", IMAGE, "echo", "after").stdout.decode().strip()
        assert docker("wait", after).stdout.strip() == b"0"
        assert logs(after) == (b"after\n", b"")
        docker("rm", "-f", after)
    finally:
        docker("rm", "-f", container_id, check=False)
