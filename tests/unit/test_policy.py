"""The operator policy (issue 34): parsing and its refusals, selection and precedence (sans-IO),
then the switch of running containers in the Driver, on real FIFOs, with lines in flight."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson
import pytest
import trio
from prometheus_client import CollectorRegistry, generate_latest

from logdriver.__main__ import lock_state_dir, sink_classes
from logdriver._records import ContainerInfo
from logdriver.config.options import MAX_LOG_OPT_VALUE, check_log_opts
from logdriver.config.policy import (
    FIXED_AT_START,
    MAX_LABELS_PER_RULE,
    MAX_MATCH_VALUE,
    MAX_MATCHED_VALUE,
    MAX_POLICY_BYTES,
    MAX_RULE_NAME,
    MAX_RULES,
    Policy,
    PolicyError,
    parse_policy,
)
from logdriver.config.registry import Option
from logdriver.config.settings import Settings
from logdriver.delivery.context import container_context
from logdriver.server.driver import Driver
from logdriver.server.live_policy import APPLIED_FILE, CONTAINERS_STATUS_EVERY, POLICY_FILE, POLL_INTERVAL
from logdriver.server.metrics import DriverCollector
from logdriver.server.policy_command import policy_command
from logdriver.server.policy_switch import MAX_SHOWN
from logdriver.server.rpc import StartLogging, StopLogging
from logdriver.testing import encode_entry

from .test_credentials_rule import changes, plugin_wide
from .test_driver import FakeSinkKind, container, daemon_fifo, fake_driver, frames, wait_until

SINKS: dict[str, Any] = {**sink_classes(), "fake": FakeSinkKind}


def policy(text: str) -> Policy:
    return parse_policy(text.encode(), lambda options: check_log_opts(options, SINKS))


def info(name: str = "web", image: str = "shop/web:1.2", cid: str = "a" * 64, **labels: str) -> ContainerInfo:
    return ContainerInfo(container_id=cid, name=f"/{name}", image_name=image, labels=labels)


# -- the format -------------------------------------------------------------------------


def test_rules_select_by_label_name_image_and_id_every_part_of_a_match() -> None:
    rules = policy(
        """
rules:
  - {name: by-label, match: {label: {app: noisy}}, enforce: {rate-limit: 100/s}}
  - {name: by-pattern, match: {label: {app: "~checkout-.*"}}, enforce: {redact: all}}
  - {name: by-name, match: {name: "~pay-[0-9]+"}, default: {multiline: java}}
  - {name: by-image, match: {image: shop/web:1.2}, default: {parse: json}}
  - {name: by-id, match: {id: aaaaaaaaaaaa}, default: {min-level: info}}
  - {name: both, match: {label: {app: noisy, tier: web}}, enforce: {drop-lines: debug}}
  - {name: everyone, match: {}, default: {redact: credentials}}
"""
    )

    def selected(container: ContainerInfo) -> tuple[str, ...]:
        return rules.layered(container, {}).rules

    assert selected(info(app="noisy")) == ("by-label", "by-image", "by-id", "everyone")
    assert selected(info(app="checkout-eu", cid="b" * 64)) == ("by-pattern", "by-image", "everyone")
    assert selected(info(app="checkout", cid="b" * 64, image="x")) == ("everyone",)  # the pattern is whole
    assert selected(info(name="pay-12", image="x", cid="b" * 64)) == ("by-name", "everyone")
    assert selected(info(name="pay-12x", image="x", cid="b" * 64)) == ("everyone",)
    assert "both" in selected(info(app="noisy", tier="web"))
    assert "both" not in selected(info(app="quiet", tier="web"))
    # A pattern is never run over a value longer than MAX_MATCHED_VALUE: a container's label
    # cannot make selection cost more than the operator's rules do.
    assert "by-pattern" in selected(info(app="checkout-" + "x" * (MAX_MATCHED_VALUE - 9)))
    assert "by-pattern" not in selected(info(app="checkout-" + "x" * MAX_MATCHED_VALUE))


def test_precedence_defaults_then_log_opts_then_enforced_later_rules_win() -> None:
    rules = policy(
        """
