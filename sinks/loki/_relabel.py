"""``loki-relabel-config``: Prometheus ``relabel_configs`` over a container's labels, once.

As the Loki driver applies it: the rules run in order over the stream's label set when
the container starts; ``keep`` and ``drop`` may drop the whole stream (the container's
lines are then not pushed, and counted). Actions: ``replace`` (the default), ``keep``,
``drop``, ``labelmap``, ``labeldrop``, ``labelkeep``; any other fails ``docker run``
naming it. Regexes are RE2 and anchored at both ends, as Prometheus's are.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import re2
import yaml

ACTIONS: Final = ("replace", "keep", "drop", "labelmap", "labeldrop", "labelkeep")
MAX_RULES: Final = 64
_GO_GROUP: Final = re.compile(r"\$(?:\$|\{(\w+)\}|(\w+))")


@dataclass(frozen=True, slots=True)
class Rule:
    action: str
    source_labels: tuple[str, ...]
    separator: str
    regex: str
    target_label: str
    replacement: str


def _expand(found: Any, template: str) -> str:
    """Go's ``regexp.Expand``, as Prometheus relabelling uses it: ``$1`` and ``${name}`` are
    the group's text, and a group the regex does not have (or that did not take part) is
    empty, never an error."""

    def group(reference: re.Match[str]) -> str:
        name = reference.group(1) or reference.group(2)
        if name is None:
            return "$"  # $$
        try:
            text = found.group(int(name) if name.isdigit() else name)
        except (IndexError, re2.error):
            return ""
        return str(text or "")

    return _GO_GROUP.sub(group, template)


def parse_relabel_config(text: str) -> tuple[Rule, ...]:
    """The rules of a YAML list of relabel configs; ValueError naming what is wrong."""
    try:
        loaded: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"YAML: {str(exc)[:120]}") from None
    if loaded is None:
        return ()
    if not isinstance(loaded, list) or len(loaded) > MAX_RULES:
        raise ValueError(f"a YAML list of at most {MAX_RULES} relabel configs")
    rules = []
    for item in loaded:
        if not isinstance(item, dict):
            raise ValueError("each relabel config a mapping")
        action = str(item.get("action", "replace")).lower()
        if action not in ACTIONS:
            raise ValueError(f"action {action!r} is not one of {', '.join(ACTIONS)}")
        regex = str(item.get("regex", "(.*)"))
        try:
            re2.compile(f"^(?:{regex})$")
        except re2.error as exc:
            raise ValueError(f"regex {regex!r}: {exc}") from None
        sources = item.get("source_labels", []) or []
        if not isinstance(sources, list):
            raise ValueError("source_labels a list")
        target = str(item.get("target_label", ""))
        if action == "replace" and not target:
            raise ValueError("target_label for action replace")
        rules.append(
            Rule(
                action=action,
                source_labels=tuple(str(s) for s in sources),
                separator=str(item.get("separator", ";")),
                regex=regex,
                target_label=target,
                replacement=str(item.get("replacement", "$1")),
            )
        )
    return tuple(rules)


def relabel(rules: tuple[Rule, ...], labels: Mapping[str, str]) -> dict[str, str] | None:
    """The label set after the rules; None when a rule drops the stream."""
    out = dict(labels)
    for rule in rules:
        regex = re2.compile(f"^(?:{rule.regex})$")
        value = rule.separator.join(out.get(name, "") for name in rule.source_labels)
        match rule.action:
            case "replace":
                found = regex.search(value)
                if found is not None:
                    result = _expand(found, rule.replacement)
                    target = _expand(found, rule.target_label)
                    if result:
                        out[target] = result
                    else:
                        out.pop(target, None)
            case "keep":
                if regex.search(value) is None:
                    return None
            case "drop":
                if regex.search(value) is not None:
                    return None
            case "labelmap":
                for name, label_value in list(out.items()):
                    found = regex.search(name)
                    if found is not None:
                        out[_expand(found, rule.replacement)] = label_value
            case "labeldrop":
                out = {name: v for name, v in out.items() if regex.search(name) is None}
            case "labelkeep":
                out = {name: v for name, v in out.items() if regex.search(name) is not None}
    return out
