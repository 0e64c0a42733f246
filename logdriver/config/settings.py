"""Plugin-wide settings: environment variables only, read once at start.

Each is a field of ``Settings`` declared as an ``Option`` of ``plugin`` scope
(``PLUGIN_OPTIONS`` is read from the fields), so the field is the only declaration.
A bad value stops the plugin at start with a ``ConfigError`` naming the variable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from logdriver._exceptions import ConfigError
from logdriver.config.options import plugin_defaults
from logdriver.config.registry import OptionRecord, Scope, option
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


def _plugin(name: str, default: str, accepts: str, help: str, parse: Any = str, **flags: Any) -> Any:
    return option(name, default, accepts, help, parse, scope=Scope.PLUGIN, **flags)


@dataclass(frozen=True, slots=True)
class Settings(OptionRecord):
    """Plugin-wide settings, fixed for the process lifetime: each field declares its
    ``LOGDRIVER_*`` variable (``plugin`` scope)."""

    socket: str = _plugin(
        "socket",
        "/run/docker/plugins/logdriver.sock",
        "an absolute path",
        "the plugin socket dockerd connects to",
        fixed=True,
    )
    state_dir: str = _plugin(
        "state-dir",
        "/var/lib/logdriver",
        "an absolute path",
        "FIFO registry, docker logs store, spools, dead letters (mode 0700)",
        fixed=True,
    )
    log_level: str = _plugin("log-level", "info", "debug, info, warning or error", "the plugin's own log level", _level)
    log_format: str = _plugin(
        "log-format", "text", "text or json", "the plugin's own log: text, or one JSON object per line", _log_format
    )
    store_max_bytes: int = _plugin(
        "store-max-bytes",
        "2g",
        "a size from 1m to 64Ti",
        "cap on the whole docker logs store",
        size_between(1 << 20, 64 << 40),
    )
    store_retention: float = _plugin(
        "store-retention", "7d", "a duration such as 72h", "delete stored logs idle this long", parse_duration
    )
    gc_interval: float = _plugin(
        "gc-interval", "10m", "a duration such as 10m", "how often the store is checked for them", parse_duration
    )
    docker_sockets: tuple[str, ...] = _plugin(
        "docker-sockets",
        "/var/run/docker.sock",
        "absolute paths, comma-separated",
        "Docker API sockets asked which containers were removed (store garbage collection)",
        _socket_paths,
    )
    redact_key: str = _plugin(
        "redact-key",
        "",
        "text",
        "the key of redact-mode=hash's HMAC-SHA256 (empty: a random key made once and kept in the "
        "state directory, readable by root only); one key for every container, so equal values stay joinable",
        secret=True,
    )
    pipe_size: int = _plugin(
        "pipe-size",
        "1Mi",
        "a size from 4Ki to 64Mi",
        "FIFO pipe size asked for (F_SETPIPE_SZ)",
        size_between(4 << 10, 64 << 20),
    )
    read_wait: float = _plugin(
        "read-wait",
        "250ms",
        "a duration such as 250ms",
        "longest pause of the FIFO reader between rounds: how long a quiet container's line may wait "
        "before the store and sinks see it (a busy FIFO is read every 1 ms; docker logs reads at once)",
        parse_duration,
    )
    follow_heartbeat: float = _plugin(
        "follow-heartbeat",
        "2s",
        "a duration such as 2s",
        "docker logs --follow: how often the store is checked for new lines",
        parse_duration,
    )
    shutdown_grace: float = _plugin(
        "shutdown-grace", "8s", "a duration such as 8s", "how long a stopping plugin flushes sinks", parse_duration
    )
    metrics_address: str = _plugin(
        "metrics-address",
        "",
        "host:port, such as 127.0.0.1:9323; empty: off",
        "where /metrics and /health are served",
        _metrics_address,
    )
    health_failing_after: float = _plugin(
        "health-failing-after",
        "60s",
        "a duration such as 60s",
        "/health answers 503 once a plugin-wide destination has failed this long",
        parse_duration,
    )
    stopped_drain_max_time: float = _plugin(
        "stopped-drain-max-time",
        "10m",
        "a duration such as 10m",
        "how long a stopped container's lines wait for a destination its log-opts chose (then "
        "dropped, counted, or kept in the disk spool); the plugin-wide destinations wait for good",
        parse_duration,
    )
    memory_max_bytes: int = _plugin(
        "memory-max-bytes",
        "256Mi",
        "a size from 64k to 64Gi",
        "memory budget of every queue and partial line, line overhead counted",
        size_between(64_000, 64 << 30),
    )
    disk_max_bytes: int = _plugin(
        "disk-max-bytes",
        "4g",
        "a size from 1Mi to 64Ti",
        "disk budget of every spool and the dead letters",
        size_between(1 << 20, 64 << 40),
    )
    sink_classes: str = _plugin(
        "sink-classes",
        "",
        "name=module:Class, comma-separated",
        "sinks that are not installed as packages (development)",
    )
    # Not options: every container option's plugin-wide default, and the LOGDRIVER_*
    # variables (for per-sink and pipeline defaults).
    defaults: Mapping[str, str] = field(default_factory=dict)
    environ: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        return cls.from_values(
            {option.name: plugin_setting(option.name, env) for option in cls.options()},
            defaults=plugin_defaults(env),
            environ={k: v for k, v in env.items() if k.startswith("LOGDRIVER_")},
        )


PLUGIN_OPTIONS: Final = Settings.options()


def plugin_setting(name: str, environ: Mapping[str, str]) -> Any:
    """One setting, parsed, before ``Settings`` exists (the log level, to report the rest)."""
    option = next(option for option in PLUGIN_OPTIONS if option.name == name)
    text = environ.get(option.env, option.default)
    try:
        return option.parse(text)
    except ValueError as exc:
        raise ConfigError(option.env, text, option.accepts) from exc
