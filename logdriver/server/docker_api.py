"""Asking the Docker API which containers are gone, for the store's garbage collection.

Optional: only used when the engines' API sockets are reachable (legacy mode on the
host). A managed plugin has no API socket and relies on retention alone. One legacy
plugin serves every engine on the host (they all look in /run/docker/plugins), so a
container is gone only when none of the listed engines knows it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import httpx

DOCKER_SOCKET = "/var/run/docker.sock"


async def removed_containers(container_ids: Iterable[str], sockets: Sequence[str] = (DOCKER_SOCKET,)) -> set[str]:
    """The IDs that every engine answers 404 for; any other failure (an engine not
    running) raises, and the caller deletes nothing by removal. No engine to ask
    (``LOGDRIVER_DOCKER_SOCKETS=``) means none is known removed: retention alone deletes."""
    if not sockets:
        return set()
    removed = set(container_ids)
    for socket_path in sockets:
        if removed:
            removed &= await _unknown_to(socket_path, sorted(removed))
    return removed


async def _unknown_to(socket_path: str, container_ids: Iterable[str]) -> set[str]:
    unknown = set()
    # Plain HTTP on a unix socket: verify=False spares loading the CA bundle (~20 ms per call).
    transport = httpx.AsyncHTTPTransport(uds=socket_path, verify=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://docker", timeout=5.0) as client:
        for container_id in container_ids:
            response = await client.get(f"/containers/{container_id}/json")
            if response.status_code == 404:
                unknown.add(container_id)
            else:
                response.raise_for_status()
    return unknown
