"""Registry distribution on a real registry (Debian's docker-registry on 127.0.0.1, which
Docker accepts over plain HTTP): `make plugin-push`'s script pushes, `docker plugin install`
takes it under an alias with the one command users type, a container logs through it,
and the `docker logs` store survives disable and enable, a crash, a dockerd restart and
`docker plugin upgrade` to a newer push, with nothing set again."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..ports import free_port
from .conftest import IMAGE, ROOT, Engine, docker, logs

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


def state_dir(name: str) -> Path:
    """Where dockerd keeps the plugin's propagated mount (its /state) on this host."""
    root = docker("info", "-f", "{{.DockerRootDir}}").stdout.decode().strip()
    plugin_id = docker("plugin", "inspect", "-f", "{{.Id}}", name).stdout.decode().strip()
    return Path(root) / "plugins" / plugin_id / "propagated-mount"


def plugin_pid(name: str) -> int:
    """The plugin's process: the child of the containerd shim that runs the plugin's id."""
    plugin_id = docker("plugin", "inspect", "-f", "{{.Id}}", name).stdout.decode().strip()
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and plugin_id.encode() in (proc / "cmdline").read_bytes():
                children = (proc / "task" / proc.name / "children").read_text().split()
                if b"shim" in (proc / "cmdline").read_bytes() and children:
                    return int(children[0])
        except OSError:
            continue
    raise AssertionError(f"no process runs plugin {plugin_id}")


def wait_enabled_again(name: str, old_pid: int) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            if plugin_pid(name) != old_pid:
                return
        except AssertionError:
            pass
        assert time.monotonic() < deadline, "dockerd did not restart the plugin"
        time.sleep(0.2)


def test_one_command_install_keeps_state_through_disable_crash_restart_and_upgrade(
    registry: str, engine: Engine
) -> None:
    push(registry, "latest")  # the upgrade below pushes a version and :latest
    # The one command, on a host where nothing was prepared for it.
    docker(
        "plugin", "install", "--grant-all-permissions", "--alias", ALIAS, f"{registry}/logdriver:latest",
        "LOGDRIVER_FILE_FORMAT=text",
    )  # fmt: skip
    inspected = docker("plugin", "inspect", "-f", "{{.PluginReference}} {{.Enabled}}", ALIAS).stdout.decode().strip()
    assert inspected == f"{registry}/logdriver:latest true"
    # Settings and secrets go in plugin-wide variables (each sink's is settable): given to
    # install, as above, or set while disabled.
    docker("plugin", "disable", ALIAS)
    docker(
        "plugin", "set", ALIAS,
        "LOGDRIVER_ES_API_KEY=registry-test-key", "LOGDRIVER_KAFKA_SASL_PASSWORD=registry-test-password",
        "LOGDRIVER_FLUENTD_SHARED_KEY=registry-test-shared-key",
    )  # fmt: skip
    docker("plugin", "enable", ALIAS)
    # Every variable an operator may set is described in `docker plugin inspect`.
    described = docker(
        "plugin", "inspect", "-f", "{{range .Config.Env}}{{.Name}}={{.Description}}{{println}}{{end}}", ALIAS
    )
    for pair in described.stdout.decode().strip().splitlines():
        name, _, description = pair.partition("=")
        assert description, f"{name} has no description"
    container = docker("run", "-d", f"--log-driver={ALIAS}", IMAGE, "sh", "-c", "echo before; echo err >&2")
    container_id = container.stdout.decode().strip()
    expected = (b"before\n", b"err\n")
    try:
        assert docker("wait", container_id).stdout.strip() == b"0"
        assert logs(container_id) == expected
        state = state_dir(ALIAS)
        assert oct(state.stat().st_mode & 0o777) == oct(0o700)  # the plugin makes its state root's only
        files = list((state / "files").glob(f"{container_id[:12]}-*.log"))
        assert len(files) == 1
        assert sorted(files[0].read_bytes().splitlines()) == [b"before", b"err"]  # text lines, as set

        docker("plugin", "disable", ALIAS)
        docker("plugin", "enable", ALIAS)
        assert logs(container_id) == expected, "disable and enable"

        pid = plugin_pid(ALIAS)
        os.kill(pid, signal.SIGKILL)
        wait_enabled_again(ALIAS, pid)
        assert logs(container_id) == expected, "a crash"

        engine.restart()
        assert logs(container_id) == expected, "a dockerd restart"

        # The upgrade procedure of the README: a newer push, containers using the plugin
        # stopped (this one has exited), disable, upgrade, enable; nothing set again.
        before = rootfs(ALIAS)
        push(registry, "1.0.1-it")
        docker("plugin", "disable", ALIAS)
        docker("plugin", "upgrade", "--grant-all-permissions", ALIAS, f"{registry}/logdriver:latest")
        docker("plugin", "enable", ALIAS)
        assert rootfs(ALIAS) != before  # the new build
        env = docker("plugin", "inspect", "-f", "{{.Settings.Env}}", ALIAS).stdout.decode()
        assert "LOGDRIVER_FILE_FORMAT=text" in env
        assert logs(container_id) == expected, "an upgrade"
        after = docker("run", "-d", f"--log-driver={ALIAS}", IMAGE, "echo", "after").stdout.decode().strip()
        assert docker("wait", after).stdout.strip() == b"0"
        assert logs(after) == (b"after\n", b"")
        assert len(list((state / "files").glob("*.log"))) == 2  # the same state directory
        docker("rm", "-f", after)
    finally:
        docker("rm", "-f", container_id, check=False)
