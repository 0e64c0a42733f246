"""Every setting is declared once, here or in a sink's config: an ``Option``.

An option has a scope, a default, a parser, help text, and whether it is a secret. It is
declared as a field of the record that holds its parsed value (an ``OptionRecord``):
``Settings`` (plugin), ``ContainerOptions`` and ``Processing`` (container),
``PipelineOptions`` (pipeline), each sink's ``SinkConfig`` (sink); a new option is one
field. Everything else is derived from these declarations: log-opt validation, the
``LOGDRIVER_*`` environment variables, each sink's typed config object, the
reference tables in ``docs/reference.md`` and the settable variables of the
managed plugin's ``config.json`` (``python -m logdriver options``).

Scopes:

- ``plugin``: an environment variable only (``LOGDRIVER_STATE_DIR``), fixed for the
  process;
- ``container``: a log-opt; ``LOGDRIVER_<NAME>`` sets its plugin-wide default;
- ``pipeline``: a log-opt for all of a container's sinks (``overflow``) or for one
  (``fluentd-overflow``); ``LOGDRIVER_[<SINK>_]<NAME>`` set plugin-wide defaults;
- ``sink``: a log-opt owned by one kind of sink (``es-url``), declared as a field of
  that sink's ``SinkConfig``; ``LOGDRIVER_<NAME>`` sets its plugin-wide default.

One rule for credentials, in every sink: a ``secret`` is settable plugin-wide only (a
log-opt shows in ``docker inspect``), and the plugin-wide value of every ``credential``
(secrets, user names, client certificates) goes only to the plugin-wide destination.
A container whose log-opts name another destination, or reach it another way (an option
marked ``destination``, ``transport`` or ``credential``, set to a value other than the
plugin-wide one) ships without them; and no container may name a plugin-wide credential
file (a client key) for its own use.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Final, TypeVar


class Scope(enum.Enum):
    PLUGIN = "plugin"
    CONTAINER = "container"
    PIPELINE = "pipeline"
    SINK = "sink"


def env_name(*parts: str) -> str:
    """``LOGDRIVER_`` and the parts upper-cased, ``-`` as ``_``: ``env_name("es", "url")``."""
    return "LOGDRIVER_" + "_".join(part.upper().replace("-", "_") for part in parts)


@dataclass(frozen=True, slots=True)
class Option:
    """One setting: its name (a log-opt name; for ``plugin`` scope, the variable's
    name without ``LOGDRIVER_``), default, what it accepts, and what it does."""

    name: str
    default: str
    accepts: str
    help: str
    parse: Callable[[str], object] = str
    scope: Scope = Scope.SINK
    pipeline: str = ""  # the pipeline option this sink option sets (fluentd-buffer-limit)
    secret: bool = False  # never logged or shown; plugin-wide only; a credential
    plugin_only: bool = False  # settable as LOGDRIVER_<NAME> only, never as a log-opt
    destination: bool = False  # says where lines go (es-url, kafka-brokers, fluentd-address)
    transport: bool = False  # says how the destination is reached and trusted (TLS, SASL)
    credential: bool = False  # its plugin-wide value goes only to the plugin-wide destination
    fixed: bool = False  # plugin scope: set by the managed plugin's manifest, not by the operator

    @property
    def env(self) -> str:
        return env_name(self.name)

    @property
    def bound(self) -> bool:
        """Whether the plugin-wide value is withheld from a container-chosen destination."""
        return self.secret or self.credential

    @property
    def log_opt(self) -> bool:
        """Whether a container may set it with ``--log-opt``."""
        return self.scope is not Scope.PLUGIN and not (self.secret or self.plugin_only)

    def value(self, text: str) -> object:
        """The parsed value; an empty text is "not set" (None) unless the option is plain text."""
        return self.parse(text) if text or self.parse is str else None


def option(
    name: str,
    default: str,
    accepts: str,
    help: str,
    parse: Callable[[str], object] = str,
    **flags: Any,
) -> Any:
    """Declare an option as a field of an ``OptionRecord`` (a sink's ``SinkConfig``, the
    processing steps' ``Processing``): the field holds the parsed value."""
    return dataclasses.field(metadata={"option": Option(name, default, accepts, help, parse, **flags)})


Record = TypeVar("Record", bound="OptionRecord")


@dataclass(frozen=True, slots=True)
class OptionRecord:
    """Typed, frozen option values: subclass as a frozen dataclass whose fields are declared
    with ``option(...)``. The field is the declaration: a new option is one field."""

    @classmethod
    def options(cls) -> tuple[Option, ...]:
        return tuple(field.metadata["option"] for field in _option_fields(cls))

    @classmethod
    def option_of(cls, field_name: str) -> Option:
        """The option a field declares (``tls_ca`` → ``otlp-tls-ca``): to name it in a message."""
        for field in _option_fields(cls):
            if field.name == field_name:
                return field.metadata["option"]  # type: ignore[no-any-return]
        raise KeyError(field_name)

    def get(self, name: str) -> object:
        """An option's value by its log-opt name (for code that walks the options)."""
        for field in _option_fields(type(self)):
            if field.metadata["option"].name == name:
                return getattr(self, field.name)
        raise KeyError(name)

    @classmethod
    def from_environ(cls: type[Record], environ: Mapping[str, str]) -> Record:
        """The plugin-wide values: each option from ``LOGDRIVER_<NAME>`` or its default, as a
        container with none of these log-opts gets it. ValueError if a setting is bad."""
        return cls.from_values({o.name: o.value(environ.get(o.env, o.default)) for o in cls.options()})

    @classmethod
    def from_values(cls: type[Record], values: Mapping[str, object], **others: Any) -> Record:
        """From parsed values by option name (what ``parse_log_opts`` resolved); ``others``
        are the record's fields that are not options."""
        return cls(**{f.name: values[f.metadata["option"].name] for f in _option_fields(cls)}, **others)


def _option_fields(record: type[OptionRecord]) -> list[dataclasses.Field[Any]]:
    """The fields that declare an option (a record may hold others, such as a derived flag)."""
    return [field for field in dataclasses.fields(record) if "option" in field.metadata]


Config = TypeVar("Config", bound="SinkConfig")


@dataclass(frozen=True, slots=True)
class SinkConfig(OptionRecord):
    """A sink's typed, frozen options for one container; subclass as a frozen dataclass
    whose fields are declared with ``option(...)``."""

    prefix: ClassVar[str] = ""


# Keys the engine itself puts in every container's log-opts: the delivery mode, and its
# dual-logging cache's settings (merged from the daemon's defaults even for other drivers).
ENGINE_KEYS: Final = frozenset({"mode", "max-buffer-size"})
ENGINE_PREFIXES: Final = ("cache-",)


def is_engine_key(key: str) -> bool:
    return key in ENGINE_KEYS or key.startswith(ENGINE_PREFIXES)


def closest(name: str, known: Sequence[str]) -> str | None:
    """The known option a misspelt one most likely meant (``fluentd-adress``), if any."""
    matches = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
    return matches[0] if matches else None
