"""Configuration: log-opts and plugin-wide settings, their units, templates and TLS.

Public for sinks: what a sink declares its options with (``SinkConfig``, ``option``, the
value parsers, and the option groups several sinks share: TLS, the request deadline),
Docker tag templates, and the TLS context for client certificates. The
modules below are the plugin's own.
"""

import logdriver.config.groups as groups
from logdriver.config.groups import tls_settings
from logdriver.config.registry import Option, SinkConfig, env_name, option
from logdriver.config.templates import Template, render_tag
from logdriver.config.tls import TlsSettings, client_tls_context
from logdriver.config.units import (
    CredentialsInValue,
    choice,
    int_between,
    non_negative_int,
    parse_bool,
    parse_duration,
    parse_size,
    size_between,
)

__all__ = [
    "CredentialsInValue",
    "Option",
    "SinkConfig",
    "option",
    "env_name",
    "Template",
    "render_tag",
    "client_tls_context",
    "TlsSettings",
    "tls_settings",
    "groups",
    "choice",
    "int_between",
    "non_negative_int",
    "parse_bool",
    "parse_duration",
    "parse_size",
    "size_between",
]
