"""A small synchronous JSON-RPC 2.0 client over HTTP (stdlib `http.client`), and where the CLI finds a node.

Theory: every way a call can fail (no listener, a timeout, an HTTP error, a body that is not JSON-RPC, an
error object from the node) becomes one `RpcError` whose message is a single readable sentence naming the
node; the JSON-RPC code is kept on the exception so callers can react to "not found" and the like. Responses
are read with a size cap. One HTTP/1.1 connection is kept open across calls (a script making many calls
would otherwise pay a TCP connection, and the node a new connection task, per call); a connection the node
closed while idle is replaced once, transparently. The node to talk to is `--rpc`, else `$FEDMARKET_RPC`,
else the first node listed in `.devnet/devnet.json` under the current directory, else the default port on
127.0.0.1.
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import socket
import urllib.parse
from pathlib import Path
from typing import Any

from node.commands.base import DEFAULT_RPC_URL, DEFAULT_TIMEOUT_S, CliError
from node.rpc.protocol import METHOD_NOT_FOUND

RPC_URL_ENV = "FEDMARKET_RPC"
DEVNET_FILE = Path(".devnet") / "devnet.json"
MAX_RESPONSE_BYTES = 64 * 1024 * 1024
MAX_DEVNET_FILE_BYTES = 1024 * 1024


class RpcError(CliError):
    """A call that failed; `code` is the JSON-RPC error code, or None if no JSON-RPC answer came back."""

    def __init__(self, message: str, code: int | None = None, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.data = data


def default_rpc_url(cwd: Path | None = None) -> str:
    """`$FEDMARKET_RPC`, else the first node of `.devnet/devnet.json` under `cwd`, else `DEFAULT_RPC_URL`."""
    from_env = os.environ.get(RPC_URL_ENV)
    if from_env:
        return from_env
    devnet_file = (cwd or Path.cwd()) / DEVNET_FILE
    if not devnet_file.is_file():
        return DEFAULT_RPC_URL
    return _first_devnet_node(devnet_file)


def _first_devnet_node(path: Path) -> str:
    try:
        with path.open("rb") as stream:
            devnet = json.loads(stream.read(MAX_DEVNET_FILE_BYTES))
    except (OSError, ValueError) as exc:
        raise CliError(f"cannot read {path}: {exc}; pass --rpc URL") from None
    nodes = devnet.get("nodes") if isinstance(devnet, dict) else None
    first = nodes[0] if isinstance(nodes, list) and nodes else None
    url = first.get("rpc_url", first.get("rpc")) if isinstance(first, dict) else None
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise CliError(f"{path} lists no node with an rpc_url; pass --rpc URL")
    return url


class RpcClient:
    """Calls JSON-RPC methods with named params on one node, over one kept-alive HTTP connection."""

    def __init__(self, url: str, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self.url = url
        self.timeout = timeout
        self._ids = itertools.count(1)
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise RpcError(f"{url!r} is not an http:// or https:// URL of a node")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._path = parts.path or "/"
        self._connection: http.client.HTTPConnection | None = None

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """The method's result; any failure raises `RpcError` with a one-sentence message."""
        request_id = next(self._ids)
        request: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params:
            request["params"] = params
        body = self._post(json.dumps(request).encode())
        return self._result(method, request_id, body)

    def _post(self, body: bytes) -> bytes:
        try:
            try:
                return self._exchange(body, reused=self._connection is not None)
            except _StaleConnection:
                return self._exchange(body, reused=False)
        except TimeoutError:
            self.close()
            raise RpcError(f"node at {self.url} gave no answer within {self.timeout:g} s") from None
        except (OSError, ValueError, http.client.HTTPException) as exc:
            self.close()
            if isinstance(exc, ConnectionRefusedError | socket.gaierror):
                raise RpcError(f"cannot reach node at {self.url}: {_reason(exc)}") from None
            raise RpcError(f"cannot talk to node at {self.url}: {_reason(exc)}") from None

    def _exchange(self, body: bytes, reused: bool) -> bytes:
        if self._connection is None:
            kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            self._connection = kind(self._host, self._port, timeout=self.timeout)
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        try:
            self._connection.request("POST", self._path, body, headers)
            response = self._connection.getresponse()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            self.close()
            if reused:
                raise _StaleConnection from None
            raise
        answer = self._read(response)
        if response.will_close:
            self.close()
        if 200 <= response.status < 300 or _is_json_rpc_error(answer):
            return answer
        raise RpcError(f"node at {self.url} answered HTTP {response.status} {response.reason}")

    def _read(self, response: Any) -> bytes:
        data: bytes = response.read(MAX_RESPONSE_BYTES + 1)
        if len(data) > MAX_RESPONSE_BYTES:
            raise RpcError(f"node at {self.url} sent an answer larger than {MAX_RESPONSE_BYTES} bytes")
        return data

    def _result(self, method: str, request_id: int, body: bytes) -> Any:
        try:
            answer = json.loads(body)
        except ValueError:
            raise RpcError(f"node at {self.url} answered {method} with something that is not JSON") from None
        if not isinstance(answer, dict) or answer.get("jsonrpc") != "2.0":
            raise RpcError(f"node at {self.url} answered {method} with something that is not JSON-RPC 2.0")
        error = answer.get("error")
        if error is not None:
            raise _error_from(self.url, method, error)
        if answer.get("id") != request_id or "result" not in answer:
            raise RpcError(f"node at {self.url} answered {method} with a malformed JSON-RPC response")
        return answer["result"]


class _StaleConnection(Exception):
    """The node closed a kept-alive connection before this request: try once more on a new one."""


def _is_json_rpc_error(body: bytes) -> bool:
    try:
        answer = json.loads(body)
    except ValueError:
        return False
    return isinstance(answer, dict) and isinstance(answer.get("error"), dict)


def _error_from(url: str, method: str, error: Any) -> RpcError:
    if not isinstance(error, dict) or not isinstance(error.get("code"), int):
        return RpcError(f"node at {url} answered {method} with a malformed error object")
    code: int = error["code"]
    message = error.get("message")
    text = message if isinstance(message, str) and message else "no message"
    if code == METHOD_NOT_FOUND:
        text = f"{text} (this node does not offer {method})"
    return RpcError(f"{method} failed: {text} (code {code})", code, error.get("data"))


def _reason(reason: object) -> str:
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused (is a node running there? see --rpc)"
    if isinstance(reason, TimeoutError):
        return "timed out"
    if isinstance(reason, socket.gaierror):
        return f"unknown host ({reason.strerror})"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror.lower()
    return str(reason)


def connect(args: Any) -> RpcClient:
    """The client for a parsed command line (`--rpc`, `--timeout`)."""
    return RpcClient(args.rpc or default_rpc_url(), args.timeout)
