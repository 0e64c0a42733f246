"""The wheel people install: `pip wheel .` gives one abi3 wheel for CPython >= 3.11 whose
top-level names are the project's, and it installs into a fresh venv and runs with no Rust
toolchain on PATH (its native modules are built into it)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from logdriver import __version__

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
# The sinks, as their one registration says: the entry points in pyproject.toml.
SINKS = sorted(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["logdriver.sinks"])
_NOT_SOURCES = (".git", ".venv", "build", "target", "node_modules", "*.so", "*.egg-info", ".*_cache", "__pycache__")


def test_one_abi3_wheel_that_installs_and_runs_without_rust(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    # A copy of the sources: setuptools would otherwise reuse whatever an older build left in build/.
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*_NOT_SOURCES))
    env = {**os.environ, "CARGO_TARGET_DIR": str(ROOT / "native" / "target")}  # the build cache make plugin uses
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), str(source)],
        check=True,
        env=env,
        timeout=900,
    )
    wheels = list(dist.glob("*.whl"))
    assert [w.name for w in wheels] == [f"logdriver-{__version__}-cp311-abi3-linux_x86_64.whl"]
    with zipfile.ZipFile(wheels[0]) as wheel:
        names = wheel.namelist()
    top_level = {name.split("/", 1)[0] for name in names if not name.split("/", 1)[0].endswith(".dist-info")}
    assert top_level == {"logdriver", "logdriver_sinks"}
    for sink in (name for name in SINKS if (ROOT / "sinks" / name / "native").is_dir()):
        assert any(name.startswith(f"logdriver_sinks/{sink}/_render.abi3") for name in names), sink

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    bare = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path)}  # no cargo, no rustc
    assert subprocess.run(["sh", "-c", "command -v cargo rustc"], env=bare, check=False).returncode != 0
    subprocess.run([python, "-m", "pip", "install", "-q", str(wheels[0])], check=True, env=bare, timeout=600)
    version = subprocess.run([python, "-m", "logdriver", "--version"], env=bare, capture_output=True, text=True)
    assert version.stdout.strip() == f"logdriver {__version__}"
    loaded = subprocess.run(
        [python, "-c", "from logdriver.__main__ import load_sinks; from logdriver import Settings; "
         "print(sorted(load_sinks(Settings.from_env({'LOGDRIVER_STATE_DIR': '/tmp/unused'}))))"],
        env=bare, capture_output=True, text=True, check=True, cwd=tmp_path,
    )  # fmt: skip
    assert loaded.stdout.strip() == str(SINKS)
