"""A TCP port on 127.0.0.1 that nothing listens on (yet), for peers and dead addresses."""

from __future__ import annotations

import socket

# The kernel may hand the same free port to two probes in a row when nothing
# binds it in between: a peer that asks for several ports before it starts
# (Kafka's PLAINTEXT and SSL listeners once got the same one) must get distinct
# ones, so this process never hands a port out twice.
_handed_out: set[int] = set()


def free_port() -> int:
    for _ in range(1000):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise RuntimeError("no free TCP port on 127.0.0.1 that this process has not handed out already")
