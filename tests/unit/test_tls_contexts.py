"""TLS contexts are shared and bounded (issue 30, "also seen"): each https destination cost
about 0.94 MiB of system CAs outside every budget. Contexts are now shared by every
destination with the same files, ``MAX_CONTEXTS`` kept."""

from __future__ import annotations

import os
from pathlib import Path

import trustme

from logdriver.config import client_tls_context
from logdriver.config.tls import MAX_CONTEXTS, _contexts


def test_the_same_files_share_one_context_and_a_renewed_file_gets_a_new_one(tmp_path: Path) -> None:
    system = client_tls_context("", "", "", True, prefix="x-tls-")
    assert client_tls_context("", "", "", True, prefix="y-tls-") is system  # every destination on the system CAs
    ca = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(ca))
    own = client_tls_context(str(ca), "", "", True, prefix="x-tls-")
    assert own is not system
    assert client_tls_context(str(ca), "", "", True, prefix="x-tls-") is own
    assert client_tls_context(str(ca), "", "", False, prefix="x-tls-") is not own  # verify off: its own
    trustme.CA().cert_pem.write_to_path(str(ca))  # renewed on disk
    os.utime(ca, ns=(1, 1))
    assert client_tls_context(str(ca), "", "", True, prefix="x-tls-") is not own


def test_at_most_max_contexts_are_kept(tmp_path: Path) -> None:
    authority = trustme.CA()
    for n in range(MAX_CONTEXTS + 5):
        path = tmp_path / f"ca{n}.pem"
        authority.cert_pem.write_to_path(str(path))
        client_tls_context(str(path), "", "", True, prefix="x-tls-")
    assert len(_contexts) <= MAX_CONTEXTS
