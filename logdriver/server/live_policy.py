"""The operator policy's files and its watch: the trio shell around ``config/policy.py``.

The control path is a file, never a listener: ``policy.yaml`` in the state directory
(root's, mode 0600), written by ``python -m logdriver policy apply`` or by hand. The plugin
looks at it every ``POLL_INTERVAL`` and, when it changed, parses it and hands it to the
driver, which validates it against every running container and switches them all, or
none. A policy taken is copied to ``policy.applied.yaml``: a restart with a broken
``policy.yaml`` keeps the last good one. What was taken or refused, and every running
container's effective options with where each came from, go to ``policy-status.json``
(what ``policy show`` prints and ``policy apply`` waits for).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
import trio

from logdriver._exceptions import LogDriverError
from logdriver._files import read_regular, write_private
from logdriver.config.policy import MAX_POLICY_BYTES, NO_POLICY, Policy, PolicyError, Validate, parse_policy

log = logging.getLogger("logdriver.policy")

POLICY_FILE: Final = "policy.yaml"
APPLIED_FILE: Final = "policy.applied.yaml"
STATUS_FILE: Final = "policy-status.json"
POLL_INTERVAL: Final = 0.5  # a new policy is live within 2 s: one look, one parse, one switch
# The status is rewritten at once for a policy taken or refused (policy apply waits for it),
# and at most this often for containers that start and stop (a host churning through
# short-lived containers would otherwise rewrite it twice a second).
CONTAINERS_STATUS_EVERY: Final = 5.0


@dataclass(frozen=True, slots=True)
class PolicyStatistics:
    generation: int  # policies taken since the plugin started (the one at start is 1, none is 0)
    loaded_at: float  # Unix time the policy in force was taken (0: none yet)
    load_seconds: float  # how long parsing, validating and switching it took
    rejected: int  # policies refused (invalid, unsafe file, a container they cannot apply to)
    rules: tuple[str, ...]  # the rules in force, in file order
    rule_matches: Mapping[str, int] = field(default_factory=dict)  # per rule in force: containers it selected


def policy_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest() if data.strip() else ""


class LivePolicy:
    """Owns the policy in force: ``load`` once before containers resume, then ``run``."""

    def __init__(
        self,
        state_dir: str,
        validate: Validate,
        apply: Callable[[Policy], Awaitable[None]],
        describe: Callable[[], list[dict[str, Any]]],
    ) -> None:
        self.path = os.path.join(state_dir, POLICY_FILE)
        self.applied_path = os.path.join(state_dir, APPLIED_FILE)
        self.status_path = os.path.join(state_dir, STATUS_FILE)
        self._validate = validate
        self._apply = apply
        self._describe = describe
        self.policy = NO_POLICY
        self.generation = 0
        self.loaded_at = 0.0
        self.load_seconds = 0.0
        self.rejected = 0
        self._last_rejection: dict[str, Any] | None = None
        self._seen: tuple[int, ...] | None = None
        self.rule_matches: dict[str, int] = {}
        self.status_due = True  # a policy was taken or refused: write the status now
        self._containers_due = False  # containers started or stopped: write it soon
        self._status_written_at = -math.inf

    # -- the driver's side ----------------------------------------------------------

    def count_matches(self, rules: tuple[str, ...]) -> None:
        """A container was selected by these rules (at its start, or by a new policy)."""
        for rule in rules:
            self.rule_matches[rule] = self.rule_matches.get(rule, 0) + 1
        self.containers_changed()

    def containers_changed(self) -> None:
        """A container started or stopped: ``policy show`` should list it, within 5 s."""
        self._containers_due = True

    async def load(self) -> None:
        """At start, before any container resumes: ``policy.yaml``, or when it cannot be
        used, the last good copy (both refused: no policy, said loudly)."""
        self._seen = self._signature()
        for path in (self.path, self.applied_path):
            try:
                data = read_regular(path, MAX_POLICY_BYTES, owner_only=True)
            except FileNotFoundError:
                if path == self.path:
                    return  # no policy; an applied copy without its file is a cleared policy
                continue
            except (OSError, ValueError) as exc:
                self._refuse(path, "", PolicyError("", "", f"{path}: {exc}"))
                continue
            try:
                await self.take(data)
                if path == self.applied_path:
                    log.warning("policy: keeping the last good policy (%s)", path)
                return
            except Exception as exc:
                self._refuse(path, policy_digest(data), _refusal(exc))

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            await self.look()
            now = trio.current_time()
            soon = self._containers_due and now - self._status_written_at >= CONTAINERS_STATUS_EVERY
            if self.status_due or soon:
                self._status_written_at = now
                self.write_status()
            await trio.sleep(POLL_INTERVAL)

    async def look(self) -> None:
        """Take ``policy.yaml`` if it changed since the last look (gone: no policy)."""
        seen = self._signature()
        if seen == self._seen:
            return
        self._seen = seen
        try:
            data = read_regular(self.path, MAX_POLICY_BYTES, owner_only=True)
        except FileNotFoundError:
            data = b""
        except (OSError, ValueError) as exc:
            self._refuse(self.path, "", PolicyError("", "", f"{self.path}: {exc}"))
            return
        digest = policy_digest(data)
        if digest == self.policy.digest:
            return  # what is in force already (a refused file put back)
        try:
            await self.take(data)
        except Exception as exc:
            self._refuse(self.path, digest, _refusal(exc))

    async def take(self, data: bytes) -> None:
        """Parse, validate and switch every running container to the policy in ``data``, or
        raise ``PolicyError`` having changed nothing."""
        started = time.perf_counter()
        policy = parse_policy(data, self._validate) if data.strip() else NO_POLICY
        await self._apply(policy)  # every running container, or none (PolicyError)
        self.policy = policy
        self.generation += 1
        self.loaded_at = time.time()
        self.load_seconds = time.perf_counter() - started
        self.rule_matches = {rule: self.rule_matches.get(rule, 0) for rule in policy.rule_names()}
        try:
            if data.strip():
                write_private(self.applied_path, data)
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.applied_path)
        except OSError as exc:
            log.error("policy: cannot keep a copy of the policy in force (%s): a restart may not keep it", exc)
        log.info(
            "policy: generation %d in force: %d rules (%.0f ms)",
            self.generation,
            len(policy.rules),
            self.load_seconds * 1000,
        )
        self.status_due = True

    def _refuse(self, path: str, digest: str, exc: LogDriverError) -> None:
        self.rejected += 1
        self._last_rejection = {"digest": digest, "error": str(exc), "at": time.time(), "file": path}
        log.error("%s; the policy in force (generation %d) is kept", exc, self.generation)
        self.status_due = True

    def _signature(self) -> tuple[int, ...] | None:
        try:
            status = os.stat(self.path, follow_symlinks=False)
        except OSError:
            return None
        return (status.st_ino, status.st_mtime_ns, status.st_ctime_ns, status.st_size)

    # -- what policy show reads -------------------------------------------------------

    def write_status(self) -> None:
        self.status_due = self._containers_due = False
        status = {
            "generation": self.generation,
            "digest": self.policy.digest,
            "loaded_at": self.loaded_at,
            "load_seconds": self.load_seconds,
            "rules": list(self.policy.rule_names()),
            "rejected": self.rejected,
            "last_rejection": self._last_rejection,
            "containers": self._describe(),
        }
        try:
            write_private(self.status_path, orjson.dumps(status, option=orjson.OPT_INDENT_2))
        except OSError as exc:
            log.error("policy: cannot write %s (%s)", self.status_path, exc)

    def statistics(self) -> PolicyStatistics:
        return PolicyStatistics(
            generation=self.generation,
            loaded_at=self.loaded_at,
            load_seconds=self.load_seconds,
            rejected=self.rejected,
            rules=self.policy.rule_names(),
            rule_matches=dict(self.rule_matches),
        )


def _refusal(exc: Exception) -> LogDriverError:
    """Why a policy was not taken. Not taking it is the one outcome: the plugin carries on
    with the policy in force whatever refused it (a sink's error, a bug, logged whole)."""
    if isinstance(exc, LogDriverError):
        return exc
    log.error("policy: unexpected error while taking a policy", exc_info=exc)
    return PolicyError("", "", f"not taken: {type(exc).__name__} (the plugin's log has the traceback)")
