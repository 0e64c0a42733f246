"""Per-container log-opts and plugin-wide settings: one table, parsed once.

Every logdriver log-opt has a plugin-wide default that an environment
variable overrides (``LOGDRIVER_`` + the option upper-cased, ``-`` → ``_``),
which is how ``docker plugin set`` configures a managed plugin. A bad value
raises ``ConfigError`` naming the option, which StartLogging returns so that
``docker run`` fails with it.

Keys that are not logdriver's pass: the daemon merges its own (``mode``,
``max-buffer-size``, ``cache-*``) and its default log-opts into every
container's map. A key in logdriver's namespace that logdriver does not know
is a typo and is rejected.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import re2

from logdriver._exceptions import ConfigError, UnknownOptionError
from logdriver.config.pipeline_options import PIPELINE_OPTIONS, PipelineOptions, is_pipeline_key, pipeline_options
from logdriver.config.templates import Template, compile_regex, regex_error
from logdriver.config.units import Explained, int_between, listen_address, parse_duration, positive_size, size_between


@dataclass(frozen=True, slots=True)
class OptionSpec:
    name: str
    default: str
    accepts: str
    help: str


@dataclass(frozen=True, slots=True)
class SinkOption:
    """A log-opt that belongs to one kind of sink (``fluentd-address``).

    Its plugin-wide default can be replaced with ``LOGDRIVER_<NAME>``, the way
    secrets are kept out of ``docker inspect``. ``pipeline`` names the pipeline
    option it sets for this sink, for Docker option names that mean one
    (``fluentd-buffer-limit`` is ``fluentd-buffer-max-entries``).

    Credentials stay where the operator put them (one rule for every sink): a
    ``secret`` is settable plugin-wide only, and the plugin-wide value of every
    ``credential`` (secrets, client certificates) is used only for the plugin-wide
    destination. A container whose log-opts name another destination (an option
    marked ``destination``, set to another value) ships there without them.
    """

    name: str
    default: str
    accepts: str
    help: str
    parse: Callable[[str], object] = str
    pipeline: str = ""
    secret: bool = False  # never logged or shown; plugin-wide only; a credential
    # Settable only plugin-wide (``LOGDRIVER_<NAME>``): a log-opt shows in ``docker inspect``.
    plugin_only: bool = False
    destination: bool = False  # says where lines go (es-url, kafka-brokers, fluentd-address)
    credential: bool = False  # its plugin-wide value goes only to the plugin-wide destination

    @property
    def bound(self) -> bool:
        """Whether the plugin-wide value is withheld from a container-chosen destination."""
        return self.secret or self.credential


class SinkKind(Protocol):
    """What option parsing needs to know about a kind of sink."""

    @property
    def pipeline_defaults(self) -> Mapping[str, str]: ...

    @property
    def options(self) -> Sequence[SinkOption]: ...


def _regex(value: str) -> str:
    """RE2 syntax, as Docker's Go drivers use: matching is linear in the input, whatever the pattern."""
    if len(value) > 4096:
        raise Explained("longer than 4096 characters")
    try:
        compile_regex(value)
    except re2.error as exc:
        raise Explained(regex_error(exc)) from None
    return value


def _tag(value: str) -> str:
    try:
        Template.parse(value)
    except ValueError as exc:
        raise Explained(str(exc)) from None
    return value


def _name_list(value: str) -> tuple[str, ...]:
    """Sink names; ``none`` alone means only the ``docker logs`` store."""
    names = tuple(n.strip() for n in value.split(",") if n.strip())
    if not names or ("none" in names and len(names) > 1):
        raise ValueError(value)
    return () if names == ("none",) else names


_Parser = Callable[[str], object]

OPTIONS: Final[dict[str, tuple[OptionSpec, _Parser]]] = {
    spec.name: (spec, parser)
    for spec, parser in list[tuple[OptionSpec, _Parser]](
        [
            (
                OptionSpec("sinks", "file", "a comma-separated list of sink names, or none", "where lines are shipped"),
                _name_list,
            ),
            (
                OptionSpec(
                    "max-size", "20m", "a size from 1k to 100g, such as 10m", "docker logs store: bytes per file"
                ),
                size_between(1000, 100 * 10**9),
            ),
            (
                OptionSpec("max-file", "5", "an integer from 1 to 1000", "docker logs store: files kept per container"),
                int_between(1, 1000),
            ),
            (OptionSpec("tag", "", "a Docker tag template such as {{.Name}}", "tag added to every record"), _tag),
            (OptionSpec("labels", "", "comma-separated label keys", "labels copied into records"), str),
            (
                OptionSpec("labels-regex", "", "an RE2 regular expression", "labels whose key matches are copied"),
                _regex,
            ),
            (OptionSpec("env", "", "comma-separated variable names", "env variables copied into records"), str),
            (
                OptionSpec("env-regex", "", "an RE2 regular expression", "env variables whose name matches are copied"),
                _regex,
            ),
            (
                OptionSpec(
                    "partial-max-size",
                    "1m",
                    "a size from 16k to 64m, such as 1m",
                    "longest rejoined line; longer ones are cut into pieces",
                ),
                size_between(16_384, 64 << 20),
            ),
        ]
    )
}

