"""TLS client contexts for sinks, loaded when a container starts so a bad file fails ``docker run``."""

from __future__ import annotations

import ssl

from logdriver._exceptions import ConfigError


def client_tls_context(ca_file: str, cert_file: str, key_file: str, verify: bool, *, prefix: str) -> ssl.SSLContext:
    """A client context: the system's CAs unless ``ca_file``, and an optional client certificate.

    ``prefix`` names the options (``fluentd-tls-`` → ``fluentd-tls-ca``, ``-cert``, ``-key``):
    a file that is missing, unreadable or not PEM raises ``ConfigError`` naming its option.
    """
    try:
        context = ssl.create_default_context(cafile=ca_file or None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"{prefix}ca", ca_file, f"a readable PEM CA bundle ({_reason(exc)})") from None
    if cert_file:
        try:
            context.load_cert_chain(cert_file, key_file or None)
        except (OSError, ssl.SSLError) as exc:
            option, value = (
                (f"{prefix}key", key_file)
                if key_file and "key" in _reason(exc).lower()
                else (
                    f"{prefix}cert",
                    cert_file,
                )
            )
            raise ConfigError(option, value, f"a readable PEM certificate and key ({_reason(exc)})") from None
    elif key_file:
        raise ConfigError(f"{prefix}key", key_file, f"a key with its certificate in {prefix}cert")
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)[:120]
