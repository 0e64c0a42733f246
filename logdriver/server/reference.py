"""The reference, generated: every option, environment variable and metric, from the code
that declares them (the option registry, each installed sink's config, ``METRICS``).

``python -m logdriver options --format md`` prints ``docs/reference.md``;
``--format json`` the same as data; ``--format manifest`` the ``env`` list of the
managed plugin's ``config.json``. ``tests/unit/test_reference.py`` fails when a
committed copy drifts from what the code declares (``make reference`` rewrites them).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

import orjson

from logdriver._native import (
    JSON_CAPS,
    JSON_KEYS,
    MULTILINE_RULES,
    PATTERN_FALLBACK_PREFIX,
    PROCESSING_COUNTERS,
    PROCESSING_CPU,
)
from logdriver.abc import Sink
from logdriver.config import tls
from logdriver.config.options import CONTAINER_OPTIONS, MAX_LOG_OPT_VALUE
from logdriver.config.pipeline_options import PIPELINE_OPTIONS
from logdriver.config.registry import ENGINE_KEYS, ENGINE_PREFIXES, Option
from logdriver.config.settings import PLUGIN_OPTIONS
from logdriver.config.units import MAX_DURATION
from logdriver.delivery import budget, dead_letters
from logdriver.reading import poller
from logdriver.server import metrics, unix
from logdriver.server.metrics import METRICS

# The managed plugin's own values (its state mount, where the build installs the code).
MANIFEST_VALUES: Final = {"socket": "/run/docker/plugins/logdriver.sock", "state-dir": "/state"}
MANIFEST_FIRST: Final = {
    "name": "PYTHONPATH",
    "description": "where the build installed logdriver",
    "value": "/opt/logdriver",
}


def all_options(sinks: Mapping[str, type[Sink] | Sink]) -> list[tuple[str, Option]]:
    """(owner, option) for every setting: ``plugin``, ``container``, ``pipeline`` or a sink's name."""
    out = [("plugin", option) for option in PLUGIN_OPTIONS]
    out += [("container", option) for option in CONTAINER_OPTIONS]
    out += [("pipeline", option) for option in PIPELINE_OPTIONS]
    for name, sink in sorted(sinks.items()):
        out += [(name, option) for option in sink.config.options()]
    return out


def as_data(sinks: Mapping[str, type[Sink] | Sink]) -> dict[str, Any]:
    return {
        "options": [
            {
                "name": option.name,
                "owner": owner,
                "scope": option.scope.value,
                "log_opt": option.log_opt,
                "env": option.env,
                "default": option.default,
                "accepts": option.accepts,
                "help": option.help,
                "secret": option.secret,
                "credential": option.bound,
                "destination": option.destination,
            }
            for owner, option in all_options(sinks)
        ],
        "engine_keys": sorted(ENGINE_KEYS) + [f"{prefix}*" for prefix in ENGINE_PREFIXES],
        "metrics": [{"name": m.name, "type": m.kind, "labels": list(m.labels), "help": m.help} for m in METRICS],
    }


def manifest_env(sinks: Mapping[str, type[Sink] | Sink]) -> list[dict[str, Any]]:
    """``config.json``'s ``env``: every variable an operator may ``docker plugin set``.

    Unset (``null``) means the code's default, so a sink kind's own pipeline defaults
    (a file blocks, a network sink drops) still apply; secrets are never given a value.
    """
    env: list[dict[str, Any]] = [dict(MANIFEST_FIRST)]
    for owner, option in all_options(sinks):
        if option.scope.value == "pipeline":
            description = f"default {option.name} of every sink: {option.help}"
        else:
            description = option.help if owner in ("plugin", "container") else f"{owner} sink: {option.help}"
        if option.secret:
            description += " (a secret: set it here, never as a log-opt)"
        entry: dict[str, Any] = {"name": option.env, "description": description}
        if option.fixed:
            entry["value"] = MANIFEST_VALUES[option.name]
        else:
            entry["settable"] = ["value"]
            entry["value"] = None
        env.append(entry)
    return env


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ") or " "


