"""`make plugin`'s managed (v2) plugin: built without a registry, installed, logging."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import IMAGE, ROOT, docker, logs

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NAME = "logdriver-managed-it"


def build(state: Path | None = None) -> None:
    env = {**os.environ, "PYTHON": sys.executable}
    args = [str(ROOT / "scripts" / "build-plugin.sh"), NAME, *([str(state)] if state else [])]
    subprocess.run(args, check=True, env=env, timeout=900)


def propagated_mount() -> Path:
    root = docker("info", "-f", "{{.DockerRootDir}}").stdout.decode().strip()
    return Path(root) / "plugins" / docker("plugin", "inspect", "-f", "{{.Id}}", NAME).stdout.decode().strip()


@pytest.fixture
def managed(tmp_path: Path) -> object:
    build()  # the state in the propagated mount dockerd makes
    custom = tmp_path / "custom-state"
    yield custom
    docker("plugin", "disable", "-f", NAME, check=False)
    docker("plugin", "rm", "-f", NAME, check=False)
    # dockerd bind-mounts the propagated mount on itself at enable, through the link, and
    # leaves that mount on the custom directory when the plugin goes.
    # (os.path.ismount cannot see a bind mount within one file system; mountpoint can.)
    while subprocess.run(["mountpoint", "-q", str(custom)], check=False).returncode == 0:
        subprocess.run(["umount", str(custom)], check=True)


def test_managed_plugin_logs_and_keeps_state_across_recreation(managed: Path) -> None:
    enabled = docker("plugin", "inspect", "-f", "{{.Enabled}} {{.Config.Interface.Types}}", NAME).stdout.decode()
    assert enabled.strip() == "true [docker.logdriver/1.0]"
    container = (
        docker("run", "-d", f"--log-driver={NAME}", IMAGE, "sh", "-c", "echo from managed; echo err >&2; printf end")
        .stdout.decode()
        .strip()
    )
    try:
        assert docker("wait", container).stdout.strip() == b"0"
        assert logs(container) == (b"from managed\nend", b"err\n")
        files = list((propagated_mount() / "propagated-mount" / "files").glob(f"{container[:12]}-*.log"))
        assert len(files) == 1
        assert b'"message":"from managed"' in files[0].read_bytes()
        # The operator policy reaches the managed plugin through its state mount on the host.
        state = propagated_mount() / "propagated-mount"
        (tmp := state.parent / "policy-it.yaml").write_text("rules: [{name: all, match: {}, enforce: {redact: all}}]")
        command = [sys.executable, "-m", "logdriver", "policy", "--state-dir", str(state), "apply", str(tmp)]
        applied = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=60, check=False)
        assert applied.returncode == 0, applied.stdout + applied.stderr
        redacted = (
            docker("run", "-d", f"--log-driver={NAME}", IMAGE, "echo", "password=hunter2").stdout.decode().strip()
        )
        assert docker("wait", redacted).stdout.strip() == b"0"
        assert logs(redacted) == (b"password=[REDACTED]\n", b"")
        docker("rm", "-f", redacted)
        # Re-created (the only upgrade path without a registry), now into a custom
        # directory: the script carries the state over, so docker logs still has everything.
        build(managed)
        assert logs(container) == (b"from managed\nend", b"err\n")
        assert (propagated_mount() / "propagated-mount").resolve() == managed
        assert len(list((managed / "files").glob(f"{container[:12]}-*.log"))) == 1
    finally:
        docker("rm", "-f", container, check=False)
