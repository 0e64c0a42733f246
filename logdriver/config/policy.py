"""Operator policy: rules that select containers and set their container-scope options,
applied to running containers without recreating them (sans-IO: parsing, selection, layering).

The format (YAML, so JSON is valid too)::

    rules:
      - name: tame-noisy                       # optional; "rule-<n>" (from 1) otherwise
        match: {label: {app: noisy}}           # also name:, image:, id:; "~RE2" is a pattern
        enforce: {rate-limit: 100/s}           # the rule wins over the container's log-opts
        default: {multiline: java}             # the container's own log-opts win

A rule selects a container when every part of its ``match`` does (an empty ``match``
selects every container). A plain value is compared whole; a value that begins with ``~``
is an RE2 pattern that must match the whole value (as Prometheus's ``=~``).

Layers, lowest first: the plugin-wide defaults, the ``default`` maps of the selecting rules
(in file order), the container's log-opts, the ``enforce`` maps (in file order). Within a
layer a later rule wins. The result is validated exactly as a container's log-opts are,
so every bound and the credentials rule hold for a policy's values too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import re2
import yaml

from logdriver._exceptions import LogDriverError
from logdriver._records import ContainerInfo
from logdriver.config.registry import is_engine_key
from logdriver.config.templates import compile_regex, regex_error

MAX_POLICY_BYTES: Final = 64 << 10
MAX_RULES: Final = 256
MAX_MATCH_VALUE: Final = 1024
MAX_LABELS_PER_RULE: Final = 32
MAX_RULE_NAME: Final = 64
# A pattern is matched against a value of at most this many characters; a longer one (a
# container's label can be megabytes) never matches a pattern, so that what a selection
# costs is bounded by the operator's rules, never by the container's labels.
MAX_MATCHED_VALUE: Final = 4096
# Fixed when the container starts: its docker logs store and its frame decoder are opened then.
FIXED_AT_START: Final = frozenset({"max-size", "max-file", "no-file", "keep-file", "partial-max-size"})
ENFORCE, DEFAULT = "enforce", "default"


class PolicyError(LogDriverError):
    """A policy the plugin cannot use: the operator's fault. Nothing changes; the message
    names the rule and the option (or the part of the file) at fault."""

    def __init__(self, rule: str, option: str, reason: str) -> None:
        self.rule = rule
        self.option = option
        self.reason = reason
        where = f"rule {rule!r}" if rule else "the policy"
        what = f", option {option!r}" if option else ""
        super().__init__(f"logdriver: policy: {where}{what}: {reason}")


@dataclass(frozen=True, slots=True)
class Matcher:
    """One value to match: compared whole, or an RE2 pattern over the whole value."""

    text: str
    pattern: Any = None

    @classmethod
    def parse(cls, text: str) -> Matcher:
        if not text.startswith("~"):
            return cls(text)
        return cls(text, compile_regex(f"(?s:{text[1:]})"))

    def matches(self, value: str) -> bool:
        if self.pattern is None:
            return value == self.text
        return len(value) <= MAX_MATCHED_VALUE and self.pattern.fullmatch(value) is not None


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    labels: tuple[tuple[str, Matcher], ...] = ()
    container_name: Matcher | None = None
    image: Matcher | None = None
    container_id: Matcher | None = None
    enforce: Mapping[str, str] = field(default_factory=dict)
    default: Mapping[str, str] = field(default_factory=dict)

    def selects(self, info: ContainerInfo) -> bool:
        for key, matcher in self.labels:
            if key not in info.labels or not matcher.matches(info.labels[key]):
                return False
        if self.container_name is not None and not self.container_name.matches(info.name.removeprefix("/")):
            return False
        if self.image is not None and not self.image.matches(info.image_name):
            return False
        if self.container_id is not None:
            cid = info.container_id
            if not (self.container_id.matches(cid) or self.container_id.matches(cid[:12])):
                return False
        return True


@dataclass(frozen=True, slots=True)
class Layered:
    """A container's log-opts with the policy's layers applied, and where each came from."""

    config: Mapping[str, str]
    sources: Mapping[str, str]  # option → "log-opt" or "rule <name> (enforce|default)"
    rules: tuple[str, ...]  # the rules that select the container, in file order
    set_by: Mapping[str, str] = field(default_factory=dict)  # option → the rule that set it

    def rule_of(self, option: str) -> str:
        """The rule that set ``option`` ("" when the container's log-opts or nothing did)."""
        return self.set_by.get(option, "")


@dataclass(frozen=True, slots=True)
class Policy:
    rules: tuple[Rule, ...] = ()
    digest: str = ""  # sha256 of the file's bytes ("" for no policy)

    def layered(self, info: ContainerInfo, log_opts: Mapping[str, str]) -> Layered:
        selected = [rule for rule in self.rules if rule.selects(info)]
        sources = dict.fromkeys(log_opts, "log-opt")
        if not selected:  # most containers: their own log-opts, not copied
            return Layered(log_opts, sources, ())
        config: dict[str, str] = {}
        set_by: dict[str, str] = {}
        for rule in selected:
            for name, value in rule.default.items():
                if name not in log_opts:
                    config[name], sources[name], set_by[name] = value, f"rule {rule.name} ({DEFAULT})", rule.name
        config.update(log_opts)
        for rule in selected:
            for name, value in rule.enforce.items():
                config[name], sources[name], set_by[name] = value, f"rule {rule.name} ({ENFORCE})", rule.name
        return Layered(config, sources, tuple(rule.name for rule in selected), set_by)

    def rule_names(self) -> tuple[str, ...]:
        return tuple(rule.name for rule in self.rules)


NO_POLICY: Final = Policy()

# Checks one rule's option map as a container's log-opts (unknown names, bounds, secrets);
# raises the option's ConfigError or UnknownOptionError.
Validate = Callable[[Mapping[str, str]], None]


def parse_policy(data: bytes, validate: Validate) -> Policy:
    """The policy in ``data``; ``PolicyError`` names the rule and option at fault."""
    if len(data) > MAX_POLICY_BYTES:
        raise PolicyError("", "", f"larger than {MAX_POLICY_BYTES} bytes")
    try:
        document = yaml.safe_load(data.decode("utf-8")) if data.strip() else {}
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise PolicyError("", "", f"not YAML or JSON ({str(exc)[:300]})") from None
    if document is None:
        document = {}
    if not isinstance(document, dict) or set(document) - {"rules"}:
        raise PolicyError("", "", "a mapping with one key, rules (a list)")
    items = document.get("rules") or []
    if not isinstance(items, list):
        raise PolicyError("", "rules", "a list of rules")
    if len(items) > MAX_RULES:
        raise PolicyError("", "rules", f"at most {MAX_RULES} rules")
    rules = tuple(_rule(index, item, validate) for index, item in enumerate(items, 1))
    names = [rule.name for rule in rules]
    for name in names:
        if names.count(name) > 1:
            raise PolicyError(name, "name", "given to more than one rule")
    return Policy(rules, hashlib.sha256(data).hexdigest())


def _rule(index: int, item: object, validate: Validate) -> Rule:
    name = f"rule-{index}"
    if not isinstance(item, dict):
        raise PolicyError(name, "", "a mapping of name, match, enforce and default")
    if "name" in item:
        name = item["name"]
        if not isinstance(name, str) or not 0 < len(name) <= MAX_RULE_NAME or not name.isprintable():
            raise PolicyError(f"rule-{index}", "name", f"a printable name of 1 to {MAX_RULE_NAME} characters")
    unknown = sorted(set(item) - {"name", "match", ENFORCE, DEFAULT})
    if unknown:
        raise PolicyError(name, unknown[0], "not a part of a rule (name, match, enforce, default)")
    if ENFORCE not in item and DEFAULT not in item:
        raise PolicyError(name, "", "sets nothing: give it enforce, default or both")
    labels, matchers = _match(name, item.get("match", {}))
    return Rule(
        name,
        labels,
        enforce=_options(name, ENFORCE, item.get(ENFORCE), validate),
        default=_options(name, DEFAULT, item.get(DEFAULT), validate),
        **matchers,
    )


_MATCH_KEYS: Final = {"name": "container_name", "image": "image", "id": "container_id"}


def _match(rule: str, match: object) -> tuple[tuple[tuple[str, Matcher], ...], dict[str, Matcher]]:
    if match is None:
        match = {}
    if not isinstance(match, dict):
        raise PolicyError(rule, "match", "a mapping of label, name, image and id")
    unknown = sorted(set(match) - {"label", *_MATCH_KEYS})
    if unknown:
        raise PolicyError(rule, f"match.{unknown[0]}", "match takes label, name, image and id")
    matchers = {_MATCH_KEYS[key]: _matcher(rule, f"match.{key}", match[key]) for key in _MATCH_KEYS if key in match}
    given = match.get("label") or {}
    if not isinstance(given, dict) or len(given) > MAX_LABELS_PER_RULE:
        raise PolicyError(rule, "match.label", f"a mapping of at most {MAX_LABELS_PER_RULE} labels to values")
    labels = tuple((str(key), _matcher(rule, f"match.label.{key}", value)) for key, value in given.items())
    return labels, matchers


def _matcher(rule: str, where: str, value: object) -> Matcher:
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise PolicyError(rule, where, "a value, or ~ and an RE2 pattern")
    text = str(value)
    if len(text) > MAX_MATCH_VALUE:
        raise PolicyError(rule, where, f"at most {MAX_MATCH_VALUE} characters")
    try:
        return Matcher.parse(text)
    except re2.error as exc:
        raise PolicyError(rule, where, f"not an RE2 pattern ({regex_error(exc)})") from None


def _options(rule: str, kind: str, given: object, validate: Validate) -> dict[str, str]:
    if given is None:
        return {}
    if not isinstance(given, dict):
        raise PolicyError(rule, kind, "a mapping of log-opt names to values")
    options: dict[str, str] = {}
    for name, value in given.items():
        name = str(name)
        if name in FIXED_AT_START:
            raise PolicyError(rule, name, "fixed when the container starts (its docker logs store and decoder)")
        if is_engine_key(name):
            raise PolicyError(rule, name, "the engine's own option, fixed when the container is created")
        options[name] = _text(rule, name, value)
    try:
        validate(options)
    except LogDriverError as exc:
        option = str(getattr(exc, "option", ""))
        raise PolicyError(rule, option, str(exc).removeprefix("logdriver: ")) from None
    return options


def _text(rule: str, name: str, value: object) -> str:
    """A YAML scalar as the log-opt text Docker would pass (``true``, ``100``, ``100/s``)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise PolicyError(rule, name, "a single value (a string, number or boolean), as a log-opt")
