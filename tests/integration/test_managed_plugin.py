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


def build(state: Path) -> None:
    env = {**os.environ, "PYTHON": sys.executable}
    subprocess.run([str(ROOT / "scripts" / "build-plugin.sh"), NAME, str(state)], check=True, env=env, timeout=900)


@pytest.fixture
def managed(tmp_path: Path) -> object:
    state = tmp_path / "state"
    build(state)
    yield state
    docker("plugin", "disable", "-f", NAME, check=False)
    docker("plugin", "rm", "-f", NAME, check=False)


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
        files = list((managed / "files").glob(f"{container[:12]}-*.log"))
        assert len(files) == 1
        assert b'"message":"from managed"' in files[0].read_bytes()
        # disable -f, rm and create again (the only upgrade path without a registry):
        # the state lives on the host bind mount, so docker logs still has everything.
        docker("plugin", "disable", "-f", NAME)
        docker("plugin", "rm", "-f", NAME)
        build(managed)
        assert logs(container) == (b"from managed\nend", b"err\n")
    finally:
        docker("rm", "-f", container, check=False)
