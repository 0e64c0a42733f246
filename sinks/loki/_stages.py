"""The Loki driver's pipeline stages (promtail's), as logdriver's own processing steps.

``loki-pipeline-stages`` (YAML in the option) or ``loki-pipeline-stage-file`` (a file the
plugin can read) become log-opts of the container before they are validated, so each
stage runs on the step that does its job, in Rust, off the event loop:

- ``multiline`` (``firstline``, ``max_wait_time``, ``max_lines``) → ``multiline-start``,
  ``multiline-timeout``, ``multiline-max-lines``;
- ``json`` → ``parse=json`` (every key of the line, not only ``expressions``: they go to
  structured metadata);
- ``labels`` after ``json`` → those keys are already structured metadata (per line, as
  Loki's guidance for high-cardinality values says, not labels);
- ``timestamp`` after ``json`` whose ``source`` is a time key ``parse=json`` reads;
- ``output`` after ``json`` whose ``source`` is a message key → ``loki-line=message``;
- ``drop`` (``expression``) and ``match`` with ``action: drop`` and a line filter
  (``|= "text"``, ``|~ "regex"``) → ``drop-lines``; ``match`` with ``!=``/``!~`` → ``keep-lines``;
- ``replace`` (``expression``) → ``redact-pattern`` (its first group, or the match, becomes
  ``[REDACTED]``);
- ``limit`` (``rate``, ``burst``, ``drop: true``) → ``rate-limit``, ``rate-limit-burst``;
- ``static_labels`` → more ``loki-external-labels``.

Any other stage, or a field a stage has that no step does (``source`` of ``drop``, a
``match`` selecting by labels, ``regex`` extraction), fails ``docker run`` naming it and
what to use instead. A stage file must be a regular file of at most 64 KiB; its content
never appears in an error.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Final

import yaml

from logdriver import ConfigError, read_regular

MAX_FILE: Final = 64 << 10
MAX_STAGES: Final = 64
TIME_KEYS: Final = frozenset({"time", "timestamp", "ts", "@timestamp", "@t"})  # what parse=json reads
MESSAGE_KEYS: Final = frozenset({"msg", "message", "@m"})
_LINE_FILTER: Final = re.compile(r'^\s*\{\s*\}\s*(\|=|\|~|!=|!~)\s*"((?:[^"\\]|\\.)*)"\s*$')
_INSTEAD: Final = {
    "regex": "logdriver extracts no fields by regex: use parse=json for JSON lines, drop-lines/keep-lines to filter",
    "template": "logdriver rewrites no lines by template: use redact-pattern to mask part of a line",
    "tenant": "set loki-tenant-id",
    "labeldrop": "use loki-relabel-config (action: labeldrop)",
    "metrics": "logdriver's own metrics count lines per container and sink",
    "pack": "the line goes as written; parse=json puts its keys in structured metadata",
    "decolorize": "not taken",
    "cri": "Docker's lines are not CRI lines",
    "docker": "Docker's lines arrive decoded already",
}


def _fail(stage: str, why: str) -> ConfigError:
    return ConfigError("loki-pipeline-stages", stage, why)


def read_stage_file(path: str) -> str:
    """The file's text: regular, readable, at most ``MAX_FILE`` bytes (a container names it)."""
    try:
        data = read_regular(path, MAX_FILE)
    except ValueError:
        raise ConfigError(
            "loki-pipeline-stage-file", path, f"a regular YAML file of at most {MAX_FILE >> 10} KiB"
        ) from None
    except OSError as exc:
        raise ConfigError("loki-pipeline-stage-file", path, f"a file the plugin can read ({exc.strerror})") from None
    try:
        return data.decode()
    except UnicodeDecodeError:
        raise ConfigError("loki-pipeline-stage-file", path, "a UTF-8 YAML file") from None


def stages_of(text: str, *, from_file: bool) -> list[tuple[str, dict[str, Any]]]:
    try:
        loaded: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        # A file's content never goes into an error: it may be any file the plugin can read.
        detail = "" if from_file else f" ({str(exc)[:120]})"
        raise _fail("<yaml>", f"a YAML list of promtail pipeline stages{detail}") from None
    if loaded is None:
        return []
    if not isinstance(loaded, list) or len(loaded) > MAX_STAGES:
        raise _fail("<yaml>", f"a YAML list of at most {MAX_STAGES} pipeline stages")
    stages = []
    for item in loaded:
        if not isinstance(item, dict) or len(item) != 1:
            raise _fail("<yaml>", "each stage a mapping with one key, the stage's name")
        [(name, body)] = item.items()
        stages.append((str(name), body if isinstance(body, dict) else {}))
    return stages


def _only(stage: str, body: Mapping[str, Any], allowed: set[str]) -> None:
    extra = sorted(set(body) - allowed)
    if extra:
        raise _fail(stage, f"{stage} without {', '.join(extra)} (logdriver's step for it has no such field)")