rules:
  - {name: d1, match: {}, default: {multiline: java, redact: credentials, min-level: debug}}
  - {name: d2, match: {}, default: {min-level: info}}
  - {name: e1, match: {}, enforce: {rate-limit: 100/s}}
  - {name: e2, match: {}, enforce: {rate-limit: 50/s}}
"""
    )
    layered = rules.layered(info(), {"multiline": "python", "rate-limit": "1000/s", "tag": "x"})
    assert layered.config == {
        "multiline": "python",  # the log-opt wins over a default
        "redact": "credentials",
        "min-level": "info",  # the later default
        "rate-limit": "50/s",  # an enforced value wins over the log-opt; the later one over the earlier
        "tag": "x",
    }
    assert layered.sources == {
        "multiline": "log-opt",
        "redact": "rule d1 (default)",
        "min-level": "rule d2 (default)",
        "rate-limit": "rule e2 (enforce)",
        "tag": "log-opt",
    }


@pytest.mark.parametrize(
    ("text", "rule", "option"),
    [
        ("rules: {a: 1}", "", "rules"),
        ("nope: []", "", ""),
        ("rules: [[1]]", "rule-1", ""),
        ("rules: [{match: {}}]", "rule-1", ""),  # sets nothing
        ("rules: [{match: {who: x}, enforce: {redact: all}}]", "rule-1", "match.who"),
        ("rules: [{match: {label: {app: '~(x'}}, enforce: {redact: all}}]", "rule-1", "match.label.app"),
        ("rules: [{match: {}, enforce: {rate-limit: fast}}]", "rule-1", "rate-limit"),
        ("rules: [{match: {}, enforce: {ratelimit: 5/s}}]", "rule-1", "ratelimit"),
        ("rules: [{match: {}, enforce: {max-size: 1m}}]", "rule-1", "max-size"),  # the store is the container's
        ("rules: [{match: {}, enforce: {mode: non-blocking}}]", "rule-1", "mode"),  # the engine's
        ("rules: [{match: {}, enforce: {redact: [all]}}]", "rule-1", "redact"),
        ("rules: [{name: a, match: {}, enforce: {redact: all}}, {name: a, match: {}, default: {}}]", "a", "name"),
        ("rules: [{}, {name: x, match: {}, enforce: {es-password: hunter2}}]", "rule-1", ""),
    ],
)
def test_a_bad_policy_names_the_rule_and_option(text: str, rule: str, option: str) -> None:
    with pytest.raises(PolicyError) as refused:
        policy(text)
    assert (refused.value.rule, refused.value.option) == (rule, option)


def test_a_secret_is_refused_without_being_shown_and_every_value_is_bounded() -> None:
    with pytest.raises(PolicyError, match="LOGDRIVER_ES_PASSWORD") as refused:
        policy("rules: [{name: x, match: {}, enforce: {es-password: hunter2}}]")
    assert "hunter2" not in str(refused.value)
    with pytest.raises(PolicyError, match="8192"):
        policy("rules: [{match: {}, enforce: {drop-lines: '" + "x" * 9000 + "'}}]")
    with pytest.raises(PolicyError, match="larger than"):
        policy("#" * (65 << 10))
    with pytest.raises(PolicyError, match="at most 256"):
        policy("rules:\n" + "  - {match: {}, default: {redact: all}}\n" * 257)
    assert policy("").rules == ()
    assert policy("rules: []").rules == ()
    scalars = policy("rules: [{match: {}, enforce: {redact-store: false, multiline-max-lines: 50}}]")
    assert scalars.rules[0].enforce == {"redact-store": "false", "multiline-max-lines": "50"}


@pytest.mark.parametrize(("sink", "option", "value"), changes(), ids=lambda v: getattr(v, "name", str(v)))
def test_a_rule_that_changes_a_destination_gets_no_plugin_wide_credential(
    sink: str, option: Option, value: str
) -> None:
    """The credentials rule of log-opts, walked over every option of where or how lines go:
    a rule is one more writer of log-opts, not a way around them."""
    env = plugin_wide(sink)
    rules = parse_policy(
        orjson.dumps({"rules": [{"match": {}, "enforce": {"sinks": sink, option.name: value}}]}),
        lambda options: check_log_opts(options, SINKS),
    )
    raw = {"ContainerID": "c" * 64, "ContainerName": "/c", "Config": {}}
    settings = Settings.from_env({"LOGDRIVER_STATE_DIR": "/nonexistent"})
    kinds = {name: kind.from_settings(settings) for name, kind in sink_classes().items()}
    context = container_context(raw, {}, kinds, env, rules)
    assert context.options.pipelines[sink].container_destination
    for bound in SINKS[sink].config.options():
        if bound.bound and bound.name != option.name:
            assert context.options.sink_configs[sink].get(bound.name) == bound.value(bound.default)


def test_the_bounds_docs_state_are_the_code() -> None:
    text = (Path(__file__).parents[2] / "docs" / "policy.md").read_text()
    for bound in (
        f"at most {MAX_POLICY_BYTES >> 10} KiB",
        f"Rules: at most {MAX_RULES}",
        f"Labels per rule: at most {MAX_LABELS_PER_RULE}",
        f"at most {MAX_MATCH_VALUE} characters",
        f"value of at most {MAX_MATCHED_VALUE} characters",
        f"first {MAX_SHOWN} characters",
        f"within {CONTAINERS_STATUS_EVERY:g} s when containers start or stop",
        f"A rule name: at most {MAX_RULE_NAME} characters",
        f"every value ≤ {MAX_LOG_OPT_VALUE}",
        f"every {POLL_INTERVAL:g} s" if POLL_INTERVAL != 0.5 else "every half second",
    ):
        assert bound in text, bound
    for name in sorted(FIXED_AT_START):
        assert f"`{name}`" in text, name


# -- the switch in the Driver --------------------------------------------------------------


def labelled(cid: str, container_labels: Mapping[str, str], **opts: str) -> dict[str, object]:
    return {**container(cid, **opts), "ContainerLabels": dict(container_labels)}


def lines_of(kind: FakeSinkKind) -> list[bytes]:
    return [record.line for stream in kind.streams for record in stream.delivered]


def write_lines(fd: int, first: int, count: int, text: bytes = b"line %d password=hunter2") -> None:
    os.write(fd, frames(*(encode_entry("stdout", n, text % n) for n in range(first, first + count))))


async def take(driver: Driver, text: str) -> None:
    """As the plugin takes a new policy.yaml (``LivePolicy.look``), without the file."""
    await driver.live_policy.take(text.encode())


async def test_a_running_container_is_redacted_from_a_read_batch_on_in_order_exactly_once(tmp_path: Path) -> None:
    kind = FakeSinkKind()
    driver = fake_driver(tmp_path, kind)
    path, fd = daemon_fifo(tmp_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run)
        await driver.start_logging(StartLogging(path, container("a", multiline="java", **{"multiline-timeout": "60s"})))
        write_lines(fd, 0, 1000)
        # An event left open (its timeout is a minute away) when the policy comes.
        os.write(fd, frames(*(encode_entry("stderr", 2000 + n, line) for n, line in enumerate(JAVA))))
        fifo = next(iter(driver._fifos.values()))
        await wait_until(lambda: len(lines_of(kind)) == 1000 and fifo._held_bytes() > 0)
        await take(driver, "rules: [{name: hush, match: {name: a}, enforce: {redact: all}}]")
        write_lines(fd, 1000, 1000)
        await driver.stop_logging(StopLogging(path))
        os.close(fd)
        await wait_until(lambda: driver.statistics().active_fifos == 0 and not driver.deliveries.live)
        nursery.cancel_scope.cancel()
    got = lines_of(kind)
    assert len(kind.streams) == 1  # the sink stayed: its pipeline carried over
    assert got[:1000] == [b"line %d password=hunter2" % n for n in range(1000)]
    assert got[1000] == b"\n".join(JAVA)  # the open event was finished first, under the old options
    assert got[1001:] == [b"line %d password=[REDACTED]" % n for n in range(1000, 2000)]
    assert driver.totals.fifos.processing["redacted_credentials"] == 1000


JAVA = (b"java.lang.IllegalStateException: boom", b"\tat T.inner(T.java:3)", b"\tat T.main(T.java:9)")


async def test_a_sink_left_drains_and_a_new_one_takes_the_rest_while_lines_flow(tmp_path: Path) -> None:
    old, new = FakeSinkKind(), FakeSinkKind()
    driver = fake_driver(tmp_path, old)
    driver.sinks["other"] = new
    path, fd = daemon_fifo(tmp_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run)
        await driver.start_logging(StartLogging(path, labelled("a", {"app": "x"})))

        async def writer() -> None:
            for n in range(0, 20_000, 500):
                write_lines(fd, n, 500, b"line %d")
                await trio.sleep(0.005)

        async with trio.open_nursery() as writing:
            writing.start_soon(writer)
            await wait_until(lambda: len(lines_of(old)) > 2000)
            await take(driver, "rules: [{name: route, match: {name: a}, enforce: {sinks: other}}]")
        await driver.stop_logging(StopLogging(path))
        os.close(fd)
        await wait_until(lambda: driver.statistics().active_fifos == 0 and not driver.deliveries.live)
        nursery.cancel_scope.cancel()
    before, after = lines_of(old), lines_of(new)
    assert before + after == [b"line %d" % n for n in range(20_000)]  # none lost, none twice, in order
    assert before
    assert after
    assert old.streams[0].closed  # the sink it left drained and closed


async def test_lifting_a_block_rate_limit_live_sends_what_it_held_in_order(tmp_path: Path) -> None:
    kind = FakeSinkKind()
    driver = fake_driver(tmp_path, kind)
    path, fd = daemon_fifo(tmp_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run)
        opts = {"rate-limit": "100/s", "rate-limit-action": "block"}
        await driver.start_logging(StartLogging(path, container("a", **opts)))
        write_lines(fd, 0, 2000, b"line %d")  # 20 s at the limit
        await wait_until(lambda: len(lines_of(kind)) >= 100)
        await take(driver, "rules: [{name: lift, match: {}, enforce: {rate-limit: '', rate-limit-action: drop}}]")
        with trio.fail_after(5):  # not the 19 s the limit would have taken
            await wait_until(lambda: len(lines_of(kind)) == 2000)
        await driver.stop_logging(StopLogging(path))
        os.close(fd)
        await wait_until(lambda: driver.statistics().active_fifos == 0 and not driver.deliveries.live)
        nursery.cancel_scope.cancel()
    assert lines_of(kind) == [b"line %d" % n for n in range(2000)]
    assert driver.totals.fifos.processing["rate_limited_lines"] == 0


async def test_a_policy_one_container_cannot_take_changes_nothing_and_is_counted(tmp_path: Path) -> None:
    kind = FakeSinkKind()
    driver = fake_driver(tmp_path, kind)
    path, fd = daemon_fifo(tmp_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run)
        await driver.start_logging(StartLogging(path, container("a", **{"multiline-start": "^x"})))
        await take(driver, "rules: [{name: r1, match: {}, enforce: {rate-limit: 5/s}}]")
        # A preset beside the container's own multiline-start: refused for that container.
        with pytest.raises(PolicyError, match=r"rule 'r2'.*option 'multiline'.*container a \(aaaaaaaaaaaa\)"):
            await take(driver, "rules: [{name: r2, match: {}, enforce: {multiline: java}}]")
        fifo = next(iter(driver._fifos.values()))
        assert fifo.context.given["rate-limit"] == "5/s"
        assert fifo.context.rules == ("r1",)
        await driver.stop_logging(StopLogging(path))
        os.close(fd)
        await wait_until(lambda: driver.statistics().active_fifos == 0 and not driver.deliveries.live)
        nursery.cancel_scope.cancel()
    assert len(kind.streams) == 1


async def test_policy_show_says_where_each_option_came_from_within_a_bound(tmp_path: Path) -> None:
    driver = fake_driver(tmp_path, FakeSinkKind(), LOGDRIVER_MULTILINE_TIMEOUT="2s")
    path, fd = daemon_fifo(tmp_path)
    keys = "k" * 5002  # a log-opt may be 8 KiB; the status lists every container
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run)
        await driver.start_logging(StartLogging(path, labelled("a", {"app": "x"}, **{"labels": keys})))
        await take(driver, "rules: [{name: r1, match: {label: {app: x}}, enforce: {rate-limit: 5/s}}]")
        (shown,) = driver.policy_switch.describe()
        assert shown["rules"] == ["r1"]
        assert shown["options"]["rate-limit"] == {"value": "5/s", "source": "rule r1 (enforce)"}
        assert shown["options"]["multiline-timeout"] == {
            "value": "2s",
            "source": "plugin-wide (LOGDRIVER_MULTILINE_TIMEOUT)",
        }
        assert shown["options"]["labels"] == {
            "value": keys[:200] + "... (5002 characters)",
            "source": "log-opt",
        }
        await driver.stop_logging(StopLogging(path))
        os.close(fd)
        await wait_until(lambda: driver.statistics().active_fifos == 0)
        nursery.cancel_scope.cancel()


async def test_a_container_starting_against_an_enforced_rule_fails_naming_it(tmp_path: Path) -> None:
    kind = FakeSinkKind()
    driver = fake_driver(tmp_path, kind)
    path, fd = daemon_fifo(tmp_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run)
        await take(driver, "rules: [{name: java, match: {name: a}, enforce: {multiline: java}}]")
        with pytest.raises(PolicyError, match=r"rule 'java', option 'multiline'"):
            await driver.start_logging(StartLogging(path, container("a", **{"multiline-start": "^x"})))
        assert driver.statistics().active_fifos == 0
        await driver.start_logging(StartLogging(path, container("b", **{"multiline-start": "^x"})))  # not selected
        assert driver.statistics().active_fifos == 1
        await driver.stop_logging(StopLogging(path))
        os.close(fd)
        await wait_until(lambda: driver.statistics().active_fifos == 0 and not driver.deliveries.live)
        nursery.cancel_scope.cancel()


async def test_a_policy_planned_in_chunks_still_reaches_every_container_once(tmp_path: Path) -> None:
    """Planning yields every 32 containers: one that starts meanwhile is planned last (or
    starts under the new policy), one that stops meanwhile keeps no pipeline the plan opened."""
    driver = fake_driver(tmp_path, FakeSinkKind())
    driver.sinks["other"] = FakeSinkKind()
    fifos = [daemon_fifo(tmp_path, f"fifo{n}") for n in range(80)]
    late_path, late_fd = daemon_fifo(tmp_path, "late")
    planned, meanwhile_done = trio.Event(), trio.Event()
    plan = driver.policy_switch._plan

    counted: list[int] = []

    def counting_plan(*args: Any) -> Any:
        counted.append(1)
        if len(counted) == 40:  # in the second chunk: what follows runs at its checkpoint
            planned.set()
        return plan(*args)

    driver.policy_switch._plan = counting_plan  # type: ignore[method-assign]
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run)
        for n, (path, _) in enumerate(fifos):
            await driver.start_logging(StartLogging(path, labelled(f"{n:02d}", {"app": "x"})))

        async def meanwhile() -> None:
            await planned.wait()
            await driver.start_logging(StartLogging(late_path, labelled("z", {"app": "x"})))
            await driver.stop_logging(StopLogging(fifos[0][0]))
            os.close(fifos[0][1])
            meanwhile_done.set()

        nursery.start_soon(meanwhile)
        await take(driver, "rules: [{name: to-other, match: {label: {app: x}}, enforce: {sinks: other, tag: t}}]")
        await meanwhile_done.wait()
        await wait_until(lambda: driver.statistics().active_fifos == 80)  # 80 + late - the stopped one
        running = list(driver._fifos.values())
        assert all(fifo.context.rules == ("to-other",) for fifo in running)
        assert all(list(fifo.pipelines) == ["other"] for fifo in running)
        for path, fd in [*fifos[1:], (late_path, late_fd)]:
            await driver.stop_logging(StopLogging(path))
            os.close(fd)
        await wait_until(lambda: driver.statistics().active_fifos == 0 and not driver.deliveries.live)
        nursery.cancel_scope.cancel()


# -- the file, restarts and metrics -----------------------------------------------------------


def write_policy(state: Path, text: str, mode: int = 0o600) -> None:
    tmp = state / "policy.tmp"
    tmp.write_text(text)
    tmp.chmod(mode)
    tmp.replace(state / POLICY_FILE)


def metrics(driver: Driver) -> Mapping[str, float]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DriverCollector(driver))
    out = {}
    for line in generate_latest(registry).decode().splitlines():
        if line.startswith("logdriver_policy"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


async def test_the_file_is_taken_live_refused_when_unsafe_and_kept_across_a_restart(tmp_path: Path) -> None:
    kind = FakeSinkKind()
    driver = fake_driver(tmp_path, kind)
    path, fd = daemon_fifo(tmp_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run)
        await driver.start_logging(StartLogging(path, labelled("a", {"app": "noisy"})))
        write_policy(tmp_path, "rules: [{name: tame, match: {label: {app: noisy}}, enforce: {rate-limit: 10/s}}]")
        with trio.fail_after(2):  # live within 2 s
            await wait_until(lambda: driver.live_policy.generation == 1)
        fifo = next(iter(driver._fifos.values()))
        assert fifo.context.options.processing is not None
        assert fifo.context.options.processing.rate_limit == 10
        seen = metrics(driver)
        assert seen["logdriver_policy_generation"] == 1
        assert seen['logdriver_policy_rule_containers{rule="tame"}'] == 1
        assert seen['logdriver_policy_rule_matches_total{rule="tame"}'] == 1
        # Writable by others: refused, counted; the one in force stays.
        write_policy(tmp_path, "rules: []", mode=0o666)
        await wait_until(lambda: driver.live_policy.rejected == 1)
        write_policy(tmp_path, "rules: [{match: {}, enforce: {rate-limit: soon}}]")
        await wait_until(lambda: driver.live_policy.rejected == 2)
        assert metrics(driver)["logdriver_policy_rejected_total"] == 2
        assert fifo.context.rules == ("tame",)
        assert driver.live_policy.generation == 1
        nursery.cancel_scope.cancel()  # the plugin stops; the container goes on logging
    # The restarted plugin resumes the FIFO under the last good policy (policy.yaml is broken).
    assert (tmp_path / APPLIED_FILE).stat().st_mode & 0o777 == 0o600
    restarted = fake_driver(tmp_path, FakeSinkKind())
    async with trio.open_nursery() as nursery:
        await nursery.start(restarted.run)
        resumed = next(iter(restarted._fifos.values()))
        assert resumed.context.rules == ("tame",)
        assert restarted.live_policy.rejected == 1
        assert restarted.live_policy.generation == 1
        (tmp_path / POLICY_FILE).unlink()  # no file: no policy
        await wait_until(lambda: restarted.live_policy.generation == 2)
        assert resumed.context.rules == ()
        assert resumed.context.options.processing is None
        nursery.cancel_scope.cancel()
    os.close(fd)


async def test_apply_waits_for_the_verdict_puts_a_refused_file_back_and_may_try_again(tmp_path: Path) -> None:
    kind = FakeSinkKind()
    driver = fake_driver(tmp_path, kind)
    lock = lock_state_dir(str(tmp_path))  # as the serving plugin holds it: how apply finds it
    path, fd = daemon_fifo(tmp_path)
    offered = tmp_path / "offered.yaml"
    offered.write_text("rules: [{name: java, match: {}, enforce: {multiline: java}}]")

    def apply() -> int:
        return policy_command(["--state-dir", str(tmp_path), "apply", str(offered)], driver.sinks)

    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run)
        await driver.start_logging(StartLogging(path, container("a", **{"multiline-start": "^x"})))
        assert await trio.to_thread.run_sync(apply) == 1  # the running container cannot take it
        assert not (tmp_path / POLICY_FILE).exists()  # put back as it was: none
        await driver.stop_logging(StopLogging(path))
        os.close(fd)
        await wait_until(lambda: driver.statistics().active_fifos == 0)
        assert await trio.to_thread.run_sync(apply) == 0  # the same file again, now it can
        assert driver.live_policy.policy.rule_names() == ("java",)
        nursery.cancel_scope.cancel()
    os.close(lock)
