"""JSON-RPC 2.0 without I/O: from request body bytes to response body bytes.

Theory (https://www.jsonrpc.org/specification): a body is one request object or a batch (a non-empty array of
them). A request object has `jsonrpc: "2.0"`, a string `method`, optional structured `params` and an optional
`id` (string, number or null); without `id` it is a notification and gets no response, even on error. Errors
we detect before an id can be read (parse error, an invalid request object) answer with `id: null`; when the
request object is invalid but its id is well formed, the id is echoed so the client can match it. A batch
gets an array of the responses it produced, in request order, and nothing at all when it held only
notifications (the HTTP layer then answers 204 with an empty body). Handlers run one after another.
Exceptions other than `RpcError` never reach the client: they are logged with their traceback here and
answered with -32603 and no detail.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from node.rpc.limits import MAX_BATCH_REQUESTS
from node.rpc.params import InvalidParams, Param, bind_params

log = logging.getLogger("fedmarket.rpc")

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
TX_REJECTED = -32000
NOT_FOUND = -32001
MEMPOOL_FULL = -32002
COMMIT_TIMEOUT = -32003
METHOD_DISABLED = -32004
SYNCING = -32005

ERROR_MESSAGES = {
    PARSE_ERROR: "Parse error",
    INVALID_REQUEST: "Invalid Request",
    METHOD_NOT_FOUND: "Method not found",
    INVALID_PARAMS: "Invalid params",
    INTERNAL_ERROR: "Internal error",
    TX_REJECTED: "Transaction rejected",
    NOT_FOUND: "Not found",
    MEMPOOL_FULL: "Mempool full",
    COMMIT_TIMEOUT: "Timeout waiting for commit",
    METHOD_DISABLED: "Method disabled",
    SYNCING: "Node syncing",
}

RequestId = str | int | float | None
Handler = Callable[[dict[str, object]], Awaitable[object]]


class RpcError(Exception):
    """An error answered to the client as it is: code, one-sentence message, optional JSON data."""

    def __init__(self, code: int, detail: str | None = None, data: object = None) -> None:
        message = ERROR_MESSAGES.get(code, "Server error")
        if detail:
            message = f"{message}: {detail}"
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def to_json(self) -> dict[str, object]:
        error: dict[str, object] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


@dataclass(frozen=True, slots=True)
class Method:
    """A callable method: its name, its param schema, its handler and whether it is an operator method."""

    name: str
    params: tuple[Param, ...]
    handler: Handler
    summary: str = ""
    operator: bool = False


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:32]} is out of range")
    return value


def parse_body(body: bytes) -> object:
    """The JSON value of a request body; anything that is not JSON raises `RpcError(PARSE_ERROR)`."""
    try:
        return json.loads(body, parse_constant=_reject_constant, parse_float=_finite_float)
    except (ValueError, RecursionError) as exc:
        raise RpcError(PARSE_ERROR, _first_line(str(exc))) from None


def _first_line(text: str) -> str:
    return text.splitlines()[0][:200] if text else "invalid JSON"


def _valid_id(value: object) -> bool:
    return value is None or (isinstance(value, str | int | float) and not isinstance(value, bool))


def _response(request_id: RequestId, *, result: object = None, error: RpcError | None = None) -> str:
    body: dict[str, object] = {"jsonrpc": "2.0"}
    if error is None:
        body["result"] = result
    else:
        body["error"] = error.to_json()
    body["id"] = request_id
    return json.dumps(body, allow_nan=False, separators=(",", ":"))


class Dispatcher:
    """Routes request bodies to registered methods and builds the response body."""

    def __init__(self, methods: Iterable[Method], *, operator_enabled: bool = False) -> None:
        self._methods: dict[str, Method] = {}
        for method in methods:
            if method.name in self._methods:
                raise ValueError(f"method {method.name!r} registered twice")
            self._methods[method.name] = method
        self.operator_enabled = operator_enabled

    async def handle(self, body: bytes) -> bytes | None:
        """The response body for a request body, or None when nothing is to be answered."""
        try:
            message = parse_body(body)
        except RpcError as error:
            return _response(None, error=error).encode()
        if not isinstance(message, list):
            answer = await self._handle_one(message)
            return None if answer is None else answer.encode()
        if not message:
            return _response(None, error=RpcError(INVALID_REQUEST, "empty batch")).encode()
        if len(message) > MAX_BATCH_REQUESTS:
            detail = f"batch of {len(message)} requests exceeds the limit of {MAX_BATCH_REQUESTS}"
            return _response(None, error=RpcError(INVALID_REQUEST, detail)).encode()
        answers = []
        for request in message:
            answer = await self._handle_one(request)
            if answer is not None:
                answers.append(answer)
        if not answers:
            return None
        return ("[" + ",".join(answers) + "]").encode()

    async def _handle_one(self, request: object) -> str | None:
        if not isinstance(request, dict):
            return _response(None, error=RpcError(INVALID_REQUEST, "a request must be a JSON object"))
        has_id = "id" in request
        request_id = request.get("id")
        problem = _request_problem(request)
        if problem is not None:
            echoed = request_id if has_id and _valid_id(request_id) else None
            return _response(echoed, error=RpcError(INVALID_REQUEST, problem))
        assert isinstance(request_id, str | int | float | None)
        method_name = request["method"]
        try:
            result = await self._call(method_name, request.get("params"))
        except RpcError as error:
            log.debug(
                "rpc.call method=%.100s code=%d", method_name, error.code, extra={"rpc_code": error.code}
            )
            return _response(request_id, error=error) if has_id else None
        if not has_id:
            return None
        try:
            return _response(request_id, result=result)
        except (TypeError, ValueError):
            log.exception("rpc result is not JSON", extra={"rpc_method": method_name})
            return _response(request_id, error=RpcError(INTERNAL_ERROR))

    async def _call(self, name: str, params: object) -> object:
        method = self._methods.get(name)
        if method is None:
            raise RpcError(METHOD_NOT_FOUND, f"no method {name[:100]!r}")
        if method.operator and not self.operator_enabled:
            raise RpcError(METHOD_DISABLED, f"{name} is an operator method and is not enabled on this node")
        try:
            bound = bind_params(method.params, params)
        except InvalidParams as exc:
            data = {"param": exc.param} if exc.param is not None else None
            raise RpcError(INVALID_PARAMS, exc.message, data) from None
        try:
            return await method.handler(bound)
        except RpcError:
            raise
        except Exception:
            log.exception("rpc method failed", extra={"rpc_method": name})
            raise RpcError(INTERNAL_ERROR) from None


def _request_problem(request: dict[str, object]) -> str | None:
    """Why a request object breaks the spec, or None when it is valid."""
    if request.get("jsonrpc") != "2.0":
        return 'member "jsonrpc" must be exactly "2.0"'
    if not isinstance(request.get("method"), str):
        return 'member "method" must be a string'
    if "params" in request and not isinstance(request["params"], list | dict):
        return 'member "params" must be an object or an array'
    if "id" in request and not _valid_id(request["id"]):
        return 'member "id" must be a string, a number or null'
    return None
