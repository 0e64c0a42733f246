"""Log-opt parsing: defaults, env overrides, errors that name the option."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from logdriver import ConfigError
from logdriver._exceptions import UnknownOptionError
from logdriver.config.options import parse_log_opts, plugin_defaults
from logdriver.config.pipeline_options import is_pipeline_key
from logdriver.config.settings import Settings
from logdriver.config.units import parse_duration, parse_size
from logdriver_sinks.elasticsearch import ElasticsearchSink
from logdriver_sinks.file import FileSink
from logdriver_sinks.fluentd import FluentdSink


def test_defaults_are_json_file_like() -> None:
    options = parse_log_opts({}, plugin_defaults({}), {"file": FileSink("/nonexistent")})
    assert options.sinks == ("file",)
    assert options.store_max_size == 20_000_000
    assert options.store_max_file == 5
    assert options.sink_configs["file"].get("file-format") == "json"


def test_a_hostile_key_is_refused_at_once() -> None:
    """A key of two million dashes or letters costs one pass, not a quadratic split or fuzzy match."""
    sinks = {"file": FileSink("/nonexistent"), "fluentd": FluentdSink()}
    for key in ("-" * 2_000_000, "fluentd-" + "x-" * 1_000_000, "a" * 2_000_000):
        started = time.monotonic()
        with pytest.raises(UnknownOptionError) as caught:
            parse_log_opts({key: "x"}, plugin_defaults({}), sinks)
        assert time.monotonic() - started < 1.0
        assert len(str(caught.value)) < 300  # the key is cut in the message
    long_but_split = "fluentd-" + "-" * 60 + "overflow"
    assert not is_pipeline_key(long_but_split, sinks)


def test_the_engines_own_keys_pass() -> None:
    """dockerd merges mode, max-buffer-size and its dual-logging cache's cache-* keys into every map."""
    config = {"mode": "non-blocking", "max-buffer-size": "4m", "cache-disabled": "false", "cache-max-file": "2"}
    assert parse_log_opts(config, plugin_defaults({})).sinks == ("file",)


