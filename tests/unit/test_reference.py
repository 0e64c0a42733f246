"""The committed reference is what the code declares: a hand edit or a new option without
``make reference`` fails here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from logdriver.__main__ import sink_classes
from logdriver.config.registry import Scope
from logdriver.server.reference import BUDGETS_BEGIN, BUDGETS_END, all_options, budgets_markdown, manifest_env, markdown

ROOT = Path(__file__).resolve().parents[2]
FIX = "run `make reference` and commit the result"


def test_docs_reference_matches_the_code() -> None:
    assert (ROOT / "docs" / "reference.md").read_text() == markdown(sink_classes()), FIX


def test_manifest_env_matches_the_code() -> None:
    committed = json.loads((ROOT / "config.json").read_text())["env"]
    assert committed == manifest_env(sink_classes()), FIX


def test_readme_budgets_match_the_code() -> None:
    text = (ROOT / "README.md").read_text()
    block = text[text.index(BUDGETS_BEGIN) : text.index(BUDGETS_END) + len(BUDGETS_END)] + "\n"
    assert block == budgets_markdown(), FIX


def test_every_option_is_declared_once() -> None:
    names = [(option.scope is Scope.PLUGIN, option.name) for _, option in all_options(sink_classes())]
    assert len(names) == len(set(names))
    envs = [entry["name"] for entry in manifest_env(sink_classes())]
    assert len(envs) == len(set(envs))


def test_no_secret_has_a_value_in_the_manifest() -> None:
    secrets = {option.env for _, option in all_options(sink_classes()) if option.secret}
    assert secrets, "the sinks declare their secrets"
    assert all(entry["value"] is None for entry in manifest_env(sink_classes()) if entry["name"] in secrets)


@pytest.mark.parametrize("form", ["md", "json", "manifest"])
def test_the_command_prints_each_format(form: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "logdriver", "options", "--format", form], check=True, capture_output=True, text=True
    ).stdout
    assert "fluentd_address" in out.lower().replace("-", "_")
    if form != "md":
        json.loads(out)
