"""Files a container or the operator names are read without ever blocking the event loop
(``logdriver.read_regular``): a FIFO, a device or a directory is refused on the descriptor
that would be read, never after a separate ``stat``; the policy file is also refused when
someone other than its owner could write it, or through a symlink. OpenSSL reads TLS files
through the same kind of descriptor."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from logdriver import ConfigError, read_regular
from logdriver.config.tls import client_tls_context


def test_a_fifo_a_directory_and_a_big_file_are_refused_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    done = threading.Event()

    def read() -> None:
        with pytest.raises(ValueError, match="not a regular file"):
            read_regular(str(fifo), 100)
        done.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert done.wait(5), "reading a FIFO with no writer blocked"
    with pytest.raises(ValueError, match="not a regular file"):
        read_regular(str(tmp_path), 100)
    big = tmp_path / "big"
    big.write_bytes(b"x" * 101)
    with pytest.raises(ValueError, match="larger than 100 bytes"):
        read_regular(str(big), 100)
    with pytest.raises(FileNotFoundError):
        read_regular(str(tmp_path / "absent"), 100)
    assert read_regular(str(big), 101) == b"x" * 101


def test_the_owner_only_read_refuses_a_file_others_can_write_and_a_symlink(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("rules: []")
    policy.chmod(0o600)
    assert read_regular(str(policy), 100, owner_only=True) == b"rules: []"
    policy.chmod(0o620)
    with pytest.raises(ValueError, match="writable by it alone"):
        read_regular(str(policy), 100, owner_only=True)
    policy.chmod(0o600)
    link = tmp_path / "link.yaml"
    link.symlink_to(policy)
    with pytest.raises(OSError, match="symbolic links"):  # ELOOP: O_NOFOLLOW
        read_regular(str(link), 100, owner_only=True)
    assert read_regular(str(link), 100) == b"rules: []"  # a container's file may be a link


def test_a_tls_file_that_is_a_fifo_is_refused_naming_the_option(tmp_path: Path) -> None:
    fifo = tmp_path / "ca.pem"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="otlp-tls-ca"):
        client_tls_context(str(fifo), "", "", True, prefix="otlp-tls-")