@pytest.mark.parametrize(
    ("key", "suggestion"),
    [
        ("fluentd-adress", "'fluentd-address'"),
        ("file-fromat", "'file-format'"),
        ("overflw", "'overflow'"),
        ("elasticsearch-bach-max-bytes", "'elasticsearch-batch-max-bytes'"),
        ("es-pasword", "'es-password'"),  # a secret: named, and refused as a log-opt if given right
        ("foo", "see `python -m logdriver options`"),  # no prefix of ours: refused all the same
        ("compress", "'es-compress'"),  # another driver's option: refused, the nearest of ours named
    ],
)
def test_an_unknown_option_names_the_closest_known_one(key: str, suggestion: str) -> None:
    sinks = {"file": FileSink("/nonexistent"), "fluentd": FluentdSink(), "elasticsearch": ElasticsearchSink()}
    with pytest.raises(UnknownOptionError) as caught:
        parse_log_opts({key: "x"}, plugin_defaults({}), sinks)
    assert repr(key) in str(caught.value)
    assert suggestion in str(caught.value)
    assert len(str(caught.value)) < 200  # one suggestion, not the list of every option


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("file-format", "xml", "json or text"),
        ("max-size", "lots", "a size"),
        ("max-file", "0", "an integer from 1 to 1000"),
        ("max-size", "1" * 400, "a size from 1k to 100g"),
        ("partial-max-size", "1" * 400, "a size from 16k to 64m"),
        ("partial-max-size", "1g", "a size from 16k to 64m"),
        ("labels-regex", "(", "an RE2 regular expression (missing ): ("),
        ("env-regex", "(a)\\1", "an RE2 regular expression (invalid escape"),
        ("tag", "{{truncate .Name}}", "a Docker tag template such as {{.Name}} (truncate takes 2 arguments, not 1)"),
        ("tag", "{{lower .Name .ID}}", "(lower takes 1 argument, not 2)"),
        ("tag", "{{" * 20000, "at most 8192 characters"),
        ("tag", "{{.Name", "(unclosed action"),
        ("tag", "{{foo .Name}}", 'function "foo" not supported'),
        ("retry-max-time", "9" * 400, "a duration"),
        ("buffer-max-entries", "9" * 400, "an integer from 1 to 10000000"),
        ("sinks", "file,carrier-pigeon", "names from: file"),
    ],
)
def test_bad_value_names_the_option(key: str, value: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_log_opts({key: value}, plugin_defaults({}), {"file": FileSink("/nonexistent")})
    assert repr(key) in str(caught.value)
    assert expected in str(caught.value)


def test_env_sets_plugin_defaults_and_log_opts_override() -> None:
    environ = {"LOGDRIVER_FILE_FORMAT": "text", "LOGDRIVER_MAX_FILE": "2"}
    defaults = plugin_defaults(environ)
    sinks = {"file": FileSink("/nonexistent")}
    assert parse_log_opts({}, defaults, sinks, environ).sink_configs["file"].get("file-format") == "text"
    assert (
        parse_log_opts({"file-format": "json"}, defaults, sinks, environ).sink_configs["file"].get("file-format")
        == "json"
    )
    assert parse_log_opts({}, defaults, sinks, environ).store_max_file == 2
    with pytest.raises(ConfigError, match="LOGDRIVER_MAX_FILE"):
        plugin_defaults({"LOGDRIVER_MAX_FILE": "many"})


def test_settings_from_env() -> None:
    settings = Settings.from_env({"LOGDRIVER_STATE_DIR": "/s", "LOGDRIVER_STORE_MAX_BYTES": "1g"})
    assert FileSink.from_settings(settings).directory == "/s/files"
    assert settings.store_max_bytes == 1_000_000_000
    assert settings.socket == "/run/docker/plugins/logdriver.sock"


def test_units() -> None:
    assert parse_size("10m") == 10_000_000
    assert parse_size("1Mi") == 1 << 20
    assert parse_size("512k", binary=True) == 512 << 10
    assert parse_duration("1m30s") == 90
    assert parse_duration("7d") == 7 * 86400
    assert parse_duration("250ms") == 0.25
    with pytest.raises(ValueError, match="x"):
        parse_duration("5x")


def test_tls_files_a_container_names_must_be_regular_files(tmp_path: Path) -> None:
    """A FIFO as a CA would block the whole plugin in open(); a device or a huge file would
    be read while every other container waits. Each is refused at `docker run`, fast."""
    import os

    from logdriver.config import client_tls_context

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    small = tmp_path / "cert.pem"
    small.write_text("not checked: the key is refused first\n")
    huge = tmp_path / "huge.pem"
    with open(huge, "wb") as out:
        out.truncate(17 << 20)
    started = time.monotonic()
    for option, paths, reason in [
        ("x-tls-ca", (str(fifo), "", ""), "regular PEM file"),
        ("x-tls-ca", ("/dev/zero", "", ""), "regular PEM file"),
        ("x-tls-cert", ("", str(tmp_path), ""), "regular PEM file"),
        ("x-tls-key", ("", str(small), str(fifo)), "regular PEM file"),
        ("x-tls-ca", (str(huge), "", ""), "at most 16 MiB"),
        ("x-tls-ca", (str(tmp_path / "missing.pem"), "", ""), "No such file"),
    ]:
        with pytest.raises(ConfigError, match=reason) as caught:
            client_tls_context(*paths, True, prefix="x-tls-")
        assert caught.value.option == option
    assert time.monotonic() - started < 5


def test_loki_url_without_sinks_selects_the_loki_sink() -> None:
    """The Loki drop-in: a Loki driver user's log-opts, unchanged, ship to Loki."""
    from logdriver_sinks.loki import LokiSink

    kinds = {"file": FileSink("/tmp/unused"), "loki": LokiSink()}
    defaults = plugin_defaults({})
    url = "http://loki:3100/loki/api/v1/push"
    assert parse_log_opts({"loki-url": url}, defaults, kinds).sinks == ("loki",)
    assert parse_log_opts({"loki-url": url, "sinks": "file,loki"}, defaults, kinds).sinks == ("file", "loki")
    assert parse_log_opts({}, defaults, kinds).sinks == ("file",)
    # The Loki driver's own options for its local copy.
    options = parse_log_opts(
        {"loki-url": url, "no-file": "true", "keep-file": "true", "max-size": "-1"}, defaults, kinds
    )
    assert (options.no_file, options.store_max_size) == (True, 100 * 10**9)
