"""Plugin-wide settings: environment variables only, read once at start.

Each is an ``Option`` of ``plugin`` scope in ``PLUGIN_OPTIONS``; ``Settings`` has one
field per option (its name with ``_`` for ``-``), so the table is the only declaration.
A bad value stops the plugin at start with a ``ConfigError`` naming the variable.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from logdriver._exceptions import ConfigError
from logdriver.config.options import plugin_defaults
from logdriver.config.registry import Option, Scope
from logdriver.config.units import listen_address, parse_duration, size_between


def _socket_paths(text: str) -> tuple[str, ...]:
    paths = tuple(part.strip() for part in text.split(",") if part.strip())
    if not all(os.path.isabs(path) for path in paths):
        raise ValueError(text)
    return paths


def _metrics_address(text: str) -> str:
    """Empty (no metrics port) or a valid ``host:port``."""
    if text:
        listen_address(text)
    return text


def _level(text: str) -> str:
    level = text.strip().lower() or "info"
    level = {"warn": "warning"}.get(level, level)
    if level not in ("debug", "info", "warning", "error"):
        raise ValueError(text)
    return level


def _log_format(text: str) -> str:
    kind = text.strip().lower() or "text"
    if kind not in ("text", "json"):
        raise ValueError(text)
    return kind


def _plugin(name: str, default: str, accepts: str, help: str, parse: Any = str, **flags: Any) -> Option:
    return Option(name, default, accepts, help, parse, scope=Scope.PLUGIN, **flags)


PLUGIN_OPTIONS: Final = (
    _plugin(
        "socket",
        "/run/docker/plugins/logdriver.sock",
        "an absolute path",
        "the plugin socket dockerd connects to",
        fixed=True,
    ),
    _plugin(
        "state-dir",
        "/var/lib/logdriver",
        "an absolute path",
        "FIFO registry, docker logs store, spools, dead letters (mode 0700)",
        fixed=True,
    ),
    _plugin("log-level", "info", "debug, info, warning or error", "the plugin's own log level", _level),
    _plugin(
        "log-format", "text", "text or json", "the plugin's own log: text, or one JSON object per line", _log_format
    ),
    _plugin(
        "store-max-bytes",
        "2g",
        "a size from 1m to 64Ti",
        "cap on the whole docker logs store",
        size_between(1 << 20, 64 << 40),
    ),
    _plugin("store-retention", "7d", "a duration such as 72h", "delete stored logs idle this long", parse_duration),
    _plugin("gc-interval", "10m", "a duration such as 10m", "how often the store is checked for them", parse_duration),
    _plugin(
        "docker-sockets",
        "/var/run/docker.sock",
        "absolute paths, comma-separated",
        "Docker API sockets asked which containers were removed (store garbage collection)",
        _socket_paths,
    ),
    _plugin(
        "pipe-size",
        "1Mi",
        "a size from 4Ki to 64Mi",
        "FIFO pipe size asked for (F_SETPIPE_SZ)",
        size_between(4 << 10, 64 << 20),
    ),
    _plugin(
        "read-wait",
        "250ms",
        "a duration such as 250ms",
        "longest pause of the FIFO reader between rounds: how long a quiet container's line may wait "
        "before the store and sinks see it (a busy FIFO is read every 1 ms; docker logs reads at once)",
        parse_duration,
    ),
    _plugin(
        "follow-heartbeat",
        "2s",
        "a duration such as 2s",
        "docker logs --follow: how often the store is checked for new lines",
        parse_duration,
    ),
    # dockerd sends SIGKILL 10 s after SIGTERM to a managed plugin.
    _plugin(
        "shutdown-grace", "8s", "a duration such as 8s", "how long a stopping plugin flushes sinks", parse_duration
    ),
    _plugin(
        "metrics-address",
        "",
        "host:port, such as 127.0.0.1:9323; empty: off",
        "where /metrics and /health are served",
        _metrics_address,
    ),
    _plugin(
        "health-failing-after",
        "60s",
        "a duration such as 60s",
        "/health answers 503 once a plugin-wide destination has failed this long",
        parse_duration,
    ),
    _plugin(
        "stopped-drain-max-time",
        "10m",
        "a duration such as 10m",
        "how long a stopped container's lines wait for a destination its log-opts chose (then "
        "dropped, counted, or kept in the disk spool); the plugin-wide destinations wait for good",
        parse_duration,
    ),
    _plugin(
        "memory-max-bytes",
        "256Mi",
        "a size from 64k to 64Gi",
        "memory budget of every queue and partial line, line overhead counted",
        size_between(64_000, 64 << 30),
    ),
    _plugin(
        "disk-max-bytes",
        "4g",
        "a size from 1Mi to 64Ti",
        "disk budget of every spool and the dead letters",
        size_between(1 << 20, 64 << 40),
    ),
    _plugin(
        "sink-classes",
        "",
        "name=module:Class, comma-separated",
        "sinks that are not installed as packages (development)",
    ),
)


@dataclass(frozen=True, slots=True)
class Settings:
    """Plugin-wide settings, fixed for the process lifetime: one field per ``PLUGIN_OPTIONS`` entry."""

    socket: str
    state_dir: str
    log_level: str
    log_format: str
    store_max_bytes: int
    store_retention: float
    gc_interval: float
    docker_sockets: tuple[str, ...]
    pipe_size: int
    read_wait: float
    follow_heartbeat: float
    shutdown_grace: float
    metrics_address: str
    health_failing_after: float
    stopped_drain_max_time: float
    memory_max_bytes: int
    disk_max_bytes: int
    sink_classes: str
    defaults: Mapping[str, str]  # every container option's plugin-wide default
    environ: Mapping[str, str]  # the LOGDRIVER_* variables, for per-sink and pipeline defaults

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        values = {option.name.replace("-", "_"): plugin_setting(option.name, env) for option in PLUGIN_OPTIONS}
        return cls(
            **values,
            defaults=plugin_defaults(env),
            environ={k: v for k, v in env.items() if k.startswith("LOGDRIVER_")},
        )


def plugin_setting(name: str, environ: Mapping[str, str]) -> Any:
    """One setting, parsed, before ``Settings`` exists (the log level, to report the rest)."""
    option = next(option for option in PLUGIN_OPTIONS if option.name == name)
    text = environ.get(option.env, option.default)
    try:
        return option.parse(text)
    except ValueError as exc:
        raise ConfigError(option.env, text, option.accepts) from exc


def _check_fields() -> None:
    """The table and the fields agree (checked at import: a mismatch is a bug)."""
    names = {option.name.replace("-", "_") for option in PLUGIN_OPTIONS}
    fields = {field.name for field in dataclasses.fields(Settings)} - {"defaults", "environ"}
    assert names == fields, names ^ fields


_check_fields()
