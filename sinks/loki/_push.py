"""Sans-IO Loki push: the push URL, a container's label set, and the verdict on a reply.

Verdicts, as Loki and the Loki driver answer them: 2xx is delivered; 429 and 5xx are
retried, after ``Retry-After`` when the server gives one; 400 (an entry out of order,
too old or too long, a bad label set) and 413 (the push is over the server's limit)
are refused for good, with the server's reason; a redirect is refused too (a push URL
that moved is a configuration to fix, not to follow with the operator's credentials).
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

import orjson

from logdriver.config import CredentialsInValue, Template
from logdriver.replies import retry_after

MAX_REASON: Final = 500  # characters of a server's message kept in a dead letter
MAX_LABELS: Final = 64  # labels of one stream; Loki's own default limit is 15
MAX_LABEL_VALUE: Final = 2048  # characters; Loki's own default limit is 2048 too
_LABEL_NAME: Final = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


def push_url(value: str) -> str:
    """The full push URL, as the Loki driver's ``loki-url`` (``http://host:3100/loki/api/v1/push``)."""
    url = urllib.parse.urlsplit(value.strip())
    if url.username is not None or url.password is not None:
        redacted = url._replace(netloc=f"***@{url.hostname or ''}{f':{url.port}' if url.port else ''}")
        raise CredentialsInValue(
            urllib.parse.urlunsplit(redacted),
            "a push URL without user:password: set LOGDRIVER_LOKI_USERNAME and LOGDRIVER_LOKI_PASSWORD "
            "plugin-wide (docker plugin set, or the plugin's environment); they go only to that URL",
        )
    if url.scheme not in ("http", "https") or not url.hostname or url.fragment:
        raise ValueError(value)
    return urllib.parse.urlunsplit((url.scheme, url.netloc, url.path or "/loki/api/v1/push", url.query, ""))


def label_name(raw: str) -> str:
    """A Prometheus label name: characters outside ``[a-zA-Z0-9_]`` become ``_``."""
    if _LABEL_NAME.fullmatch(raw):
        return raw
    name = re.sub(r"[^a-zA-Z0-9_]", "_", raw)
    return name if name and not name[0].isdigit() else f"_{name}"


def external_labels(text: str) -> tuple[tuple[str, Template], ...]:
    """``k=v,k2=v2`` (values may hold Docker tag templates, rendered per container)."""
    pairs = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = item.partition("=")
        if not sep or not _LABEL_NAME.fullmatch(name.strip()):
            raise ValueError("name=value pairs, names of [a-zA-Z_][a-zA-Z0-9_]*")
        pairs.append((name.strip(), Template.parse(value.strip())))
    if len(pairs) > MAX_LABELS:
        raise ValueError(f"at most {MAX_LABELS} labels")
    return tuple(pairs)


@dataclass(frozen=True, slots=True)
class LabelSet:
    """A stream's labels, sorted by name, in both encodings a push carries them in."""

    pairs: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, labels: Mapping[str, str]) -> LabelSet:
        pairs = sorted((name, value[:MAX_LABEL_VALUE]) for name, value in labels.items() if value)
        return cls(tuple(pairs[:MAX_LABELS]))

    def text(self) -> str:
        """``{a="1", b="2"}``, values escaped as Prometheus writes them."""
        return "{" + ", ".join(f'{name}="{_escape(value)}"' for name, value in self.pairs) + "}"

    def json(self) -> bytes:
        return orjson.dumps(dict(self.pairs))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


@dataclass(frozen=True, slots=True)
class Verdict:
    """What one push's reply means for all of its lines."""

    retry: bool = False
    retry_after: float | None = None
    rejected: bool = False
    reason: str = ""


def _reason(body: bytes) -> str:
    return body[: 4 * MAX_REASON].decode("utf-8", "replace").strip()[:MAX_REASON]


def judge(status: int, body: bytes, headers: Mapping[str, str]) -> Verdict:
    """The verdict on one push."""
    if 200 <= status < 300:
        return Verdict()
    if status == 429 or status >= 500:
        return Verdict(retry=True, retry_after=retry_after(headers.get("retry-after")), reason=f"HTTP {status}")
    if 300 <= status < 400:
        where = headers.get("location", "?")[:200]
        return Verdict(rejected=True, reason=f"HTTP {status}: redirected to {where}; set loki-url there")
    return Verdict(rejected=True, reason=f"HTTP {status}: {_reason(body) or 'refused'}")


def compose_labels(container_labels: Mapping[str, str]) -> Iterable[tuple[str, str]]:
    """The labels the Loki driver adds from Compose's and Swarm's container labels."""
    for label, name in (
        ("com.docker.compose.project", "compose_project"),
        ("com.docker.compose.service", "compose_service"),
        ("com.docker.stack.namespace", "swarm_stack"),
        ("com.docker.swarm.service.name", "swarm_service"),
    ):
        if value := container_labels.get(label):
            yield name, value