# Prefixes that belong to logdriver itself: an unknown key with one of them is a typo.
# Each installed sink adds its own (its name, and its options' first words: fluentd-, es-).
OWN_PREFIXES: Final = ("partial-", "buffer-", "batch-", "retry-", "spool-", "store-")
# Keys the daemon adds or that belong to Docker's own drivers; accepted silently.
DOCKER_KEYS: Final = frozenset(
    {"mode", "max-buffer-size", "cache-disabled", "cache-max-size", "cache-max-file", "cache-compress", "compress"}
)


def env_name(option: str) -> str:
    return "LOGDRIVER_" + option.upper().replace("-", "_")


def plugin_defaults(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The default of every option, with ``LOGDRIVER_*`` overrides applied and checked."""
    environ = os.environ if environ is None else environ
    defaults = {}
    for name, (spec, parser) in OPTIONS.items():
        value = environ.get(env_name(name), spec.default)
        if value:
            try:
                parser(value)
            except ValueError as exc:
                raise ConfigError(env_name(name), value, _accepts(spec.accepts, exc)) from exc
        defaults[name] = value
    return defaults


@dataclass(frozen=True, slots=True)
class ContainerOptions:
    """A container's effective logdriver options, parsed and typed."""

    raw: Mapping[str, str]
    sinks: tuple[str, ...]
    store_max_size: int
    store_max_file: int
    tag: str
    partial_max_size: int
    ignored: tuple[str, ...]
    pipelines: Mapping[str, PipelineOptions]
    # Parsed sink-owned options of each listed sink: sink name → option name → value.
    sink_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


def parse_log_opts(
    config: Mapping[str, str],
    defaults: Mapping[str, str],
    known_sinks: Mapping[str, SinkKind] | None = None,
    environ: Mapping[str, str] | None = None,
) -> ContainerOptions:
    """Validate a container's log-opts (``Info.Config``) over the plugin defaults.

    ``known_sinks`` maps each sink name to its kind (pipeline defaults and own
    options); ``environ`` holds the ``LOGDRIVER_*`` variables for their defaults.
    """
    known_sinks = known_sinks or {}
    environ = environ or {}
    sink_keys = {option.name for kind in known_sinks.values() for option in kind.options}
    own_prefixes = (
        *OWN_PREFIXES,
        *{f"{name}-" for name in known_sinks},
        *{key.split("-", 1)[0] + "-" for key in sink_keys},
    )
    ignored = []
    for key in config:
        if key in OPTIONS or key in DOCKER_KEYS or key in sink_keys or is_pipeline_key(key, known_sinks):
            continue
        if key.startswith(own_prefixes):
            raise UnknownOptionError(key, sorted([*OPTIONS, *PIPELINE_OPTIONS, *sink_keys]))
        ignored.append(key)
    values: dict[str, Any] = {}
    merged = {**defaults, **{k: v for k, v in config.items() if k in OPTIONS}}
    for name, (spec, parser) in OPTIONS.items():
        text = merged.get(name, spec.default)
        try:
            values[name] = parser(text) if text or spec.default else text  # "" is no size, no sink list
        except ValueError as exc:
            raise ConfigError(name, text, _accepts(spec.accepts, exc)) from exc
    sinks = values["sinks"]
    assert isinstance(sinks, tuple)
    pipelines = {}
    sink_options = {}
    if known_sinks:
        for sink in sinks:
            if sink not in known_sinks:
                raise ConfigError("sinks", ",".join(sinks), f"names from: {', '.join(sorted(known_sinks))}")
            own, pipeline_config = _sink_options(sink, known_sinks[sink], config, environ)
            sink_options[sink] = own
            pipelines[sink] = pipeline_options(sink, known_sinks[sink].pipeline_defaults, pipeline_config, environ)
    return ContainerOptions(
        raw=merged,
        sinks=sinks,
        store_max_size=int(values["max-size"]),
        store_max_file=int(values["max-file"]),
        tag=str(values["tag"]),
        partial_max_size=int(values["partial-max-size"]),
        ignored=tuple(ignored),
        pipelines=pipelines,
        sink_options=sink_options,
    )


def _sink_options(
    sink: str, kind: SinkKind, config: Mapping[str, str], environ: Mapping[str, str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """One sink's own options (log-opt > LOGDRIVER_<NAME> > default), and the
    log-opts with the sink's pipeline aliases turned into ``<sink>-<option>`` keys."""
    values: dict[str, Any] = {}
    pipeline_config = dict(config)
    chosen = _chosen_destination(kind, config, environ)
    for option in kind.options:
        where, text = option.name, config.get(option.name)
        if text is not None and (option.plugin_only or option.secret):
            raise ConfigError(
                option.name,
                "<hidden>" if option.secret else text,
                f"no log-opt: log-opts show in docker inspect; set {env_name(option.name)} plugin-wide",
            )
        if text is None:
            where, text = env_name(option.name), environ.get(env_name(option.name), option.default)
            if chosen and option.bound:
                where, text = option.name, option.default  # not the plugin-wide credential
        try:
            values[option.name] = option.parse(text) if text or option.parse is str else None
        except ValueError as exc:
            raise ConfigError(where, "<hidden>" if option.secret else text, option.accepts) from exc
        target = f"{sink}-{option.pipeline}"
        if option.pipeline and option.name in config and target not in config:
            pipeline_config[target] = _as_text(values[option.name])
    return values, pipeline_config


def _chosen_destination(kind: SinkKind, config: Mapping[str, str], environ: Mapping[str, str]) -> str:
    """The first destination option a container's log-opts set to somewhere other than
    the plugin-wide destination ("" when there is none)."""
    for option in kind.options:
        if not option.destination or option.name not in config:
            continue
        try:
            chosen = option.parse(config[option.name])
        except ValueError:
            return option.name  # refused with its reason below
        try:
            plugin_wide = option.parse(environ.get(env_name(option.name), option.default))
        except ValueError:
            plugin_wide = None
        if chosen != plugin_wide:
            return option.name
    return ""


def _accepts(accepts: str, exc: ValueError) -> str:
    """What an option accepts, with the parser's reason when it has one worth saying (a template's)."""
    return f"{accepts} ({str(exc)[:200]})" if isinstance(exc, Explained) else accepts


def _socket_paths(text: str) -> list[str]:
    paths = [part.strip() for part in text.split(",") if part.strip()]
    if not all(os.path.isabs(path) for path in paths):
        raise ValueError(text)
    return paths


def _metrics_address(get: Callable[[str, str, Callable[[str], object], str], Any], env: Mapping[str, str]) -> str:
    """Empty (no metrics port) or a valid ``host:port``: a bad one is a configuration error at start."""
    text = env.get("LOGDRIVER_METRICS_ADDRESS", "")
    if text:
        get("LOGDRIVER_METRICS_ADDRESS", text, listen_address, "host:port, such as 127.0.0.1:9323")
    return text


def _as_text(value: object) -> str:
    """A parsed value back in a syntax the pipeline parsers accept."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value!r}s"
    return str(value)


@dataclass(frozen=True, slots=True)
class Settings:
    """Plugin-wide settings (environment variables), fixed for the process lifetime."""

    socket_path: str
    state_dir: str
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
    memory_max_bytes: int
    disk_max_bytes: int
    defaults: Mapping[str, str]
    environ: Mapping[str, str]  # the LOGDRIVER_* variables, for per-sink pipeline defaults

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        state_dir = env.get("LOGDRIVER_STATE_DIR", "/var/lib/logdriver")

        def get(name: str, default: str, parse: Callable[[str], object], accepts: str) -> Any:
            value = env.get(name, default)
            try:
                return parse(value)
            except ValueError as exc:
                raise ConfigError(name, value, accepts) from exc

        return cls(
            socket_path=env.get("LOGDRIVER_SOCKET", "/run/docker/plugins/logdriver.sock"),
            state_dir=state_dir,
            store_max_bytes=int(get("LOGDRIVER_STORE_MAX_BYTES", "2g", positive_size, "a size such as 2g")),
            store_retention=float(get("LOGDRIVER_STORE_RETENTION", "7d", parse_duration, "a duration such as 72h")),
            gc_interval=float(get("LOGDRIVER_GC_INTERVAL", "10m", parse_duration, "a duration such as 10m")),
            docker_sockets=tuple(
                get(
                    "LOGDRIVER_DOCKER_SOCKETS", "/var/run/docker.sock", _socket_paths, "absolute paths, comma-separated"
                )
            ),
            pipe_size=int(get("LOGDRIVER_PIPE_SIZE", "1Mi", positive_size, "a size such as 1Mi")),
            read_wait=float(get("LOGDRIVER_READ_WAIT", "100ms", parse_duration, "a duration such as 100ms")),
            follow_heartbeat=float(get("LOGDRIVER_FOLLOW_HEARTBEAT", "2s", parse_duration, "a duration such as 2s")),
            # dockerd sends SIGKILL 10 s after SIGTERM to a managed plugin.
            shutdown_grace=float(get("LOGDRIVER_SHUTDOWN_GRACE", "8s", parse_duration, "a duration such as 8s")),
            metrics_address=_metrics_address(get, env),
            health_failing_after=float(
                get("LOGDRIVER_HEALTH_FAILING_AFTER", "60s", parse_duration, "a duration such as 60s")
            ),
            # Shared by every container's memory queues and partial lines, entry overhead counted.
            memory_max_bytes=int(get("LOGDRIVER_MEMORY_MAX_BYTES", "256Mi", positive_size, "a size such as 256Mi")),
            # Shared by every disk spool and the dead letters (the store has its own cap).
            disk_max_bytes=int(get("LOGDRIVER_DISK_MAX_BYTES", "4g", positive_size, "a size such as 4g")),
            defaults=plugin_defaults(env),
            environ={k: v for k, v in env.items() if k.startswith("LOGDRIVER_")},
        )
