"""Option groups that several sinks declare alike, declared once here (as the Collector's
``configtls``/``confighttp`` and Vector's ``TlsConfig``): the TLS quartet (CA, client
certificate and key, verification) with the server name, and the HTTP client's
whole-request deadline.

A sink's config declares each field with these (``tls_ca: str = tls_ca("otlp")``), the
option's name given when another driver's users expect theirs (the Loki driver's
``loki-tls-ca-file``); ``tls_settings(config)`` reads the group back as one value.
"""

from __future__ import annotations

from typing import Any

from logdriver.config.registry import OptionRecord, option
from logdriver.config.tls import TlsSettings
from logdriver.config.units import parse_bool, parse_duration

_BOOL = "true or false"


def tls_ca(prefix: str, name: str = "") -> Any:
    return option(
        name or f"{prefix}-tls-ca",
        "",
        "a PEM file path",
        "CA bundle the server's certificate is verified with; empty means the system's",
        transport=True,
    )


def tls_cert(prefix: str, name: str = "") -> Any:
    return option(name or f"{prefix}-tls-cert", "", "a PEM file path", "client certificate", credential=True)


def tls_key(prefix: str, name: str = "") -> Any:
    return option(name or f"{prefix}-tls-key", "", "a PEM file path", "client key", credential=True)


def tls_verify(prefix: str, name: str = "", *, insecure_skip: bool = False) -> Any:
    """Whether to verify the server's certificate and name; ``insecure_skip`` declares it
    the other way round (``loki-tls-insecure-skip-verify``), the field still saying "verify"."""
    if insecure_skip:
        return option(
            name or f"{prefix}-tls-insecure-skip-verify",
            "false",
            _BOOL,
            "do not verify the server's certificate",
            _negated_bool,
            transport=True,
        )
    return option(
        name or f"{prefix}-tls-verify", "true", _BOOL, "verify the server's certificate", parse_bool, transport=True
    )


def tls_server_name(prefix: str, name: str = "") -> Any:
    return option(
        name or f"{prefix}-tls-server-name",
        "",
        "a host name",
        "the name the server's certificate must carry; empty means the address's host",
        transport=True,
    )


def request_timeout(prefix: str, default: str = "10s", name: str = "") -> Any:
    """The HTTP client's deadline for a whole request, its reply included: a reply dripping
    a byte at a time never trips a per-read timeout, this one it does."""
    return option(
        name or f"{prefix}-timeout", default, "a duration", "one request, its whole reply included", parse_duration
    )


def _negated_bool(text: str) -> bool:
    return not parse_bool(text)


def tls_settings(config: OptionRecord) -> TlsSettings:
    """The TLS group of a config that declares it (``tls_ca``, ``tls_cert``, ``tls_key``,
    ``tls_verify``, and ``tls_server_name`` if it has one), with its options' names."""
    kind = type(config)
    return TlsSettings(
        ca=str(getattr(config, "tls_ca", "") or ""),
        cert=str(getattr(config, "tls_cert", "") or ""),
        key=str(getattr(config, "tls_key", "") or ""),
        verify=bool(getattr(config, "tls_verify", True)),
        server_name=str(getattr(config, "tls_server_name", "") or ""),
        names=(kind.option_of("tls_ca").name, kind.option_of("tls_cert").name, kind.option_of("tls_key").name),
    )
