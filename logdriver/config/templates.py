"""Docker's ``tag`` templates and ``labels``/``env`` extras, as the built-in drivers do them.

Tag templates are Go ``text/template``; this is the subset real configurations
use: field references (``{{.Name}}``), ``index`` into maps, and the helper
functions Docker registers (``lower``, ``upper``, ``title``, ``truncate``,
``pad``; ``split``/``join`` are rare and rejected with a clear error). A template
is parsed, with each function's arity, when the container starts; a hostile one
costs time linear in its length, which is capped. ``labels-regex`` and
``env-regex`` use RE2, as Docker's Go drivers do: linear time, no backtracking.
"""

from __future__ import annotations

import shlex
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import re2

from logdriver._records import ContainerInfo, env_map


def compile_regex(pattern: str) -> Any:
    """RE2, without the C++ library's own error log on stderr (the caller reports errors)."""
    options = re2.Options()
    options.log_errors = False
    return re2.compile(pattern, options=options)


def regex_error(exc: Exception) -> str:
    reason = exc.args[0] if exc.args else exc
    return reason.decode(errors="replace") if isinstance(reason, bytes) else str(reason)


# Bounds on what a container may ask of the renderer (its tag is rendered once, at start).
MAX_TEMPLATE_LENGTH: Final = 4096
MAX_RENDERED_LENGTH: Final = 65536


def _fields(info: ContainerInfo) -> dict[str, object]:
    image_id = info.image_id.removeprefix("sha256:")
    return {
        "ID": info.short_id,
        "FullID": info.container_id,
        "Name": info.name.removeprefix("/"),
        "ImageID": image_id[:12],
        "ImageFullID": info.image_id,
        "ImageName": info.image_name,
        "Command": " ".join([info.entrypoint, *info.args]).strip(),
        "Hostname": socket.gethostname(),
        "DaemonName": info.daemon_name,
        "ContainerID": info.container_id,
        "ContainerName": info.name,
        "ContainerImageName": info.image_name,
        "ContainerImageID": info.image_id,
        "ContainerCreated": info.created,
        "ContainerEntrypoint": info.entrypoint,
        "ContainerLabels": dict(info.labels),
        "ContainerEnv": list(info.env),
        "Config": dict(info.config),
    }


def _truncate(text: object, length: object) -> str:
    return str(text)[: int(str(length))]


# name → (function, number of arguments): Docker's templates.go helpers that take strings.
_FUNCS: Final[dict[str, tuple[Callable[..., str], int]]] = {
    "lower": (lambda s: str(s).lower(), 1),
    "upper": (lambda s: str(s).upper(), 1),
    "title": (lambda s: str(s).title(), 1),
    "truncate": (_truncate, 2),
    "pad": (lambda s, prefix, suffix: f"{prefix}{s}{suffix}" if str(s) else "", 3),
}


@dataclass(frozen=True, slots=True)
class _Action:
    words: tuple[str, ...]


def _words(action: str) -> tuple[str, ...]:
    try:
        words = tuple(shlex.split(action))
    except ValueError as exc:  # an unclosed quote
        raise ValueError(f"{{{{{action[:40]}}}}}: {exc}") from None
    if not words:
        raise ValueError("empty action {{}}")
    head, rest = words[0], words[1:]
    if not rest:
        return words
    if head == "index":
        if len(rest) != 2:
            raise ValueError("index takes a map and a key")
        return words
    if head not in _FUNCS:
        raise ValueError(f'function "{head[:40]}" not supported (use lower, upper, title, truncate, pad or index)')
    arity = _FUNCS[head][1]
    if len(rest) != arity:
        raise ValueError(f"{head} takes {arity} argument{'s' if arity > 1 else ''}, not {len(rest)}")
    if head == "truncate" and not (rest[1].isdigit() or rest[1].startswith(".")):
        raise ValueError(f"truncate needs a length, not {rest[1][:40]!r}")
    return words


@dataclass(frozen=True, slots=True)
class Template:
    """A parsed Docker ``tag`` template; parsing checks every action, rendering cannot fail on syntax."""

    source: str
    parts: tuple[str | _Action, ...]

    @classmethod
    def parse(cls, source: str) -> Template:
        """``ValueError`` names what is wrong. Linear in the template's length."""
        if len(source) > MAX_TEMPLATE_LENGTH:
            raise ValueError(f"longer than {MAX_TEMPLATE_LENGTH} characters")
        parts: list[str | _Action] = []
        pos = 0
        while (opening := source.find("{{", pos)) >= 0:
            closing = source.find("}}", opening + 2)
            if closing < 0:
                raise ValueError(f"unclosed action at character {opening}")
            if opening > pos:
                parts.append(source[pos:opening])
            action = source[opening + 2 : closing].removeprefix("-").removesuffix("-").strip()
            parts.append(_Action(_words(action)))
            pos = closing + 2
        if pos < len(source):
            parts.append(source[pos:])
        return cls(source, tuple(parts))

    def render(self, info: ContainerInfo) -> str:
        """The template with ``info``'s fields; ``ValueError`` for a field that does not exist."""
        if self.source == "{{.ID}}":  # the common case, as Docker's own fast path
            return info.short_id
        fields = _fields(info)
        out = "".join(part if isinstance(part, str) else _evaluate(part.words, fields) for part in self.parts)
        if len(out) > MAX_RENDERED_LENGTH:
            raise ValueError(f"renders to more than {MAX_RENDERED_LENGTH} characters")
        return out


def _evaluate(words: tuple[str, ...], fields: Mapping[str, object]) -> str:
    def arg(word: str) -> object:
        if word.startswith("."):
            name = word[1:]
            if name not in fields:
                raise ValueError(f"can't evaluate field {name[:40]}")
            return fields[name]
        return word

    head, rest = words[0], words[1:]
    if not rest:
        return str(arg(head))
    if head == "index":
        container = arg(rest[0])
        if not isinstance(container, Mapping):
            raise ValueError("index of a non-map")
        return str(container.get(str(arg(rest[1])), ""))
    if head == "truncate" and not str(arg(rest[1])).isdigit():
        raise ValueError("truncate needs a length")
    return _FUNCS[head][0](*(arg(w) for w in rest))


def render_tag(template: str, info: ContainerInfo) -> str:
    """Render a Docker ``tag`` template; ``ValueError`` says what is wrong or unsupported."""
    return Template.parse(template).render(info)


def extra_attributes(info: ContainerInfo, config: Mapping[str, str]) -> dict[str, str]:
    """``labels`` → ``labels-regex`` → ``env`` → ``env-regex``; later ones win (moby loginfo.go)."""
    extras: dict[str, str] = {}
    if keys := config.get("labels"):
        for key in keys.split(","):
            if key in info.labels:
                extras[key] = info.labels[key]
    if pattern := config.get("labels-regex"):
        regex = compile_regex(pattern)
        for key, value in info.labels.items():
            if regex.search(key):
                extras[key] = value
    env = env_map(info.env)
    if env:
        if keys := config.get("env"):
            for key in keys.split(","):
                if key in env:
                    extras[key] = env[key]
        if pattern := config.get("env-regex"):
            regex = compile_regex(pattern)
            for key, value in env.items():
                if regex.search(key):
                    extras[key] = value
    return extras