def _table(header: Iterable[str], rows: Iterable[Iterable[str]]) -> list[str]:
    header = list(header)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return [*lines, ""]


def _code(text: str) -> str:
    if "`" in text:  # a pattern with a backtick (Ruby's): a double-backtick code span
        return f"`` {text} ``"
    return f"`{text}`" if text else ""


def _option_rows(options: Iterable[Option]) -> list[list[str]]:
    rows = []
    for option in options:
        notes = []
        if option.secret:
            notes.append("secret: plugin-wide only")
        elif option.plugin_only:
            notes.append("plugin-wide only")
        if option.destination:
            notes.append("destination")
        if option.credential:
            notes.append("credential")
        flags = f" ({', '.join(notes)})" if notes else ""
        rows.append([_code(option.name), _code(option.default), option.accepts, option.help + flags])
    return rows


def markdown(sinks: Mapping[str, type[Sink] | Sink]) -> str:
    """``docs/reference.md``."""
    out = [
        "# Reference",
        "",
        "Generated by `python -m logdriver options --format md` from the code that declares each",
        "setting and metric; `make reference` rewrites this file and a test fails when it drifts.",
        "",
        "## Log-opts",
        "",
        "Set per container with `--log-opt name=value`. Every log-opt's plugin-wide default is",
        "the environment variable `LOGDRIVER_<NAME>` (upper case, `-` as `_`): `docker plugin set`",
        "for the managed plugin. A log-opt that is neither logdriver's nor the engine's own",
        f"({', '.join(f'`{k}`' for k in sorted(ENGINE_KEYS))}, `cache-*`) fails `docker run`, naming",
        "the closest known option. Every value is bounded: a log-opt's text is at most",
        f"{MAX_LOG_OPT_VALUE} characters, a number or size is within the range it accepts, and a",
        f"duration is at most {MAX_DURATION / (365 * 86400):g} years.",
        "",
        "### Every container",
        "",
        *_table(["log-opt", "default", "accepts", "what it does"], _option_rows(CONTAINER_OPTIONS)),
        "### Pipeline: queue, batches, retries",
        "",
        "For all of a container's sinks (`overflow=block`) or one (`fluentd-overflow=block`);",
        "plugin-wide `LOGDRIVER_<OPTION>` or `LOGDRIVER_<SINK>_<OPTION>`. Precedence: the sink's",
        "log-opt, the general log-opt, the sink's variable, the general variable, the sink kind's",
        "own default (below each sink), the default here.",
        "",
        *_table(["option", "default", "accepts", "what it does"], _option_rows(PIPELINE_OPTIONS)),
    ]
    for name, sink in sorted(sinks.items()):
        options = sink.config.options()
        if not options and not sink.pipeline_defaults:
            continue
        out += [f"### Sink `{name}`", ""]
        if sink.pipeline_defaults:
            kind = ", ".join(f"`{k}={v}`" for k, v in sorted(sink.pipeline_defaults.items()))
            out += [f"Pipeline defaults of this kind of sink: {kind}.", ""]
        if options:
            out += _table(["log-opt", "default", "accepts", "what it does"], _option_rows(options))
    out += [
        "Credentials: a *secret* is settable plugin-wide only (a log-opt shows in `docker inspect`),",
        "and the plugin-wide value of every *credential* goes only to the plugin-wide destination: a",
        "container whose log-opts name another *destination* ships there without them.",
        "",
        *_processing_reference(),
        "## Plugin-wide environment",
        "",
        "Read once at start; a bad value stops the plugin with an error naming the variable.",
        "",
        *_table(
            ["variable", "default", "accepts", "what it does"],
            [[_code(o.env), _code(o.default), o.accepts, o.help] for o in PLUGIN_OPTIONS],
        ),
        "## Metrics",
        "",
        "Served on `LOGDRIVER_METRICS_ADDRESS` at `/metrics` (Prometheus text format), beside the",
        "`process_*` metrics of the process itself.",
        "",
        *_table(
            ["metric", "type", "labels", "what it counts"],
            [[_code(m.name), m.kind, ", ".join(m.labels), m.help] for m in METRICS],
        ),
    ]
    return "\n".join(out).rstrip("\n") + "\n"


