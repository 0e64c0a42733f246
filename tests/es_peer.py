"""SearchNode: a real OpenSearch 2.19 or Elasticsearch 7.10.2 node (codelibs' runners,
jars from Maven Central).

Not a fake: the node is the server itself, embedded by tests/peers/opensearch or
tests/peers/elasticsearch (``make peers`` resolves the jars with Maven). Start, stop and
restart keep the same port and data directory, so a stopped node comes back with its indices.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from .ports import free_port

PEERS = Path(__file__).parent / "peers"


@dataclass(frozen=True)
class SearchServer:
    name: str  # as test ids and the README's compatibility table show it
    peer: str  # the folder under tests/peers
    main: str  # the runner's Java source there
    data_streams: bool

    @property
    def jars(self) -> Path:
        return PEERS / self.peer / "target" / "dependency"


OPENSEARCH = SearchServer("opensearch-2.19", "opensearch", "OpenSearchPeer.java", data_streams=True)
# The open-source build: no x-pack, so no data streams.
ELASTICSEARCH_OSS = SearchServer("elasticsearch-7.10.2", "elasticsearch", "ElasticsearchPeer.java", data_streams=False)
SERVERS = (OPENSEARCH, ELASTICSEARCH_OSS)


class SearchNode:
    def __init__(self, base: Path, port: int = 0, heap: str = "1g", server: SearchServer = OPENSEARCH) -> None:
        if not server.jars.is_dir():
            raise RuntimeError(f"{server.name} jars are missing: run `make peers`")
        self.server = server
        self.base = base
        self.port = port or free_port()
        self.heap = heap
        self.process: subprocess.Popen[bytes] | None = None
        self.log = base / f"{server.peer}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120) -> SearchNode:
        self.base.mkdir(parents=True, exist_ok=True)
        java = shutil.which("java") or "java"
        command = [
            java,
            f"-Xms{self.heap}",
            f"-Xmx{self.heap}",
            "-Dlog4j2.formatMsgNoLookups=true",
            "-cp",
            f"{self.server.jars}/*",
            str(PEERS / self.server.peer / self.server.main),
            str(self.base / "node"),
            str(self.port),
        ]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=self.base)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.server.name} exited:\n{self.log.read_text(errors='replace')[-3000:]}")
            try:
                if httpx.get(f"{self.url}/_cluster/health?wait_for_status=yellow&timeout=1s").status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"{self.server.name} did not start within {timeout:.0f}s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None

    # -- reading back what was indexed ---------------------------------------------

    def refresh(self, target: str) -> None:
        httpx.post(f"{self.url}/{target}/_refresh", timeout=30)

    def count(self, target: str, refresh: bool = True) -> int:
        """Documents in ``target``; without ``refresh``, as of the node's last periodic refresh (1 s)."""
        if refresh:
            self.refresh(target)
        response = httpx.get(f"{self.url}/{target}/_count", timeout=30)
        return int(response.json().get("count", 0)) if response.status_code == 200 else 0

    def documents(self, target: str, size: int = 10_000) -> list[dict[str, object]]:
        """Every document (with its ``_id``), by scrolling."""
        self.refresh(target)
        out: list[dict[str, object]] = []
        response = httpx.post(
            f"{self.url}/{target}/_search?scroll=1m", json={"size": size, "sort": ["_doc"]}, timeout=60
        ).json()
        while response.get("hits", {}).get("hits"):
            out.extend(hit["_source"] | {"_id": hit["_id"]} for hit in response["hits"]["hits"])
            response = httpx.post(
                f"{self.url}/_search/scroll", json={"scroll": "1m", "scroll_id": response["_scroll_id"]}, timeout=60
            ).json()
        return out

    def get(self, path: str) -> dict[str, Any]:
        result: dict[str, Any] = httpx.get(f"{self.url}{path}", timeout=30).json()
        return result

    def send(self, method: str, path: str, body: dict[str, Any]) -> int:
        return httpx.request(method, f"{self.url}{path}", json=body, timeout=30).status_code

    def search(self, target: str, query: dict[str, Any]) -> list[dict[str, Any]]:
        self.refresh(target)
        response = httpx.post(f"{self.url}/{target}/_search", json={"query": query}, timeout=30).json()
        return [hit["_source"] for hit in response["hits"]["hits"]]

    def delete(self, target: str) -> None:
        httpx.delete(f"{self.url}/_data_stream/{target}", timeout=30)
        httpx.delete(f"{self.url}/{target}", timeout=30)
