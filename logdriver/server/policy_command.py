"""``python -m logdriver policy check|apply|show``: the operator's side of the live policy.

``apply`` checks the file, writes it as the state directory's ``policy.yaml`` (0600), and
waits for the running plugin's verdict in ``policy-status.json``: taken, or refused (the
previous ``policy.yaml`` is put back, so nothing changed). No socket, no port: whoever
can write the state directory (root) is the only one who can change the policy.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Mapping
from typing import Any, Final

import orjson

from logdriver._files import read_regular, write_private
from logdriver.config.options import SinkKind, check_log_opts
from logdriver.config.policy import MAX_POLICY_BYTES, PolicyError, parse_policy
from logdriver.server.live_policy import POLICY_FILE, STATUS_FILE, policy_digest

DEFAULT_STATE_DIR: Final = "/var/lib/logdriver"
WAIT: Final = 10.0


def policy_command(args: list[str], sinks: Mapping[str, SinkKind]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m logdriver policy",
        description="Check, apply or show the operator policy of a running logdriver (docs/policy.md).",
    )
    parser.add_argument(
        "--state-dir",
        default=os.environ.get("LOGDRIVER_STATE_DIR", DEFAULT_STATE_DIR),
        help="the plugin's state directory (a managed plugin's: its propagated-mount on the host)",
    )
    commands = parser.add_subparsers(dest="action", required=True)
    commands.add_parser("check", help="validate a policy file; change nothing").add_argument("file")
    apply = commands.add_parser("apply", help="validate, hand to the running plugin, wait for its verdict")
    apply.add_argument("file")
    apply.add_argument("--wait", type=float, default=WAIT, help="seconds to wait for the plugin (default 10)")
    show = commands.add_parser("show", help="the policy in force and every running container's options")
    show.add_argument("--json", action="store_true", help="the plugin's status record as it wrote it")
    chosen = parser.parse_args(args)
    if chosen.action == "show":
        return _show(chosen.state_dir, chosen.json)
    try:
        data = read_regular(chosen.file, MAX_POLICY_BYTES)
        policy = parse_policy(data, lambda options: check_log_opts(options, sinks))
    except (OSError, ValueError) as exc:
        print(f"logdriver: policy: {chosen.file}: {exc}", file=sys.stderr)
        return 1
    except PolicyError as exc:
        print(exc, file=sys.stderr)
        return 1
    if chosen.action == "check":
        print(f"{chosen.file}: {len(policy.rules)} rules, valid")
        return 0
    return _apply(chosen.state_dir, data, chosen.wait)


def _apply(state_dir: str, data: bytes, wait: float) -> int:
    path = os.path.join(state_dir, POLICY_FILE)
    try:
        previous: bytes | None = read_regular(path, MAX_POLICY_BYTES)
    except FileNotFoundError:
        previous = None
    except (OSError, ValueError):
        previous = None
    if not os.path.isdir(state_dir):
        print(f"logdriver: policy: no state directory {state_dir}", file=sys.stderr)
        return 1
    refused_before = (_status(state_dir) or {}).get("rejected", 0)  # a refusal must be a new one
    write_private(path, data)
    if not _plugin_running(state_dir):
        print(f"{path} written; no logdriver is serving {state_dir}: it takes the policy when it starts")
        return 0
    digest = policy_digest(data)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        status = _status(state_dir)
        if status is not None and status.get("digest") == digest:
            print(
                f"policy in force: generation {status['generation']}, {len(status['rules'])} rules, "
                f"{len(status['containers'])} containers running"
            )
            return 0
        rejection = (status or {}).get("last_rejection") or {}
        if (status or {}).get("rejected", 0) > refused_before and rejection.get("digest") == digest:
            _restore(path, previous)
            print(f"{rejection.get('error')}\nnothing changed: the policy in force is kept", file=sys.stderr)
            return 1
        time.sleep(0.2)
    print(f"logdriver: policy: the plugin did not answer within {wait:g} s; {path} is written", file=sys.stderr)
    return 3


def _restore(path: str, previous: bytes | None) -> None:
    if previous is None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    else:
        write_private(path, previous)


def _plugin_running(state_dir: str) -> bool:
    """Whether a process holds the state directory's lock: read from /proc/locks, so that the
    check takes no lock itself (and sees a managed plugin in its own PID namespace)."""
    try:
        inode = os.stat(os.path.join(state_dir, "lock")).st_ino
        with open("/proc/locks", encoding="ascii", errors="replace") as locks:
            return any(" FLOCK " in f" {line} " and f":{inode} " in line for line in locks)
    except OSError:
        return False


def _status(state_dir: str) -> dict[str, Any] | None:
    try:
        loaded = orjson.loads(read_regular(os.path.join(state_dir, STATUS_FILE), 64 << 20))
    except (OSError, ValueError):
        return None
    return loaded if isinstance(loaded, dict) else None


def _show(state_dir: str, as_json: bool) -> int:
    status = _status(state_dir)
    if status is None:
        print(f"logdriver: policy: no status in {state_dir}: no logdriver has run there", file=sys.stderr)
        return 1
    if as_json:
        sys.stdout.write(orjson.dumps(status, option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    loaded = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(status["loaded_at"])) if status["loaded_at"] else "-"
    print(f"generation {status['generation']} (taken {loaded}), rules: {', '.join(status['rules']) or 'none'}")
    if status.get("last_rejection"):
        print(f"last refused: {status['last_rejection']['error']}")
    for container in status["containers"]:
        rules = ", ".join(container["rules"]) or "no rule"
        print(f"\n{container['name']} ({container['id']}): {rules}")
        for option, given in container["options"].items():
            print(f"  {option:<24} {given['value']!s:<32} {given['source']}")
    return 0
