"""The pure JSON-RPC layer: any input gives a well-formed response or none, never an exception; params
schemas and the JSON shaping rules."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.keys import PrivateKey, address_text
from node.rpc.api import Address, CommitTimeout, MempoolFull, NotFound, Syncing, TxRejected
from node.rpc.limits import MAX_BATCH_REQUESTS
from node.rpc.methods import api_error_to_rpc
from node.rpc.params import AddressText, Hex, HexList, Int, InvalidParams, Param, Text, bind_params
from node.rpc.protocol import Dispatcher, Method, RpcError
from node.rpc.shape import ShapeError, to_json

ALICE = Address(PrivateKey(b"\x01" * 32).public.raw)


async def echo(params: dict[str, object]) -> object:
    return {"count": params["count"], "name": params["name"]}


async def crash(params: dict[str, object]) -> object:
    raise KeyError("internal")


async def refuse(params: dict[str, object]) -> object:
    raise RpcError(-32001, "nothing here", {"what": "x"})


async def bad_result(params: dict[str, object]) -> object:
    return {"value": b"raw bytes are not JSON"}


METHODS = [
    Method("echo", (Param("count", Int(0, 10)), Param("name", Text(), required=False, default="x")), echo),
    Method("crash", (), crash),
    Method("refuse", (), refuse),
    Method("bad_result", (), bad_result),
    Method(
        "admin_x",
        (Param("count", Int(0, 10)), Param("name", Text(), required=False, default="x")),
        echo,
        operator=True,
    ),
]
NAMES = [method.name for method in METHODS]


def handle(body: bytes) -> bytes | None:
    logging.disable(logging.CRITICAL)
    try:
        return trio.run(Dispatcher(METHODS).handle, body)
    finally:
        logging.disable(logging.NOTSET)


def is_notification(request: object) -> bool:
    """A valid request object without an id (written independently of the code under test)."""
    return (
        isinstance(request, dict)
        and request.get("jsonrpc") == "2.0"
        and type(request.get("method")) is str
        and "id" not in request
        and ("params" not in request or type(request["params"]) in (list, dict))
    )


def check_response(response: Any) -> None:
    assert isinstance(response, dict)
    assert response.get("jsonrpc") == "2.0"
    assert "id" in response and (response["id"] is None or type(response["id"]) in (str, int, float))
    assert ("result" in response) != ("error" in response)
    assert set(response) <= {"jsonrpc", "id", "result", "error"}
    if "error" in response:
        error = response["error"]
        assert type(error["code"]) is int and isinstance(error["message"], str)
        assert set(error) <= {"code", "message", "data"}


def check_exchange(body: bytes, answer: bytes | None) -> None:
    """The answer is what the spec allows for the body: None only for notifications, else valid responses."""
    try:
        request = json.loads(body)
    except (ValueError, RecursionError):
        request = None
        assert answer is not None
    if answer is None:
        batch = request if isinstance(request, list) else [request]
        assert batch and all(is_notification(item) for item in batch)
        return
    response = json.loads(answer)
    if isinstance(response, list):
        assert isinstance(request, list) and response
        assert len(response) == sum(not is_notification(item) for item in request)
        for item in response:
            check_response(item)
    else:
        check_response(response)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=6,
)
MISSING = object()


@st.composite
def request_objects(draw: st.DrawFn) -> Any:
    """Request objects near the valid ones: each member drawn from valid and invalid choices."""
    request: dict[str, object] = {}
    members = {
        "jsonrpc": st.sampled_from(["2.0"] * 6 + ["1.0", 2.0, None, MISSING]),
        "method": st.sampled_from(NAMES * 3 + ["nope", "rpc.x", 1, None, MISSING]),
        "params": st.one_of(
            st.just(MISSING),
            st.fixed_dictionaries({"count": st.integers(-1, 11)}, optional={"name": st.text(max_size=4)}),
            st.dictionaries(st.sampled_from(["count", "name", "extra"]), json_values, max_size=3),
            json_values,
        ),
        "id": st.one_of(st.just(MISSING), st.none(), st.integers(), st.text(max_size=5), json_values),
    }
    for name, strategy in members.items():
        value = draw(strategy)
        if value is not MISSING:
            request[name] = value
    return request


bodies = st.one_of(
    request_objects(),
    st.lists(request_objects(), max_size=6),
    request_objects().map(lambda request: [request] * (MAX_BATCH_REQUESTS + 1)),
    json_values,
).map(lambda value: json.dumps(value).encode())


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=bodies)
def test_json_bodies_get_the_answer_the_spec_allows(body: bytes) -> None:
    check_exchange(body, handle(body))


@settings(max_examples=200, deadline=None)
@given(body=st.binary(max_size=200) | st.text(max_size=60).map(str.encode))
def test_any_bytes_get_a_well_formed_answer(body: bytes) -> None:
    check_exchange(body, handle(body))


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=bodies, cut=st.integers(min_value=0, max_value=400), junk=st.binary(max_size=4))
def test_mangled_json_gets_a_well_formed_answer(body: bytes, cut: int, junk: bytes) -> None:
    mangled = body[:cut] + junk + body[cut + len(junk) :]
    check_exchange(mangled, handle(mangled))


@st.composite
def echo_requests(draw: st.DrawFn) -> dict[str, object]:
    request: dict[str, object] = {
        "jsonrpc": "2.0",
        "method": "echo",
        "params": {"count": draw(st.integers(0, 10))},
    }
    request_id = draw(
        st.one_of(st.just(MISSING), st.none(), st.integers(-(2**53), 2**53), st.text(max_size=5))
    )
    if request_id is not MISSING:
        request["id"] = request_id
    return request


@settings(max_examples=50, deadline=None)
@given(batch=st.lists(echo_requests(), min_size=1, max_size=20))
def test_valid_batches_answer_each_request_once_by_id(batch: list[dict[str, Any]]) -> None:
    answer = handle(json.dumps(batch).encode())
    expected = [(r["id"], {"count": r["params"]["count"], "name": "x"}) for r in batch if "id" in r]
    if not expected:
        assert answer is None
    else:
        assert answer is not None
        assert [(item["id"], item["result"]) for item in json.loads(answer)] == expected


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
        b"1" * 5_000,
        b"1e999",
        b'{"jsonrpc":"2.0","method":"echo","params":{"count":1e999},"id":1}',
        b'{"jsonrpc":"2.0","method":"echo","params":{"count":Infinity},"id":1}',
        '{"jsonrpc":"2.0","method":"echo","id":"\ud800"}'.encode("utf-8", "surrogatepass"),
        b'{"jsonrpc":"2.0","method":"echo","params":{"count":1,"name":"\\ud800"},"id":"\\udfff"}',
        "\ufeff".encode() + b'{"jsonrpc":"2.0","method":"echo","params":{"count":1},"id":1}',
        '{"jsonrpc":"2.0","method":"echo","params":{"count":1},"id":1}'.encode("utf-16"),
    ],
    ids=["deep arrays", "deep objects", "long integer", "huge float", "huge float param", "Infinity",
         "lone surrogate bytes", "escaped lone surrogate", "utf-8 BOM", "utf-16"],
)  # fmt: skip
def test_hostile_bodies(body: bytes) -> None:
    check_exchange(body, handle(body))


def answer_of(request: object) -> Any:
    answer = handle(json.dumps(request).encode())
    assert answer is not None
    return json.loads(answer)


def test_results_and_errors_are_exact() -> None:
    ok = answer_of({"jsonrpc": "2.0", "method": "echo", "params": {"count": 3}, "id": "a"})
    assert ok == {"jsonrpc": "2.0", "result": {"count": 3, "name": "x"}, "id": "a"}
    refused = answer_of({"jsonrpc": "2.0", "method": "refuse", "id": 7})
    assert refused["error"] == {"code": -32001, "message": "Not found: nothing here", "data": {"what": "x"}}
    crashed = answer_of({"jsonrpc": "2.0", "method": "crash", "id": 8})
    assert crashed["error"] == {"code": -32603, "message": "Internal error"}
    unjsonable = answer_of({"jsonrpc": "2.0", "method": "bad_result", "id": 9})
    assert unjsonable["error"]["code"] == -32603
    disabled = answer_of({"jsonrpc": "2.0", "method": "admin_x", "params": {"count": 1}, "id": 10})
    assert disabled["error"]["code"] == -32004


async def test_operator_methods_run_when_enabled() -> None:
    dispatcher = Dispatcher(METHODS, operator_enabled=True)
    answer = await dispatcher.handle(b'{"jsonrpc":"2.0","method":"admin_x","params":{"count":2},"id":1}')
    assert answer is not None and json.loads(answer)["result"] == {"count": 2, "name": "x"}


def test_a_method_name_is_registered_once() -> None:
    with pytest.raises(ValueError, match="twice"):
        Dispatcher([METHODS[0], METHODS[0]])


async def test_cancellation_is_not_swallowed() -> None:
    async def blocks(params: dict[str, object]) -> object:
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    dispatcher = Dispatcher([Method("block", (), blocks)])
    with trio.move_on_after(0.01) as scope:
        await dispatcher.handle(b'{"jsonrpc":"2.0","method":"block","id":1}')
    assert scope.cancelled_caught


# Params schemas.


SCHEMA = (
    Param("height", Int(1, 100)),
    Param("hash", Hex(size=4), required=False),
    Param("tx", Hex(max_size=3), required=False),
    Param("txs", HexList(Hex(max_size=2), 2), required=False),
    Param("wait", Text(choices=("none", "commit")), required=False, default="none"),
    Param("owner", AddressText(), required=False),
)


def test_params_bind_to_checked_values() -> None:
    bound = bind_params(
        SCHEMA,
        {"height": 5, "hash": "00FFaa11", "txs": ["ab", "cdef"], "owner": address_text(bytes(ALICE))},
    )
    assert bound == {
        "height": 5,
        "hash": b"\x00\xff\xaa\x11",
        "tx": None,
        "txs": [b"\xab", b"\xcd\xef"],
        "wait": "none",
        "owner": ALICE,
    }
    assert isinstance(bound["owner"], Address)


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({}, "height"),
        ({"height": 0}, "height"),
        ({"height": 101}, "height"),
        ({"height": True}, "height"),
        ({"height": 5.0}, "height"),
        ({"height": 5, "hash": "00ff"}, "hash"),
        ({"height": 5, "hash": "0 ff aa1"}, "hash"),
        ({"height": 5, "hash": "+0ffaa1"}, "hash"),
        ({"height": 5, "tx": ""}, "tx"),
        ({"height": 5, "tx": "aabbccdd"}, "tx"),
        ({"height": 5, "txs": "ab"}, "txs"),
        ({"height": 5, "txs": ["ab", "ab", "ab"]}, "txs"),
        ({"height": 5, "txs": ["ab", 3]}, "txs"),
        ({"height": 5, "wait": "Commit"}, "wait"),
        ({"height": 5, "owner": "fm1qqqq"}, "owner"),
        ({"height": 5, "owner": bytes(ALICE).hex()}, "owner"),
        ({"height": 5, "other": 1}, "other"),
    ],
)
def test_params_are_refused_naming_the_param(params: dict[str, object], param: str) -> None:
    with pytest.raises(InvalidParams) as refused:
        bind_params(SCHEMA, params)
    assert refused.value.param == param and param in refused.value.message


@pytest.mark.parametrize("params", [[5], "x", 5])
def test_params_must_be_named(params: object) -> None:
    with pytest.raises(InvalidParams, match="by name"):
        bind_params(SCHEMA, params)


@settings(max_examples=80, deadline=None)
@given(params=st.dictionaries(st.sampled_from([p.name for p in SCHEMA] + ["x"]), json_values, max_size=4))
def test_binder_raises_only_invalid_params(params: dict[str, object]) -> None:
    try:
        bound = bind_params(SCHEMA, params)
    except InvalidParams as refused:
        assert refused.param is None or refused.param in params or refused.param == "height"
        return
    assert set(bound) == {p.name for p in SCHEMA}


# Shaping rules.


@dataclass(frozen=True)
class View:
    owner: Address
    order_id: bytes
    amount: int
    note: str | None


def test_views_shape_to_hex_addresses_and_integers() -> None:
    view = View(ALICE, b"\xab\x01", 2**53 - 1, None)
    assert to_json([view, {"k": (1, True)}]) == [
        {"owner": address_text(bytes(ALICE)), "order_id": "ab01", "amount": 2**53 - 1, "note": None},
        {"k": [1, True]},
    ]


@pytest.mark.parametrize("value", [1.5, 2**53, -(2**53), {1: 2}, {"x": object()}, {b"k": 1}, {1, 2}])
def test_values_without_a_rule_are_refused(value: object) -> None:
    with pytest.raises(ShapeError):
        to_json(value)


def test_address_is_32_bytes() -> None:
    with pytest.raises(ValueError, match="32"):
        Address(b"\x01" * 31)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (NotFound("no block"), -32001),
        (TxRejected("bad_nonce", "nonce 3 used"), -32000),
        (MempoolFull(), -32002),
        (CommitTimeout([b"\x01" * 32], 5000), -32003),
        (Syncing(3, None), -32005),
    ],
)
def test_api_errors_map_to_documented_codes(error: Exception, code: int) -> None:
    assert isinstance(error, NotFound | TxRejected | MempoolFull | CommitTimeout | Syncing)
    rpc = api_error_to_rpc(error)
    assert rpc.code == code
    json.dumps(rpc.to_json(), allow_nan=False)
