"""Fluentd addresses, server choice and log-opts, Docker's spellings included."""

from __future__ import annotations

import pytest

from logdriver import ConfigError, ContainerOptions, LogDriverError
from logdriver.testing import context_for, open_stream
from logdriver_sinks.fluentd import FluentdSink, FluentdStream
from logdriver_sinks.fluentd._servers import Server, ServerChoice, parse_address, parse_addresses


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", Server("tcp", "127.0.0.1", 24224)),
        ("fluentd", Server("tcp", "fluentd", 24224)),
        ("fluentd:24225", Server("tcp", "fluentd", 24225)),
        ("tcp://1.2.3.4:24224/", Server("tcp", "1.2.3.4", 24224)),
        ("tls://logs.example:24284", Server("tls", "logs.example", 24284)),
        ("unix:///run/fluent.sock", Server("unix", "/run/fluent.sock", 0)),
        ("tcp://[::1]:24224?weight=3", Server("tcp", "::1", 24224, 3)),
    ],
)
def test_addresses_as_docker_spells_them(text: str, expected: Server) -> None:
    assert parse_address(text) == expected


@pytest.mark.parametrize("text", ["udp://h:1", "tcp://h:1/extra", "unix://", "tcp://h?color=red", "tcp://:24224"])
def test_bad_addresses(text: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        parse_address(text)


def test_failover_prefers_the_first_healthy_server_and_returns_after_recover_wait() -> None:
    choice = ServerChoice(parse_addresses("a,b,c"), weighted=False, recover_wait=10)
    assert choice.order(0) == [0, 1, 2]
    choice.failed(0, now=1)
    assert choice.order(2) == [1, 2]
    assert choice.order(11.5) == [0, 1, 2]
    for index in range(3):
        choice.failed(index, now=20)
    assert choice.order(21) == [0, 1, 2]  # all down: try them all, in order


def test_weighted_choice_follows_the_weights() -> None:
    choice = ServerChoice(parse_addresses("a?weight=1,b?weight=2,c?weight=0"), weighted=True, recover_wait=10)
    firsts = [choice.order(0)[0] for _ in range(30)]
    assert firsts.count(0) == 10
    assert firsts.count(1) == 20
    choice.failed(1, now=0)
    assert [choice.order(1)[0] for _ in range(3)] == [0, 0, 0]


def options_of(config: dict[str, str], environ: dict[str, str] | None = None) -> ContainerOptions:
    return context_for(FluentdSink(), config, environ=environ).options


def test_docker_fluentd_options_map_to_the_pipeline() -> None:
    config = {
        "sinks": "fluentd",
        "fluentd-address": "tcp://a:1,tcp://b:2",
        "fluentd-buffer-limit": "1m",
        "fluentd-retry-wait": "2s",
        "fluentd-max-retries": "4294967295",
        "fluentd-async": "true",
        "tag": "docker.{{.Name}}",
    }
    options = options_of(config)
    own = options.sink_configs["fluentd"]
    assert own.get("fluentd-address") == (Server("tcp", "a", 1), Server("tcp", "b", 2))
    assert own.get("fluentd-request-ack") is True
    assert own.get("fluentd-sub-second-precision") is True
    pipeline = options.pipelines["fluentd"]
    assert pipeline.buffer_max_entries == 1 << 20
    assert pipeline.retry.initial == 2.0
    assert pipeline.retry.max_attempts == 4294967295
    assert pipeline.overflow.value == "drop-newest"  # a network sink never holds the container


def test_an_explicit_pipeline_option_beats_the_docker_alias() -> None:
    config = {"sinks": "fluentd", "fluentd-retry-wait": "2s", "fluentd-retry-initial": "50ms"}
    assert options_of(config).pipelines["fluentd"].retry.initial == 0.05


def test_secrets_come_from_the_environment_and_never_show_in_errors() -> None:
    environ = {"LOGDRIVER_FLUENTD_SHARED_KEY": "k3y", "LOGDRIVER_FLUENTD_ADDRESS": "tls://agg:24284"}
    options = options_of({}, environ)
    assert options.sink_configs["fluentd"].get("fluentd-shared-key") == "k3y"
    assert options.sink_configs["fluentd"].get("fluentd-address") == (Server("tls", "agg", 24284),)
    with pytest.raises(ConfigError, match="fluentd-address"):
        options_of({"fluentd-address": "udp://x"})


def test_a_typo_in_the_fluentd_namespace_is_rejected() -> None:
    with pytest.raises(LogDriverError, match="fluentd-adress"):
        options_of({"fluentd-adress": "x"})


def test_no_address_means_the_default_server() -> None:
    """``sinks=fluentd`` alone ships to tcp://127.0.0.1:24224, as documented (it used to fail
    docker run with a TypeError: the empty default reached the stream as None)."""
    stream = open_stream(FluentdSink(), {})
    assert isinstance(stream, FluentdStream)
    assert parse_addresses("") == (Server("tcp", "127.0.0.1", 24224),)