def _processing_reference() -> list[str]:
    """The multiline presets' rules and parse=json's keys, from the native stage's tables."""
    out = [
        "## Multiline presets",
        "",
        "Each preset's rules, in order: in state *from*, a line matching *pattern* (RE2; empty:",
        "any line) joins the event, which moves to *to*. *start* rules begin an event. A *held*",
        "line joins only if the line after it continues the event too. An event ends at a line",
        "that matches no rule of its state, or at once in a state no rule leaves (`end`).",
        "",
    ]
    for name, rules in MULTILINE_RULES:
        out += [f"### `multiline={name}`", ""]
        out += _table(
            ["from", "pattern", "to", "held"],
            [[state, _code(pattern) or "(any line)", to, "yes" if hold else ""] for state, pattern, to, hold in rules],
        )
    out += [
        "## parse=json keys",
        "",
        "The keys each well-known field is read from, in order: the first present wins. A value",
        "that is not a string or a number stays among the other keys.",
        "",
        *_table(["field", "keys"], [[role, ", ".join(_code(k) for k in keys)] for role, keys in JSON_KEYS]),
        "## Processing counters",
        "",
        "The `outcome` label of `logdriver_processing_events_total` (all containers) and of",
        "`logdriver_container_processing_events_total` (each running container that sets a step,",
        "with its own steps' counters), from each step's table, in the steps' order:",
        "",
        *_table(["outcome", "counts"], [[_code(name), help] for name, help in PROCESSING_COUNTERS]),
    ]
    return out


def format_size(size: int) -> str:
    """A size in the largest binary unit that divides it (``16 MiB``)."""
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if size >= 1 << shift and size % (1 << shift) == 0:
            return f"{size >> shift} {unit}"
    return f"{size} bytes"


BUDGETS_BEGIN: Final = "<!-- generated by `make reference`: budgets -->"
BUDGETS_END: Final = "<!-- end of generated budgets -->"


def _default(options: Iterable[Option], name: str) -> str:
    option = next(option for option in options if option.name == name)
    return f"`{option.env}` = `{option.default}`"