def _duration(value: Any) -> str:
    text = str(value).strip()
    return text if text and text[-1].isalpha() else f"{text}s"


def log_opts_for(stages: list[tuple[str, dict[str, Any]]]) -> dict[str, str]:
    """The log-opts that run these stages on logdriver's steps."""
    opts: dict[str, str] = {}
    drops: list[str] = []
    keeps: list[str] = []
    labels: list[str] = []
    parsed = False
    for stage, body in stages:
        if stage == "multiline":
            _only(stage, body, {"firstline", "max_wait_time", "max_lines"})
            if "firstline" not in body:
                raise _fail(stage, "multiline with firstline (the pattern that begins an event)")
            opts["multiline-start"] = str(body["firstline"])
            if "max_wait_time" in body:
                opts["multiline-timeout"] = _duration(body["max_wait_time"])
            if "max_lines" in body:
                opts["multiline-max-lines"] = str(body["max_lines"])
        elif stage == "json":
            _only(stage, body, {"expressions", "drop_malformed"})
            opts["parse"], parsed = "json", True
        elif stage == "labels":
            if not parsed:
                raise _fail(stage, "labels only after a json stage (its keys become structured metadata)")
        elif stage == "timestamp":
            _only(stage, body, {"source", "format", "fallback_formats", "location", "action_on_failure"})
            if not parsed or str(body.get("source", "")) not in TIME_KEYS:
                raise _fail(stage, f"timestamp after json, from one of {', '.join(sorted(TIME_KEYS))}")
        elif stage == "output":
            if not parsed or str(body.get("source", "")) not in MESSAGE_KEYS:
                raise _fail(stage, f"output after json, from one of {', '.join(sorted(MESSAGE_KEYS))}")
            opts["loki-line"] = "message"
        elif stage == "drop":
            _only(stage, body, {"expression", "drop_counter_reason"})
            if "expression" not in body:
                raise _fail(stage, "drop with expression (source, value, older_than and longer_than are not taken)")
            drops.append(str(body["expression"]))
        elif stage == "match":
            _only(stage, body, {"selector", "action", "drop_counter_reason"})
            found = _LINE_FILTER.match(str(body.get("selector", "")))
            if body.get("action") != "drop" or found is None:
                raise _fail(
                    stage,
                    'match with action: drop and a selector of a line filter only, such as {} |= "debug" '
                    "(a container's own log-opts already select it; nested stages are not taken)",
                )
            operator, value = found.groups()
            text = json.loads(f'"{value}"')  # LogQL strings escape as Go's (and JSON's) do
            pattern = re.escape(text) if operator in ("|=", "!=") else text
            (drops if operator.startswith("|") else keeps).append(pattern)
        elif stage == "replace":
            _only(stage, body, {"expression", "replace"})
            if "expression" not in body or "redact-pattern" in opts:
                raise _fail(stage, "one replace stage, with expression")
            opts["redact-pattern"] = str(body["expression"])
        elif stage == "limit":
            _only(stage, body, {"rate", "burst", "drop", "by_label_name", "max_distinct_labels"})
            if not body.get("drop") or "by_label_name" in body:
                raise _fail(stage, "limit with drop: true (logdriver drops and counts what is over; it never waits)")
            opts["rate-limit"] = f"{body.get('rate')}/s"
            if "burst" in body:
                opts["rate-limit-burst"] = str(body["burst"])
        elif stage == "static_labels":
            labels += [f"{name}={value}" for name, value in body.items()]
        else:
            raise _fail(stage, _INSTEAD.get(stage, "a stage logdriver maps onto its steps (docs/sinks/loki.md)"))
    if drops:
        opts["drop-lines"] = "|".join(f"(?:{p})" for p in drops)
    if keeps:
        opts["keep-lines"] = "|".join(f"(?:{p})" for p in keeps)
    if labels:
        opts["loki-external-labels"] = ",".join(labels)
    return opts


def expand(config: Mapping[str, str]) -> dict[str, str]:
    """``config`` with the stages' log-opts added; a stage's option the container set itself
    too fails, naming both."""
    text = config.get("loki-pipeline-stages", "")
    path = config.get("loki-pipeline-stage-file", "")
    if not text and not path:
        return dict(config)
    if text and path:
        raise ConfigError("loki-pipeline-stage-file", path, "unset when loki-pipeline-stages is set (one or the other)")
    stages = stages_of(read_stage_file(path), from_file=True) if path else stages_of(text, from_file=False)
    out = dict(config)
    for key, value in log_opts_for(stages).items():
        if key == "loki-external-labels":
            own = out.get(key, "container_name={{.Name}}")
            out[key] = f"{own},{value}" if own else value
        elif key in out:
            raise ConfigError(key, out[key], f"unset: loki-pipeline-stages sets it ({value[:80]})")
        else:
            out[key] = value
    return out
