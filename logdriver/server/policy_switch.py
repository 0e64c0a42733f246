"""Switching running containers to a new operator policy: all of them, or none.

For each running FIFO the new options are worked out and validated with the container's
own log-opts, and the pipelines it needs that it has not got are opened; only when every
container can take the policy does each FIFO get its ``Reconfiguration`` (taken between
two read batches, ``FifoLog.reconfigure``). A sink a container keeps with the same options
keeps its pipeline (queue, spool, client); one it leaves drains, then closes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, Final

import trio

from logdriver._exceptions import LogDriverError
from logdriver.abc import ContainerContext, Sink
from logdriver.config.options import CONTAINER_OPTIONS, check_log_opts
from logdriver.config.policy import Layered, Policy, PolicyError
from logdriver.config.settings import Settings
from logdriver.delivery.deliveries import Deliveries
from logdriver.reading.fifo_log import FifoLog, Reconfiguration

PLAN_CHUNK = 32
ContextOf = Callable[[Mapping[str, Any], Policy | None], ContainerContext]


class PolicySwitch:
    """The Driver's FIFOs seen by the policy: it reads ``fifos`` and ``infos`` (path → the
    FIFO, and the daemon's Info it started with), never changes which FIFOs there are."""

    def __init__(
        self,
        settings: Settings,
        sinks: Mapping[str, Sink],
        fifos: Mapping[str, FifoLog],
        infos: Mapping[str, Mapping[str, Any]],
        context_of: ContextOf,
        stage_of: Callable[[ContainerContext], Any],
        deliveries: Deliveries,
        matched: Callable[[tuple[str, ...]], None],
    ) -> None:
        self.settings = settings
        self.sinks = sinks
        self.fifos = fifos
        self.infos = infos
        self.context_of = context_of
        self.stage_of = stage_of
        self.deliveries = deliveries
        self.matched = matched
        self._respools = 0  # a new policy's pipelines of a running FIFO get spools of their own

    def check_rule(self, options: Mapping[str, str]) -> None:
        """A rule's options, each as a log-opt, then together as a container's log-opts over
        the plugin-wide settings (a rule must make sense on its own, whatever it meets)."""
        check_log_opts(options, self.sinks)
        self.context_of({"ContainerID": "0" * 64, "ContainerName": "/policy-check", "Config": dict(options)}, None)

    async def apply(self, policy: Policy) -> None:
        """Switch every running container to ``policy``, or none: any failure (``PolicyError``,
        naming the container, rule and option) closes the pipelines opened for it and changes
        nothing. The plans are made ``PLAN_CHUNK`` containers at a time, with a checkpoint
        between (about 0.5 ms each: a thousand would hold the event loop half a second);
        containers that started meanwhile are planned last, with no checkpoint, then all
        are switched at once."""
        plans: dict[FifoLog, tuple[str, ContainerContext, Reconfiguration | None]] = {}
        try:
            for last in (False, True):
                for path, fifo in list(self.fifos.items()):
                    if fifo in plans or fifo.closing or self.fifos.get(path) is not fifo:
                        continue
                    plans[fifo] = (path, *self._plan(path, fifo, policy))
                    if not last and len(plans) % PLAN_CHUNK == 0:
                        await trio.lowlevel.checkpoint()
        except BaseException:
            for fifo, (_, _, change) in plans.items():
                self._abandon(fifo, change)
            raise
        for fifo, (path, context, change) in plans.items():
            if fifo.closing or self.fifos.get(path) is not fifo:  # it ended while others were planned
                self._abandon(fifo, change)
                continue
            self.matched(tuple(rule for rule in context.rules if rule not in fifo.context.rules))
            if change is None:
                fifo.context = context  # the same options: only where they come from changed
            else:
                fifo.reconfigure(change)

    def _abandon(self, fifo: FifoLog, change: Reconfiguration | None) -> None:
        """Close the pipelines a plan opened (not those it kept)."""
        if change is not None:
            kept = list(fifo.pipelines.values())
            self.deliveries.abandon({n: p for n, p in change.pipelines.items() if p not in kept})

    def _plan(self, path: str, fifo: FifoLog, policy: Policy) -> tuple[ContainerContext, Reconfiguration | None]:
        old = fifo.context
        layered = policy.layered(old.info, old.info.config)
        if layered.config == old.given:  # the same option texts (most containers, most policies): no parse
            return dataclasses.replace(old, sources=layered.sources, rules=layered.rules), None
        try:
            context = self.context_of(self.infos[path], policy)
        except LogDriverError as exc:
            raise _for_container(old, exc, layered) from None
        if context.given == old.given:  # the same option texts: the same options
            return context, None
        kept = {name: fifo.pipelines[name] for name in context.options.sinks if _keeps(name, old, context)}
        self._respools += 1
        fresh = [name for name in context.options.sinks if name not in kept]
        try:  # a client the sink cannot open (a TLS file a rule names is missing): the policy's fault
            opened = self.deliveries.open(f"{path}#policy-{self._respools}", context, self.infos[path], fresh)
        except LogDriverError as exc:
            raise _for_container(old, exc, layered) from None
        try:
            stage = self.stage_of(context)
        except BaseException:
            self.deliveries.abandon(opened)
            raise
        pipelines = {name: kept.get(name) or opened[name] for name in context.options.sinks}
        return context, Reconfiguration(context, stage, pipelines, self.deliveries.release)

    def describe(self) -> list[dict[str, Any]]:
        """Every running container's effective options and where each came from (``policy show``):
        what its log-opts or a rule set, and the plugin-wide settings that differ from the default."""
        plugin_wide = {}
        for declared in CONTAINER_OPTIONS:  # the plugin-wide settings that differ from the default
            if declared.env in self.settings.environ:
                value = _shown(self.settings.defaults.get(declared.name, ""))
                plugin_wide[declared.name] = {"value": value, "source": f"plugin-wide ({declared.env})"}
        described = []
        for fifo in self.fifos.values():
            context = fifo.context
            options: dict[str, dict[str, str]] = dict(plugin_wide)
            for option, source in sorted(context.sources.items()):
                options[option] = {"value": _shown(context.given.get(option, "")), "source": source}
            options.setdefault("sinks", {"value": ",".join(context.options.sinks) or "none", "source": "default"})
            described.append(
                {
                    "id": context.info.short_id,
                    "name": context.info.name.removeprefix("/"),
                    "rules": list(context.rules),
                    "options": options,
                }
            )
        return described


# A value shown by policy show: a log-opt may be 8 KiB, and the status lists every container.
MAX_SHOWN: Final = 200


def _shown(value: str) -> str:
    return value if len(value) <= MAX_SHOWN else f"{value[:MAX_SHOWN]}... ({len(value)} characters)"


def _for_container(context: ContainerContext, exc: LogDriverError, layered: Layered) -> PolicyError:
    """``exc`` as the policy's refusal, naming the container, and the rule when one set the option."""
    option = str(getattr(exc, "option", ""))
    rule = getattr(exc, "rule", "") or layered.rule_of(option)
    reason = getattr(exc, "reason", str(exc).removeprefix("logdriver: "))
    name = context.info.name.removeprefix("/")
    return PolicyError(rule, option, f"for container {name} ({context.info.short_id}): {reason}")


def _keeps(sink: str, old: ContainerContext, new: ContainerContext) -> bool:
    """Whether the sink's pipeline carries over: its queue, spool and stream stay."""
    if sink not in old.options.sinks or (old.tag, old.extras) != (new.tag, new.extras):
        return False
    if old.options.pipelines.get(sink) != new.options.pipelines.get(sink):
        return False
    return old.options.sink_configs.get(sink) == new.options.sink_configs.get(sink)
