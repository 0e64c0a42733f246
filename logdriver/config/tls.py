"""TLS client contexts for sinks, loaded when a container starts so a bad file fails ``docker run``.

A context with the system's CAs holds about 0.94 MiB; contexts are shared by every
destination with the same files and settings (``MAX_CONTEXTS`` kept, least recently used
first out), so many https destinations cost one context, not one each. A file changed
on disk (a renewed certificate) makes a new context.
"""

from __future__ import annotations

import collections
import contextlib
import os
import ssl
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from logdriver._exceptions import ConfigError

# A PEM file bigger than this is not a CA bundle or a key (Debian's whole bundle is 0.2 MB).
MAX_PEM_BYTES: Final = 16 << 20
MAX_CONTEXTS: Final = 32
_contexts: collections.OrderedDict[tuple[object, ...], ssl.SSLContext] = collections.OrderedDict()


def _check_file(option: str, path: str) -> tuple[int, int, int] | None:
    """A container names these paths: a FIFO would block the plugin in open() and a huge
    file would be scanned whole, both while every other container waits. Regular files only.
    Returns what tells the file's content apart (inode, size, modification time)."""
    if not path:
        return None
    try:
        info = os.stat(path)
    except OSError as exc:
        raise ConfigError(option, path, f"a readable PEM file ({_reason(exc)})") from None
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(option, path, "a regular PEM file, not a FIFO, device or directory")
    if info.st_size > MAX_PEM_BYTES:
        raise ConfigError(option, path, f"a PEM file of at most {MAX_PEM_BYTES >> 20} MiB")
    return info.st_ino, info.st_size, info.st_mtime_ns


@dataclass(frozen=True, slots=True)
class TlsSettings:
    """One destination's TLS, as its options set it (``logdriver.config.groups``): the CA,
    the client certificate and key, whether to verify and which name, and the options'
    names, so that a bad file fails ``docker run`` naming the option that gave it."""

    ca: str = ""
    cert: str = ""
    key: str = ""
    verify: bool = True
    server_name: str = ""  # the name the server's certificate must carry; empty: the host's
    names: tuple[str, str, str] = ("tls-ca", "tls-cert", "tls-key")

    def context(self) -> ssl.SSLContext:
        """The client context (shared with every destination of the same files and settings)."""
        return _context(self.ca, self.cert, self.key, self.verify, self.names)


def client_tls_context(ca_file: str, cert_file: str, key_file: str, verify: bool, *, prefix: str) -> ssl.SSLContext:
    """A client context: the system's CAs unless ``ca_file``, and an optional client certificate.

    ``prefix`` names the options (``fluentd-tls-`` → ``fluentd-tls-ca``, ``-cert``, ``-key``):
    a file that is missing, unreadable or not PEM raises ``ConfigError`` naming its option.
    """
    return _context(ca_file, cert_file, key_file, verify, (f"{prefix}ca", f"{prefix}cert", f"{prefix}key"))


def _context(ca_file: str, cert_file: str, key_file: str, verify: bool, names: tuple[str, str, str]) -> ssl.SSLContext:
    files = tuple(_check_file(name, path) for name, path in zip(names, (ca_file, cert_file, key_file), strict=True))
    key = (ca_file, cert_file, key_file, verify, files)
    context = _contexts.get(key)
    if context is None:
        context = _contexts[key] = _build(ca_file, cert_file, key_file, verify, names)
        if len(_contexts) > MAX_CONTEXTS:
            _contexts.popitem(last=False)
    _contexts.move_to_end(key)
    return context


@contextlib.contextmanager
def _held(option: str, path: str) -> Iterator[str | None]:
    """A path OpenSSL may open without blocking: the file, opened non-blocking and checked
    with ``fstat`` (a regular file within the bound), as ``/proc/self/fd/N``. A path swapped
    for a FIFO after ``_check_file`` cannot then hold the event loop in OpenSSL's open()."""
    if not path:
        yield None
        return
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise ConfigError(option, path, f"a readable PEM file ({_reason(exc)})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_PEM_BYTES:
            raise ConfigError(option, path, f"a regular PEM file of at most {MAX_PEM_BYTES >> 20} MiB")
        yield f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)


def _build(ca_file: str, cert_file: str, key_file: str, verify: bool, names: tuple[str, str, str]) -> ssl.SSLContext:
    ca_name, cert_name, key_name = names
    with _held(ca_name, ca_file) as ca, _held(cert_name, cert_file) as cert, _held(key_name, key_file) as key:
        return _built(ca, cert, key, verify, names, (ca_file, cert_file, key_file))


def _built(
    ca: str | None,
    cert: str | None,
    key: str | None,
    verify: bool,
    names: tuple[str, str, str],
    given: tuple[str, str, str],
) -> ssl.SSLContext:
    ca_name, cert_name, key_name = names
    ca_file, cert_file, key_file = given
    try:
        context = ssl.create_default_context(cafile=ca)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(ca_name, ca_file, f"a readable PEM CA bundle ({_reason(exc)})") from None
    if cert:
        try:
            context.load_cert_chain(cert, key)
        except (OSError, ssl.SSLError) as exc:
            option, value = (
                (key_name, key_file) if key_file and "key" in _reason(exc).lower() else (cert_name, cert_file)
            )
            raise ConfigError(option, value, f"a readable PEM certificate and key ({_reason(exc)})") from None
    elif key:
        raise ConfigError(key_name, key_file, f"a key with its certificate in {cert_name}")
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)[:120]
