"""Composition root: settings from the environment, sinks from entry points, serve.

The socket is created before anything slow happens: the daemon gives a
managed plugin about 9.5 s to create it before marking it disabled.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import logging
import os
import signal
import sys
from importlib.metadata import entry_points

import trio

from logdriver import __version__
from logdriver._exceptions import AlreadyRunningError, ConfigError
from logdriver._files import lock_exclusive, lock_holder, makedirs_private
from logdriver.abc import Sink
from logdriver.config.options import parse_log_opts
from logdriver.config.settings import Settings
from logdriver.reading.registry import FifoRegistry
from logdriver.server.docker_api import removed_containers
from logdriver.server.driver import Driver
from logdriver.server.logging_setup import configure_logging
from logdriver.server.metrics import serve_metrics
from logdriver.server.policy_command import policy_command
from logdriver.server.reference import render
from logdriver.server.unix import serve_unix
from logdriver.store.log_store import LogStore

log = logging.getLogger("logdriver")


def load_sinks(settings: Settings) -> dict[str, Sink]:
    """Sinks from the ``logdriver.sinks`` entry points, plus ``LOGDRIVER_SINK_CLASSES``
    (``name=module:Class,...``) for sinks that are not packaged."""
    classes = {entry.name: entry.load() for entry in entry_points(group="logdriver.sinks")}
    for item in filter(None, settings.sink_classes.split(",")):
        name, _, target = item.partition("=")
        module, _, attribute = target.partition(":")
        classes[name.strip()] = getattr(importlib.import_module(module.strip()), attribute.strip())
    return {name: cls.from_settings(settings) for name, cls in classes.items()}


def lock_state_dir(state_dir: str) -> int:
    """The state directory's lock, held for the process's life; raises AlreadyRunningError,
    before the socket, the registry or any FIFO is touched, if another plugin holds it."""
    makedirs_private(state_dir)  # container data and secrets: root only
    path = os.path.join(state_dir, "lock")
    fd = lock_exclusive(path)
    if fd is None:
        raise AlreadyRunningError(state_dir, lock_holder(path))
    return fd


async def serve(settings: Settings) -> None:
    lock_state_dir(settings.state_dir)  # released by the kernel when this process ends
    store = LogStore(os.path.join(settings.state_dir, "store"), settings.store_max_bytes)
    registry = FifoRegistry(os.path.join(settings.state_dir, "fifos.json"))
    sinks = load_sinks(settings)
    # A bad LOGDRIVER_* default (of any sink) fails now, not in every container's StartLogging.
    parse_log_opts({"sinks": ",".join(sinks)}, settings.defaults, sinks, settings.environ)
    # Asked every GC round: an engine that starts after the plugin (or never, for a managed
    # plugin, which has no API socket) only means no deletion by removal that round.
    exists = functools.partial(removed_containers, sockets=settings.docker_sockets)
    driver = Driver(settings, sinks, store, registry, container_exists=exists)
    try:
        async with trio.open_nursery() as nursery:
            with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                await nursery.start(driver.run)
                await nursery.start(serve_unix, settings.socket, driver)
                if settings.metrics_address:
                    await nursery.start(serve_metrics, settings.metrics_address, driver, settings.health_failing_after)
                log.info(
                    "logdriver serving on %s (state %s, sinks %s)",
                    settings.socket,
                    settings.state_dir,
                    ", ".join(driver.sinks),
                )
                async for signum in signals:
                    log.info(
                        "%s: flushing sinks for up to %g s; open FIFOs stay registered and resume at next start",
                        signal.Signals(signum).name,
                        settings.shutdown_grace,
                    )
                    with trio.move_on_after(settings.shutdown_grace):
                        await driver.shutdown()
                    nursery.cancel_scope.cancel()
                    break
    finally:
        store.close()


def sink_classes() -> dict[str, type[Sink]]:
    """The installed sinks' classes, not built: what the reference describes."""
    return {entry.name: entry.load() for entry in entry_points(group="logdriver.sinks")}


def options_command(args: list[str]) -> None:
    """``python -m logdriver options [--format md|json|manifest]``: the generated reference."""
    parser = argparse.ArgumentParser(prog="python -m logdriver options", description=options_command.__doc__)
    parser.add_argument("--format", choices=("md", "json", "manifest"), default="md")
    chosen = parser.parse_args(args)
    sys.stdout.write(render(sink_classes(), chosen.format))


def parse_command_line(args: list[str]) -> argparse.Namespace:
    """No arguments: serve. ``options``: the reference. Anything else prints usage and exits
    (2 for an argument it does not know): a mistyped command must never start a second server."""
    parser = argparse.ArgumentParser(
        prog="python -m logdriver",
        description="Docker logging-driver plugin. Without a command it serves the plugin socket; "
        "its settings are LOGDRIVER_* environment variables (see the `options` command).",
    )
    parser.add_argument("--version", action="version", version=f"logdriver {__version__}")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("options", help="print the generated reference", add_help=False)
    commands.add_parser("policy", help="check, apply or show the operator policy (policy --help)", add_help=False)
    chosen, rest = parser.parse_known_args(args)
    if rest and chosen.command not in ("options", "policy"):
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    chosen.rest = rest
    return chosen


def main() -> None:
    command = parse_command_line(sys.argv[1:])
    if command.command == "options":
        options_command(command.rest)
        return
    if command.command == "policy":
        sys.exit(policy_command(command.rest, sink_classes()))
    try:
        configure_logging(os.environ)
    except ConfigError as exc:
        print(exc, file=sys.stdout)  # plugin stderr lands in dockerd's log at level=error
        sys.exit(2)
    try:
        settings = Settings.from_env()
        trio.run(serve, settings)
    except (ConfigError, AlreadyRunningError) as exc:
        log.error("%s", exc)
        sys.exit(2)


if __name__ == "__main__":
    main()
