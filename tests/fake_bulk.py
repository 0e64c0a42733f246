"""FakeBulkServer: a fake, not Elasticsearch. It answers ``_bulk`` the way a node under
pressure does, on demand, which a real node will not: 429 on chosen items, 413 above a
body size, slow answers, a top-level error. Real behaviour is tested against OpenSearch
(tests/es_peer.py); this only covers the failure modes.

Documents are kept by ``_id``; a second ``create`` of an id is answered 409, as a node does.
"""

from __future__ import annotations

import contextlib
import gzip
import ssl
from typing import Any

import h11
import orjson
import trio


class FakeBulkServer:
    def __init__(self) -> None:
        self.port = 0
        self.documents: dict[str, dict[str, Any]] = {}
        self.requests = 0
        self.throttle_ids_once: set[str] = set()  # items answered 429 the first time they come
        self.throttle_first_items = 0  # answer 429 to the first N items of the next request
        self.throttled_indices: set[str] = set()  # answer 429 to every item for these indices
        self.max_body = 0  # answer 413 to bigger (uncompressed) bodies; 0: no limit
        self.delay = 0.0  # seconds before answering
        self.status = 0  # answer the whole request with this status, when set
        self.headers: dict[bytes, bytes] = {}  # of the last request
        self.template_status = 200  # the answer to index template requests
        self.tls: ssl.SSLContext | None = None  # serve https with this context
        self.reply_bomb: tuple[str, bytes] | None = None  # answer _bulk with (content-encoding, body)

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    async def serve(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started(self.port)
        await trio.serve_listeners(self._connection, listeners)

    async def _connection(self, tcp: trio.SocketStream) -> None:
        stream: trio.abc.Stream = trio.SSLStream(tcp, self.tls, server_side=True) if self.tls else tcp
        # A client that gave up (a timeout under test) ends the exchange: so does the fake.
        with contextlib.suppress(trio.BrokenResourceError, h11.RemoteProtocolError, h11.LocalProtocolError):
            await self._exchange(stream)

    async def _exchange(self, stream: trio.abc.Stream) -> None:
        connection = h11.Connection(h11.SERVER)
        with trio.move_on_after(60):
            while True:
                request, body = await self._read(stream, connection)
                if request is None:
                    return
                status, payload = await self._answer(request, body)
                data = orjson.dumps(payload)
                headers = [("content-type", "application/json"), ("content-length", str(len(data)))]
                if self.reply_bomb is not None and request.target.startswith(b"/_bulk"):
                    encoding, data = self.reply_bomb
                    headers = [*headers[:1], ("content-encoding", encoding), ("content-length", str(len(data)))]
                await stream.send_all(connection.send(h11.Response(status_code=status, headers=headers)))
                await stream.send_all(connection.send(h11.Data(data=data)))
                await stream.send_all(connection.send(h11.EndOfMessage()))
                if connection.our_state is h11.MUST_CLOSE:
                    return
                connection.start_next_cycle()

    @staticmethod
    async def _read(stream: trio.abc.Stream, connection: h11.Connection) -> tuple[h11.Request | None, bytes]:
        request: h11.Request | None = None
        body = bytearray()
        while True:
            event = connection.next_event()
            if event is h11.NEED_DATA:
                data = await stream.receive_some(1 << 16)
                if not data:
                    return None, b""
                connection.receive_data(data)
            elif isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                return request, bytes(body)
            else:
                return None, b""

    async def _answer(self, request: h11.Request, body: bytes) -> tuple[int, dict[str, Any]]:
        self.requests += 1
        self.headers = dict(request.headers)
        if self.delay:
            await trio.sleep(self.delay)
        if dict(request.headers).get(b"content-encoding") == b"gzip":
            body = gzip.decompress(body)
        if request.target.startswith(b"/_index_template/"):
            return self.template_status, {"acknowledged": self.template_status == 200}
        if not request.target.startswith(b"/_bulk"):
            return 200, {"acknowledged": True}
        if self.status:
            return self.status, {"error": {"type": "fake", "reason": f"status {self.status} on demand"}}
        if self.max_body and len(body) > self.max_body:
            return 413, {"error": {"type": "fake", "reason": "request entity too large"}}
        lines = body.splitlines()
        items = []
        for position, (action_line, source_line) in enumerate(zip(lines[::2], lines[1::2], strict=True)):
            action = orjson.loads(action_line)["create"]
            doc_id = action["_id"]
            throttled = action.get("_index") in self.throttled_indices
            if throttled or position < self.throttle_first_items or doc_id in self.throttle_ids_once:
                self.throttle_ids_once.discard(doc_id)
                items.append({"create": {"status": 429, "error": {"type": "es_rejected_execution_exception"}}})
            elif doc_id in self.documents:
                items.append({"create": {"status": 409, "error": {"type": "version_conflict_engine_exception"}}})
            else:
                self.documents[doc_id] = orjson.loads(source_line)
                items.append({"create": {"status": 201}})
        self.throttle_first_items = 0
        return 200, {"errors": any(item["create"]["status"] >= 300 for item in items), "items": items}
