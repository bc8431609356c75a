"""The JSON-RPC endpoint over HTTP: an ASGI app served by hypercorn on trio.

Theory: the HTTP layer only moves bytes. It accepts POST on `/` and nothing else, reads the body while
counting it (a body over `MAX_BODY_BYTES` is answered 413 as soon as the count passes the cap, or at once
when its Content-Length announces it), hands the bytes to the pure `Dispatcher`, and writes back its answer:
200 with a JSON body, or 204 with no body when the request held only notifications. Shutdown is graceful and
bounded: when the trio scope running the server is cancelled, hypercorn's shutdown trigger fires inside a
shielded scope, in-flight requests get `SHUTDOWN_GRACE_S` to finish, then everything is cancelled.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any, cast

import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from hypercorn.typing import Framework

from node.config import host_port
from node.rpc.limits import MAX_BODY_BYTES, SHUTDOWN_GRACE_S
from node.rpc.protocol import INVALID_REQUEST, Dispatcher, RpcError

log = logging.getLogger("fedmarket.rpc")

DEFAULT_HOST = "127.0.0.1"
ENDPOINT_PATH = "/"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def log_event(level: int, event: str, **fields: object) -> None:
    """One structured log line: an event name and key=value fields (also passed as `extra` for handlers)."""
    if log.isEnabledFor(level):
        text = " ".join(f"{key}={value}" for key, value in fields.items())
        log.log(level, "%s %s", event, text, extra={"event": event, "fields": fields})


class RpcApp:
    """The ASGI application: POST `/` carries JSON-RPC; every other request gets a clear HTTP error."""

    def __init__(self, dispatcher: Dispatcher, max_body_bytes: int = MAX_BODY_BYTES) -> None:
        self.dispatcher = dispatcher
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _run_lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1003})

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        peer = f"{client[0]}:{client[1]}" if client else "-"
        if scope["path"] != ENDPOINT_PATH:
            detail = f"no JSON-RPC endpoint at {scope['path'][:100]}; POST to {ENDPOINT_PATH}"
            await _send_error(send, 404, detail, peer)
            return
        if scope["method"] != "POST":
            detail = f"method {scope['method']} is not allowed; JSON-RPC requests are POSTed"
            await _send_error(send, 405, detail, peer, extra_headers=[(b"allow", b"POST")])
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            await _send_error(send, 413, self._too_large(declared), peer)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await _send_error(send, 413, self._too_large(size), peer)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        started = trio.current_time()
        answer = await self.dispatcher.handle(b"".join(chunks))
        elapsed_ms = math.ceil((trio.current_time() - started) * 1000)
        if answer is None:
            await _send(send, 204, b"")
        else:
            await _send(send, 200, answer)
        log_event(
            logging.DEBUG,
            "rpc.request",
            peer=peer,
            body_bytes=size,
            status=200 if answer else 204,
            ms=elapsed_ms,
        )

    def _too_large(self, size: int) -> str:
        return f"request body of {size} bytes exceeds the limit of {self.max_body_bytes}"


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _send(
    send: Send, status: int, body: bytes, extra_headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    headers = [(b"content-length", str(len(body)).encode())]
    if body:
        headers.append((b"content-type", b"application/json"))
    headers.extend(extra_headers)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _send_error(
    send: Send, status: int, detail: str, peer: str, extra_headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    log_event(logging.INFO, "rpc.http_refused", peer=peer, status=status, detail=detail)
    error = RpcError(INVALID_REQUEST, detail)
    body = b'{"jsonrpc":"2.0","error":%s,"id":null}' % _compact_json(error.to_json())
    await _send(send, status, body, extra_headers)


def _compact_json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


async def _run_lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


class RpcServer:
    """Serves a `Dispatcher` on host:port until the trio scope running `run` is cancelled."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        port: int,
        host: str = DEFAULT_HOST,
        max_body_bytes: int = MAX_BODY_BYTES,
        shutdown_grace_s: float = SHUTDOWN_GRACE_S,
    ) -> None:
        self.app = RpcApp(dispatcher, max_body_bytes)
        self.host = host
        self.port = port
        self.shutdown_grace_s = shutdown_grace_s
        self._serving_scope: trio.CancelScope | None = None

    @property
    def url(self) -> str:
        return f"http://{host_port(self.host, self.port)}/"

    def _config(self) -> Config:
        config = Config()
        config.bind = [host_port(self.host, self.port)]
        config.accesslog = None
        config.errorlog = logging.getLogger("fedmarket.rpc.http")
        config.graceful_timeout = self.shutdown_grace_s
        config.include_server_header = False
        return config

    async def run(self, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled; `nursery.start(server.run)` returns the URL, with the bound port."""
        shutdown = trio.Event()
        async with trio.open_nursery() as nursery:
            binds: list[str] = await nursery.start(self._serve_shielded, shutdown)
            self.port = int(binds[0].rsplit(":", 1)[1])
            log_event(logging.INFO, "rpc.listening", url=self.url)
            task_status.started(self.url)
            try:
                await trio.sleep_forever()
            finally:
                shutdown.set()
                if self._serving_scope is not None:
                    self._serving_scope.deadline = trio.current_time() + self.shutdown_grace_s + 1.0
                log_event(logging.INFO, "rpc.stopping", url=self.url, grace_s=self.shutdown_grace_s)

    async def _serve_shielded(
        self, shutdown: trio.Event, *, task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED
    ) -> None:
        with trio.CancelScope(shield=True) as scope:
            self._serving_scope = scope
            await serve(
                cast(Framework, self.app),
                self._config(),
                shutdown_trigger=shutdown.wait,
                task_status=task_status,
                mode="asgi",
            )
        log_event(logging.INFO, "rpc.stopped", url=self.url)
