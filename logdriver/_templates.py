"""Docker's ``tag`` templates and ``labels``/``env`` extras, as the built-in drivers do them.

Tag templates are Go ``text/template``; this is the subset real configurations
use: field references (``{{.Name}}``), ``index`` into maps, and the helper
functions Docker registers (``lower``, ``upper``, ``title``, ``truncate``,
``pad``, ``split``/``join`` are rare and rejected with a clear error).
"""

from __future__ import annotations

import re
import shlex
import socket
from collections.abc import Callable, Mapping

from ._records import ContainerInfo, env_map

_ACTION = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}")


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


_FUNCS: dict[str, Callable[..., str]] = {
    "lower": lambda s: str(s).lower(),
    "upper": lambda s: str(s).upper(),
    "title": lambda s: str(s).title(),
    "truncate": lambda s, n: str(s)[: int(n)],
    "pad": lambda s, prefix, suffix: f"{prefix}{s}{suffix}" if str(s) else "",
}


def _evaluate(action: str, fields: Mapping[str, object]) -> str:
    words = shlex.split(action)
    if not words:
        raise ValueError("empty action")

    def arg(word: str) -> object:
        if word.startswith("."):
            name = word[1:]
            if name not in fields:
                raise ValueError(f"can't evaluate field {name}")
            return fields[name]
        if word.isdigit():
            return int(word)
        return word

    head, rest = words[0], words[1:]
    if not rest:
        return str(arg(head))
    if head == "index":
        if len(rest) != 2:
            raise ValueError("index takes a map and a key")
        container = arg(rest[0])
        if not isinstance(container, Mapping):
            raise ValueError("index of a non-map")
        return str(container.get(str(arg(rest[1])), ""))
    func = _FUNCS.get(head)
    if func is None:
        raise ValueError(f'function "{head}" not supported')
    return func(*(arg(w) for w in rest))


def render_tag(template: str, info: ContainerInfo) -> str:
    """Render a Docker ``tag`` template; ``ValueError`` says what is unsupported."""
    if template == "{{.ID}}":  # the common case, as Docker's own fast path
        return info.short_id
    fields = _fields(info)
    return _ACTION.sub(lambda m: _evaluate(m.group(1), fields), template)


def extra_attributes(info: ContainerInfo, config: Mapping[str, str]) -> dict[str, str]:
    """``labels`` → ``labels-regex`` → ``env`` → ``env-regex``; later ones win (moby loginfo.go)."""
    extras: dict[str, str] = {}
    if keys := config.get("labels"):
        for key in keys.split(","):
            if key in info.labels:
                extras[key] = info.labels[key]
    if pattern := config.get("labels-regex"):
        regex = re.compile(pattern)
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
            regex = re.compile(pattern)
            for key, value in env.items():
                if regex.search(key):
                    extras[key] = value
    return extras
