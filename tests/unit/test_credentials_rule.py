"""A secret goes only over the operator's transport (issue 30, finding 8). With the
operator's https ``otlp-endpoint``, a container setting ``otlp-tls-verify=false`` sent the
operator's token to a server with another CA's certificate; a container naming its own
endpoint and the operator's ``otlp-tls-cert``/``-key`` paths authenticated as the operator.

One rule in the registry, walked here over every sink and every container-settable option
that says where or how lines go: changed from the plugin-wide value, no plugin-wide secret
or credential comes along; and no container may name a plugin-wide credential file."""

from __future__ import annotations

from pathlib import Path

import pytest

from logdriver import ConfigError
from logdriver.__main__ import sink_classes
from logdriver.config.options import parse_log_opts
from logdriver.config.registry import Option

SINKS = sink_classes()
CANDIDATES = (
    "authorization=Bearer operator-token",
    "operator",
    "/etc/logdriver/operator.pem",
    "https://other.example:4318",
    "other.example:9093",
    "tcp://other.example:24225",
    "true",
    "false",
    "PLAIN",
    "SCRAM-SHA-256",
    "/etc/logdriver/other-ca.pem",
)


def parses(option: Option, text: str) -> object:
    try:
        return option.parse(text)
    except ValueError:
        return None


def plugin_wide(sink: str) -> dict[str, str]:
    """Every bound option (secret, credential) of ``sink`` set plugin-wide, to a value it takes."""
    env = {}
    for option in SINKS[sink].config.options():
        if option.bound:
            env[option.env] = next(text for text in CANDIDATES if parses(option, text) not in (None, ""))
    return env


def changes() -> list[tuple[str, Option, str]]:
    """(sink, option, a value other than the plugin-wide one) for every container-settable
    option of where or how lines go."""
    found = []
    for sink, kind in sorted(SINKS.items()):
        env = plugin_wide(sink)
        for option in kind.config.options():
            if not option.log_opt or not (option.destination or option.transport or option.credential):
                continue
            current = parses(option, env.get(option.env, option.default))
            other = next(t for t in CANDIDATES if parses(option, t) not in (None, current) and t != env.get(option.env))
            found.append((sink, option, other))
    return found


@pytest.mark.parametrize(("sink", "option", "value"), changes(), ids=lambda v: getattr(v, "name", str(v)))
def test_a_changed_destination_or_transport_gets_no_plugin_wide_credential(
    sink: str, option: Option, value: str
) -> None:
    env = plugin_wide(sink)
    options = parse_log_opts({"sinks": sink, option.name: value}, {}, SINKS, env)
    config = options.sink_configs[sink]
    assert options.pipelines[sink].container_destination
    for bound in SINKS[sink].config.options():
        if bound.bound and bound.name != option.name:
            assert config.get(bound.name) == bound.value(bound.default), (bound.name, config.get(bound.name))


@pytest.mark.parametrize("sink", sorted(s for s in SINKS if any(o.bound for o in SINKS[s].config.options())))
def test_the_operators_own_transport_keeps_its_credentials(sink: str) -> None:
    env = plugin_wide(sink)
    options = parse_log_opts({"sinks": sink}, {}, SINKS, env)
    assert not options.pipelines[sink].container_destination
    for bound in SINKS[sink].config.options():
        if bound.bound:
            assert config_text(options.sink_configs[sink].get(bound.name)) != ""


def config_text(value: object) -> str:
    return "" if value in (None, (), "") else str(value)


@pytest.mark.parametrize(
    ("sink", "prefix", "destination"),
    [
        ("otlp", "otlp", ("otlp-endpoint", "https://other.example")),
        ("elasticsearch", "es", ("es-url", "https://other.example:9200")),
    ],
)
def test_a_container_cannot_borrow_the_plugin_wide_key_by_path(
    tmp_path: Path, sink: str, prefix: str, destination: tuple[str, str]
) -> None:
    key = tmp_path / "operator.key"
    key.write_text("-----BEGIN PRIVATE KEY-----\n")
    env = {f"LOGDRIVER_{prefix.upper()}_TLS_KEY": str(key), f"LOGDRIVER_{prefix.upper()}_TLS_CERT": str(key)}
    link = tmp_path / "innocent.pem"
    link.symlink_to(key)
    for path in (str(key), str(link)):
        with pytest.raises(ConfigError, match="not a plugin-wide credential"):
            parse_log_opts({"sinks": sink, destination[0]: destination[1], f"{prefix}-tls-key": path}, {}, SINKS, env)
