"""A container's log-opts, parsed once at StartLogging against the option registry.

Every logdriver log-opt has a plugin-wide default that an environment
variable overrides (``LOGDRIVER_`` + the option upper-cased, ``-`` → ``_``),
which is how ``docker plugin set`` configures a managed plugin. A bad value
raises ``ConfigError`` naming the option, which StartLogging returns so that
``docker run`` fails with it.

Every key must be known: logdriver's (``CONTAINER_OPTIONS`` here, the pipeline
options, each installed sink's), or the engine's own (``mode``,
``max-buffer-size``, and the ``cache-*`` keys of its dual-logging cache, which the
daemon merges into every container's map). Anything else, a typo or another
driver's option, fails ``docker run`` naming the closest known option.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import re2

from logdriver._exceptions import ConfigError, UnknownOptionError
from logdriver.config.pipeline_options import PIPELINE_OPTIONS, PipelineOptions, is_pipeline_key, pipeline_options
from logdriver.config.processing import PROCESSING_OPTIONS, Processing, processing
from logdriver.config.registry import OptionRecord, Scope, SinkConfig, closest, is_engine_key
from logdriver.config.registry import option as option_field
from logdriver.config.templates import Template, compile_regex, regex_error
from logdriver.config.units import CredentialsInValue, Explained, int_between, parse_bool, size_between


class SinkKind(Protocol):
    """What option parsing needs to know about a kind of sink."""

    @property
    def pipeline_defaults(self) -> Mapping[str, str]: ...

    @property
    def config(self) -> type[SinkConfig]: ...


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


_STORE_SIZE: Final = size_between(1000, 100 * 10**9)


def _store_size(value: str) -> int:
    """A size; -1 (the Loki driver's "unlimited") is the most the store takes."""
    return 100 * 10**9 if value.strip() == "-1" else int(_STORE_SIZE(value))


def _name_list(value: str) -> tuple[str, ...]:
    """Sink names; ``none`` alone means only the ``docker logs`` store."""
    names = tuple(n.strip() for n in value.split(",") if n.strip())
    if not names or ("none" in names and len(names) > 1):
        raise ValueError(value)
    return () if names == ("none",) else names


def _container(name: str, default: str, accepts: str, help: str, parse: Callable[[str], object]) -> Any:
    return option_field(name, default, accepts, help, parse, scope=Scope.CONTAINER)


@dataclass(frozen=True, slots=True)
class ContainerOptions(OptionRecord):
    """A container's effective logdriver options, parsed and typed: each option field
    declares its log-opt (the processing steps' are ``Processing``'s fields)."""

    sinks: tuple[str, ...] = _container(
        "sinks", "file", "a comma-separated list of sink names, or none", "where lines are shipped", _name_list
    )
    store_max_size: int = _container(
        "max-size",
        "20m",
        "a size from 1k to 100g, such as 10m, or -1 for the most",
        "docker logs store: bytes per file (-1, the Loki driver's unlimited: 100g, within the store's budget)",
        _store_size,
    )
    store_max_file: int = _container(
        "max-file",
        "5",
        "an integer from 1 to 1000",
        "docker logs store: files kept per container",
        int_between(1, 1000),
    )
    no_file: bool = _container(
        "no-file",
        "false",
        "true or false",
        "no docker logs copy for this container (the Loki driver's option)",
        parse_bool,
    )
    keep_file: bool = _container(
        "keep-file",
        "false",
        "true or false",
        "the Loki driver's option, taken with no effect: the docker logs copy goes when the "
        "container is removed, or after LOGDRIVER_STORE_RETENTION idle",
        parse_bool,
    )
    tag: str = _container("tag", "", "a Docker tag template such as {{.Name}}", "tag added to every record", _tag)
    labels: str = _container("labels", "", "comma-separated label keys", "labels copied into records", str)
    labels_regex: str = _container(
        "labels-regex", "", "an RE2 regular expression", "labels whose key matches are copied", _regex
    )
    env: str = _container("env", "", "comma-separated variable names", "env variables copied into records", str)
    env_regex: str = _container(
        "env-regex", "", "an RE2 regular expression", "env variables whose name matches are copied", _regex
    )
    partial_max_size: int = _container(
        "partial-max-size",
        "1m",
        "a size from 16k to 64m, such as 1m",
        "longest rejoined line; longer ones are cut into pieces",
        size_between(16_384, 64 << 20),
    )
    # Not options: the merged log-opts as given, and what was made of them.
    raw: Mapping[str, str] = field(default_factory=dict)
    pipelines: Mapping[str, PipelineOptions] = field(default_factory=dict)
    # The typed config of each listed sink (its own options, parsed).
    sink_configs: Mapping[str, SinkConfig] = field(default_factory=dict)
    processing: Processing | None = None  # multiline and parse=json; None: lines go as read


CONTAINER_OPTIONS: Final = (*ContainerOptions.options(), *PROCESSING_OPTIONS)
OPTIONS: Final = {option.name: option for option in CONTAINER_OPTIONS}
MAX_KEY: Final = 128  # longer log-opt keys are refused at once (the longest known is under 50)


def plugin_defaults(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The default of every option, with ``LOGDRIVER_*`` overrides applied and checked."""
    environ = os.environ if environ is None else environ
    defaults = {}
    for option in CONTAINER_OPTIONS:
        value = environ.get(option.env, option.default)
        if value:
            try:
                option.parse(value)
            except ValueError as exc:
                raise ConfigError(option.env, value, _accepts(option.accepts, exc)) from exc
        defaults[option.name] = value
    return defaults


# The longest value any log-opt takes: every option's text (a pattern, a URL list, a
# template) is far shorter, and a container must not make the plugin hold or scan more.
MAX_LOG_OPT_VALUE: Final = 8192


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
    _refuse_unknown(config, known_sinks)
    for key, text in config.items():
        if len(text) > MAX_LOG_OPT_VALUE:
            raise ConfigError(
                key, text[:40] + f"... ({len(text)} characters)", f"at most {MAX_LOG_OPT_VALUE} characters"
            )
    values: dict[str, Any] = {}
    merged = {**defaults, **{k: v for k, v in config.items() if k in OPTIONS}}
    if "sinks" not in config and (implied := _implied_sinks(config, known_sinks)):
        merged["sinks"] = implied
    for option in CONTAINER_OPTIONS:
        text = merged.get(option.name, option.default)
        try:
            values[option.name] = option.parse(text) if text or option.default else text  # "": no size, no sinks
        except ValueError as exc:
            raise ConfigError(option.name, text, _accepts(option.accepts, exc)) from exc
    sinks = values["sinks"]
    assert isinstance(sinks, tuple)
    pipelines = {}
    sink_configs = {}
    if known_sinks:
        for sink in sinks:
            if sink not in known_sinks:
                raise ConfigError("sinks", ",".join(sinks), f"names from: {', '.join(sorted(known_sinks))}")
            own, pipeline_config, chosen = _sink_config(sink, known_sinks[sink], config, environ)
            sink_configs[sink] = own
            pipelines[sink] = dataclasses.replace(
                pipeline_options(sink, known_sinks[sink].pipeline_defaults, pipeline_config, environ),
                container_destination=bool(chosen),
            )
    return ContainerOptions.from_values(
        values, raw=merged, pipelines=pipelines, sink_configs=sink_configs, processing=processing(values)
    )


def check_log_opts(config: Mapping[str, str], known_sinks: Mapping[str, SinkKind]) -> None:
    """Each value on its own, as ``parse_log_opts`` would take it (known names, bounds, no
    secret or plugin-wide-only option), without the combination: what an operator policy's
    rule is checked with before it meets a container (which checks the whole)."""
    _refuse_unknown(config, known_sinks)
    sink_options = {option.name: option for kind in known_sinks.values() for option in kind.config.options()}
    for key, text in config.items():
        if len(text) > MAX_LOG_OPT_VALUE:
            raise ConfigError(key, text[:40] + "...", f"at most {MAX_LOG_OPT_VALUE} characters")
        if not text:
            continue  # unset: the layer below decides
        declared = OPTIONS.get(key) or sink_options.get(key)
        try:
            if declared is not None and (declared.plugin_only or declared.secret):
                shown = "<hidden>" if declared.secret else text
                raise ConfigError(key, shown, f"the plugin-wide setting {declared.env}, never per container")
            if declared is not None:
                declared.parse(text)
            elif is_pipeline_key(key, known_sinks):
                sink = next((name for name in known_sinks if key.startswith(f"{name}-")), "")
                pipeline_options(sink, {}, {key: text}, {})
        except CredentialsInValue as exc:
            raise ConfigError(key, exc.redacted, exc.how) from None
        except ValueError as exc:
            raise ConfigError(key, text, _accepts(declared.accepts, exc) if declared else "a valid value") from exc


def _implied_sinks(config: Mapping[str, str], known_sinks: Mapping[str, SinkKind]) -> str:
    """The sinks a container's log-opts select without ``sinks``: a sink whose
    ``selected_by`` option they set (``loki-url``, as another driver's users write it)."""
    return ",".join(name for name, kind in known_sinks.items() if getattr(kind, "selected_by", None) in config)


def known_log_opts(known_sinks: Mapping[str, SinkKind]) -> list[str]:
    """Every log-opt name these sinks know (what a misspelt one is compared with)."""
    names = [option.name for option in CONTAINER_OPTIONS]
    names += [option.name for option in PIPELINE_OPTIONS]
    for sink, kind in sorted(known_sinks.items()):
        names += [option.name for option in kind.config.options()]  # a secret too: its refusal says why
        names += [f"{sink}-{option.name}" for option in PIPELINE_OPTIONS]
    return names


def _refuse_unknown(config: Mapping[str, str], known_sinks: Mapping[str, SinkKind]) -> None:
    """Every key is logdriver's, a sink's (a plugin-wide-only one is refused by its sink
    with its own reason), or the engine's own; anything else names the closest known one."""
    sink_keys = {option.name for kind in known_sinks.values() for option in kind.config.options()}
    for key in config:
        if len(key) > MAX_KEY:  # no option is this long: no lookup, no fuzzy match over it
            raise UnknownOptionError(key, None)
        if key in OPTIONS or key in sink_keys or is_engine_key(key) or is_pipeline_key(key, known_sinks):
            continue
        raise UnknownOptionError(key, closest(key, known_log_opts(known_sinks)))


def _sink_config(
    sink: str, kind: SinkKind, config: Mapping[str, str], environ: Mapping[str, str]
) -> tuple[SinkConfig, dict[str, str], str]:
    """One sink's own options (log-opt > LOGDRIVER_<NAME> > default), the log-opts with
    the sink's pipeline aliases turned into ``<sink>-<option>`` keys, and the option that
    made the destination the container's own ("" if it is the plugin-wide one)."""
    values: dict[str, Any] = {}
    pipeline_config = dict(config)
    chosen = _chosen_destination(kind, config, environ)
    plugin_files = _plugin_credential_files(kind, environ)
    for option in kind.config.options():
        where, text = option.name, config.get(option.name)
        if text and chosen and option.credential and _same_file(text, plugin_files):
            raise ConfigError(option.name, text, "a file of the container's own, not a plugin-wide credential")
        if text is not None and (option.plugin_only or option.secret):
            raise ConfigError(
                option.name,
                "<hidden>" if option.secret else text,
                f"no log-opt: log-opts show in docker inspect; set {option.env} plugin-wide",
            )
        if text is None:
            where, text = option.env, environ.get(option.env, option.default)
            if chosen and option.bound:
                where, text = option.name, option.default  # not the plugin-wide credential
        try:
            values[option.name] = option.value(text)
        except CredentialsInValue as exc:
            raise ConfigError(where, exc.redacted, exc.how) from None
        except ValueError as exc:
            raise ConfigError(where, "<hidden>" if option.secret else text, option.accepts) from exc
        target = f"{sink}-{option.pipeline}"
        if option.pipeline and option.name in config and target not in config:
            pipeline_config[target] = _as_text(values[option.name])
    return kind.config.from_values(values), pipeline_config, chosen


def _chosen_destination(kind: SinkKind, config: Mapping[str, str], environ: Mapping[str, str]) -> str:
    """The first option of where or how lines go (a destination, its TLS or SASL, a client
    identity) that a container's log-opts set to other than the plugin-wide value ("" when
    there is none): then the plugin-wide credentials are not the container's to use."""
    for option in kind.config.options():
        if not (option.destination or option.transport or option.credential) or option.name not in config:
            continue
        try:
            chosen = option.parse(config[option.name])
        except ValueError:
            return option.name  # refused with its reason below
        try:
            plugin_wide = option.parse(environ.get(option.env, option.default))
        except ValueError:
            plugin_wide = None
        if chosen != plugin_wide:
            return option.name
    return ""


def _plugin_credential_files(kind: SinkKind, environ: Mapping[str, str]) -> set[str]:
    """The files the plugin-wide credentials name (client certificates and keys), resolved;
    of every sink's kind, as any ``LOGDRIVER_*_TLS_CERT``/``_KEY`` variable names one."""
    names = {option.env for option in kind.config.options() if option.credential}
    names |= {name for name in environ if name.endswith(("_TLS_CERT", "_TLS_KEY"))}
    return {os.path.realpath(environ[name]) for name in names if environ.get(name, "").startswith("/")}


def _same_file(path: str, files: set[str]) -> bool:
    return bool(files) and path.startswith("/") and os.path.realpath(path) in files


def _accepts(accepts: str, exc: ValueError) -> str:
    """What an option accepts, with the parser's reason when it has one worth saying (a template's)."""
    return f"{accepts} ({str(exc)[:200]})" if isinstance(exc, Explained) else accepts


def _as_text(value: object) -> str:
    """A parsed value back in a syntax the pipeline parsers accept."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value!r}s"
    return str(value)
