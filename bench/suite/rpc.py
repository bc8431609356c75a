"""JSON-RPC over one keep-alive HTTP/1.1 connection, for the load generator and the suite's queries.

`node.commands.rpc_client.RpcClient` opens a new connection per call, which costs the generator CPU that the
nodes share; this client keeps its connection, takes pre-encoded request bodies, and sends JSON-RPC batches.
One instance belongs to one thread.
"""

from __future__ import annotations

import http.client
import itertools
import json
import urllib.parse
from typing import Any

from node.rpc.limits import MAX_BATCH_REQUESTS


class RpcFailure(Exception):
    """A call that got no usable answer, or a JSON-RPC error (`code` then holds its code)."""

    def __init__(self, message: str, code: int | None = None, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.data = data


class KeepAliveRpc:
    def __init__(self, url: str, timeout: float = 30.0) -> None:
        parsed = urllib.parse.urlsplit(url)
        if parsed.hostname is None or parsed.port is None:
            raise ValueError(f"not an http://host:port URL: {url}")
        self.url = url
        self._host, self._port = parsed.hostname, parsed.port
        self._timeout = timeout
        self._connection: http.client.HTTPConnection | None = None
        self._ids = itertools.count(1)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def post(self, body: bytes) -> Any:
        """Send a request body and parse the answer; one reconnect if a kept connection went stale (a
        repeated `tx_submit` is harmless: the node answers "admitted" for a transaction it already holds)."""
        for attempt in range(2):
            if self._connection is None:
                self._connection = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
            try:
                self._connection.request("POST", "/", body, {"Content-Type": "application/json"})
                response = self._connection.getresponse()
                data = response.read()
                if response.will_close:
                    self.close()
                return json.loads(data) if data else None
            except (OSError, http.client.HTTPException, ValueError) as exc:
                self.close()
                if attempt:
                    raise RpcFailure(f"{self.url}: {exc!r}") from None
        raise AssertionError("unreachable")

    def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        request: dict[str, Any] = {"jsonrpc": "2.0", "id": next(self._ids), "method": method}
        if params:
            request["params"] = params
        return result_of(self.post(json.dumps(request).encode()), method, self.url)

    def call_many(self, method: str, params: list[dict[str, Any]], missing_ok: bool = False) -> list[Any]:
        """One method over many params, in JSON-RPC batches; the results in order. An error answer raises,
        or with `missing_ok` stands as None in the results."""
        results: list[Any] = []
        for start in range(0, len(params), MAX_BATCH_REQUESTS):
            chunk = params[start : start + MAX_BATCH_REQUESTS]
            requests = [
                {"jsonrpc": "2.0", "id": i, "method": method, "params": p} for i, p in enumerate(chunk)
            ]
            answers = self.post(json.dumps(requests).encode())
            if not isinstance(answers, list) or len(answers) != len(chunk):
                raise RpcFailure(f"{self.url}: a malformed batch answer to {method}")
            by_id = {a.get("id"): a for a in answers if isinstance(a, dict)}
            for i in range(len(chunk)):
                try:
                    results.append(result_of(by_id.get(i), method, self.url))
                except RpcFailure as exc:
                    if not missing_ok or exc.code is None:
                        raise
                    results.append(None)
        return results


def result_of(answer: Any, method: str, url: str) -> Any:
    if not isinstance(answer, dict):
        raise RpcFailure(f"{url}: no JSON-RPC answer to {method}")
    error = answer.get("error")
    if isinstance(error, dict):
        raise RpcFailure(f"{url}: {method}: {error.get('message')}", error.get("code"), error.get("data"))
    if "result" not in answer:
        raise RpcFailure(f"{url}: a malformed answer to {method}")
    return answer["result"]
