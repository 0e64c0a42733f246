"""Sans-IO: where a batch goes. Addresses as Docker's fluentd driver spells them,
and the choice among several servers (failover, or weighted round robin).

``fluentd-address`` takes one address or a comma-separated list:
``host``, ``host:port``, ``tcp://host:port``, ``tls://host:port``,
``unix:///path``; a missing port is 24224, an empty address is
``tcp://127.0.0.1:24224`` (Docker's defaults). ``?weight=N`` sets a server's
share under ``fluentd-balance=weighted`` (default 60, as out_forward).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

DEFAULT_PORT = 24224
DEFAULT_WEIGHT = 60


@dataclass(frozen=True, slots=True)
class Server:
    scheme: str  # tcp, tls or unix
    host: str  # the socket path for unix
    port: int
    weight: int = DEFAULT_WEIGHT

    def __str__(self) -> str:
        if self.scheme == "unix":
            return f"unix://{self.host}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


def parse_address(text: str) -> Server:
    """One address; ValueError with the reason if it is not one."""
    text = text.strip()
    if not text:
        return Server("tcp", "127.0.0.1", DEFAULT_PORT)
    if "://" not in text:
        text = "tcp://" + text
    url = urlsplit(text)
    query = parse_qs(url.query, strict_parsing=bool(url.query))
    weight = int(query.pop("weight", [str(DEFAULT_WEIGHT)])[-1])
    if query or weight < 0:
        raise ValueError(f"unknown or bad parameters in {text!r}")
    if url.scheme == "unix":
        if not url.path:
            raise ValueError("unix address without a path")
        return Server("unix", url.path, 0, weight)
    if url.scheme not in ("tcp", "tls"):
        raise ValueError(f"unsupported scheme {url.scheme!r}: use tcp, tls or unix")
    if url.path not in ("", "/"):
        raise ValueError(f"extra path {url.path!r} in a {url.scheme} address")
    if not url.hostname:
        raise ValueError("no host")
    return Server(url.scheme, url.hostname, url.port or DEFAULT_PORT, weight)


MAX_SERVERS = 32  # a failover list, not a cluster: each one is tried in turn on a failure


def parse_addresses(text: str) -> tuple[Server, ...]:
    servers = tuple(parse_address(part) for part in text.split(",")) if text.strip() else (parse_address(""),)
    if len(servers) > MAX_SERVERS:
        raise ValueError(f"{len(servers)} servers, more than {MAX_SERVERS}")
    if all(server.weight == 0 for server in servers):
        raise ValueError("every server has weight 0")
    return servers


class ServerChoice:
    """Which server to try for the next batch, and in which order after a failure.

    A server that fails is skipped for ``recover_wait`` seconds, then tried
    again: under ``failover`` the first healthy server in list order takes
    every batch, so traffic returns to the primary once it answers again;
    under ``weighted`` healthy servers share batches in proportion to their
    weights (smooth weighted round robin, as nginx does). When every server
    is down all are tried in list order, so the pipeline's retry finds the
    first to come back.
    """

    def __init__(self, servers: tuple[Server, ...], weighted: bool, recover_wait: float) -> None:
        self.servers = servers
        self.weighted = weighted
        self.recover_wait = recover_wait
        self._down_until = [0.0] * len(servers)
        self._current = [0] * len(servers)

    def order(self, now: float) -> list[int]:
        healthy = [i for i in range(len(self.servers)) if self._down_until[i] <= now]
        if not healthy:
            return sorted(range(len(self.servers)), key=lambda i: (self.servers[i].weight == 0, i))
        if self.weighted:
            first = self._pick_weighted(healthy)
            return [first, *(i for i in healthy if i != first)]
        return healthy

    def _pick_weighted(self, healthy: list[int]) -> int:
        total = sum(self.servers[i].weight for i in healthy)
        for i in healthy:
            self._current[i] += self.servers[i].weight
        best = max(healthy, key=lambda i: (self._current[i], -i))
        self._current[best] -= total
        return best

    def failed(self, index: int, now: float) -> None:
        self._down_until[index] = now + self.recover_wait

    def succeeded(self, index: int) -> None:
        self._down_until[index] = 0.0