def budgets_markdown() -> str:
    """The README's budgets table: every bound on what the plugin holds, with its setting."""
    plugin, pipeline = PLUGIN_OPTIONS, PIPELINE_OPTIONS
    socket, port = unix.PLUGIN_SOCKET_LIMITS, metrics.LIMITS
    rows = [
        [
            "every memory queue, open partial line, open multiline event and line a `block` rate limit holds",
            _default(plugin, "memory-max-bytes"),
            f"a queued line costs its bytes + {budget.ENTRY_OVERHEAD}, a batch {budget.BATCH_OVERHEAD} more; "
            "a queue over it is full",
        ],
        [
            "a request in flight (lines handed to a sink, and their rendering)",
            f"its lines, and {budget.REQUEST_FACTOR} times their bytes past the first "
            f"{format_size(budget.REQUEST_FLOOR)}, against the memory budget (fixed)",
            f"the request is smaller; down to {format_size(budget.REQUEST_FLOOR)} of lines, whose rendering is "
            "fixed overhead",
        ],
        [
            "one container's queues, open lines and spools, against each budget",
            f"1/{budget.SHARE_MAX} of the memory and of the disk budget; the last 1/{budget.RESERVE} of "
            f"each only for containers holding less than 1/{budget.SMALL} (fixed)",
            "its queues are full and their `overflow` policy applies, counted; its neighbours still find room",
        ],
        [
            "one open multiline event, per stream",
            f"{_default(CONTAINER_OPTIONS, 'multiline-max-lines')}, "
            f"{_default(CONTAINER_OPTIONS, 'multiline-max-bytes')}, {_default(CONTAINER_OPTIONS, 'multiline-timeout')}",
            "it is sent marked `cut` (the rest goes on as the next event); at the timeout it is sent as it is",
        ],
        [
            "one line parsed by `parse=json`",
            f"{format_size(JSON_CAPS[0])}, depth {JSON_CAPS[1]}, {JSON_CAPS[2]} keys (fixed)",
            "it is shipped unchanged, counted (`json_over_limit`)",
        ],
        [
            "processing (multiline, `parse=json`, keep/drop, a rate limit's exempt pattern) of one container",
            f"{PROCESSING_CPU[0]:g} of a core, at most {PROCESSING_CPU[1] * 1000:g} ms at once (fixed); "
            f"a pattern's lazy DFA gives up past a constant cost per byte (fixed)",
            "its lines go on unprocessed, counted (`processing_over_cpu_budget`); a line the pattern gave "
            f"up on is matched on its first {PATTERN_FALLBACK_PREFIX} bytes, counted (`multiline_pattern_gave_up`)",
        ],
        [
            "every disk spool, spill and the dead letters",
            _default(plugin, "disk-max-bytes"),
            "a spool or spill over it is full",
        ],
        [
            "the `docker logs` store",
            _default(plugin, "store-max-bytes"),
            "the container holding the most loses its oldest segments first",
        ],
        [
            "one container's queue, per sink",
            f"{_default(pipeline, 'buffer-max-bytes')}, {_default(pipeline, 'buffer-max-entries')}",
            "with `buffer=hybrid` (the default) it spills onto disk; otherwise its `overflow` policy applies, counted",
        ],
        [
            "what one container's queue spills onto disk, per sink (`buffer=hybrid`)",
            f"{_default(pipeline, 'spill-max-bytes')}, and its share of the disk budget",
            "then its `overflow` policy applies, counted",
        ],
        [
            "bytes read from FIFOs, not yet taken by the event loop",
            f"{format_size(poller.MAX_PENDING)} per FIFO, {format_size(poller.MAX_PENDING_TOTAL)} in all (fixed)",
            "a FIFO at its limit is not read: its pipe fills and its container waits",
        ],
        [
            "dead letters, per sink and container",
            f"{format_size(dead_letters.MAX_BYTES)}, then one `.1` (fixed)",
            "inside the container's share of the disk budget; a neighbour's are never rotated away",
        ],
        [
            "a destination's reply, raw and decoded",
            "OTLP 64 KiB, Elasticsearch 16 MiB, Fluentd 64 KiB; one encoding at most (fixed)",
            "OTLP judges what it read; Elasticsearch's request fails and is retried; Fluentd's connection is dropped",
        ],
        [
            "TLS client contexts",
            f"{tls.MAX_CONTEXTS} kept, shared by every destination with the same files and settings (fixed)",
            "the least recently used goes; a destination keeps the one it has",
        ],
        [
            "plugin socket connections",
            f"{socket.max_connections}, bodies {format_size(socket.max_body)} (fixed)",
            f"a request arrives whole within {socket.request_timeout:g} s",
        ],
        [
            "metrics port connections",
            f"{port.max_connections}, bodies {format_size(port.max_body)} (fixed)",
            "the oldest connection makes room for a new one",
        ],
    ]
    lines = [BUDGETS_BEGIN, *_table(["what", "bound", "past it"], rows)]
    return "\n".join([*lines[:-1], BUDGETS_END]) + "\n"


def render(sinks: Mapping[str, type[Sink] | Sink], form: str) -> str:
    if form == "md":
        return markdown(sinks)
    if form == "json":
        return orjson.dumps(as_data(sinks), option=orjson.OPT_INDENT_2).decode() + "\n"
    if form == "manifest":
        return orjson.dumps(manifest_env(sinks), option=orjson.OPT_INDENT_2).decode() + "\n"
    raise ValueError(f"unknown format {form!r}: md, json or manifest")
