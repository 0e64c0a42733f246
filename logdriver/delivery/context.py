"""A container's ``ContainerContext``, built the one way StartLogging builds it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from logdriver._exceptions import ConfigError, LogDriverError
from logdriver._records import ContainerInfo
from logdriver.abc import ContainerContext
from logdriver.config.options import SinkKind, parse_log_opts
from logdriver.config.policy import NO_POLICY, Policy, PolicyError
from logdriver.config.templates import Template, extra_attributes


def container_context(
    raw_info: Mapping[str, Any],
    defaults: Mapping[str, str],
    sinks: Mapping[str, SinkKind],
    environ: Mapping[str, str],
    policy: Policy = NO_POLICY,
) -> ContainerContext:
    """Every log-opt validated (with the operator policy's layers), the tag rendered, the
    extras picked; ``ConfigError`` names what is wrong, ``PolicyError`` when a rule set it."""
    info = ContainerInfo.from_json(dict(raw_info))
    layered = policy.layered(info, info.config)
    config = layered.config
    try:
        for kind in sinks.values():  # another driver's options in logdriver's own terms (the Loki driver's stages)
            expand = getattr(kind, "expand_log_opts", None)
            if expand is not None:
                config = expand(config)
        options = parse_log_opts(config, defaults, sinks, environ)
        try:
            tag = Template.parse(options.tag).render(info) if options.tag else ""
        except ValueError as exc:
            raise ConfigError("tag", options.tag, f"a Docker tag template ({exc})") from exc
    except LogDriverError as exc:
        option = str(getattr(exc, "option", ""))
        if rule := layered.rule_of(option):
            raise PolicyError(rule, option, str(exc).removeprefix("logdriver: ")) from None
        raise
    return ContainerContext(
        info=info,
        options=options,
        tag=tag,
        extras=extra_attributes(info, options.raw),
        sources=layered.sources,
        rules=layered.rules,
        given=layered.config,
    )
