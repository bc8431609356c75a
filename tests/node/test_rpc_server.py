"""JSON-RPC 2.0 conformance and the node methods, over a real hypercorn server on 127.0.0.1.

The node runtime is behind the `NodeApi` protocol; `CannedNode` below implements it with fixed data so that
every answer of the HTTP and JSON-RPC layers can be checked exactly.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
import pytest
import trio
import trio.testing

from ledger.keys import PrivateKey, address_text
from node.rpc.api import (
    AccountInfo,
    Address,
    Admission,
    BidInfo,
    BlockInfo,
    BookInfo,
    BookLevel,
    CertificateInfo,
    CommitTime,
    CommitTimeout,
    GenesisInfo,
    Head,
    Header,
    InclusionProof,
    LeaseInfo,
    MarketInfo,
    MempoolFull,
    NodeMetrics,
    NodeStatus,
    NotFound,
    OfferInfo,
    OrderKind,
    PeerInfo,
    PriceInfo,
    PricePoint,
    QuoteInfo,
    Receipt,
    Syncing,
    TradeInfo,
    TxInfo,
    TxLocation,
    TxRejected,
    ValidatorInfo,
    ValidatorSetInfo,
    Vote,
    Wait,
)
from node.rpc.limits import (
    MAX_BATCH_REQUESTS,
    MAX_BODY_BYTES,
    MAX_LIST_RESULTS,
    MAX_SUBMIT_TXS,
    SHUTDOWN_GRACE_S,
)
from node.rpc.methods import rpc_methods
from node.rpc.params import Int, Param
from node.rpc.protocol import Dispatcher, Method
from node.rpc.server import RpcServer

WAIT_BOUND_S = 10.0
ALICE = Address(PrivateKey(b"\x01" * 32).public.raw)
BOB = Address(PrivateKey(b"\x02" * 32).public.raw)
SECRET = "secret-internal-detail-/var/lib/fedmarket"

# Transactions the canned node treats specially, by their first byte.
REJECTED_TX = b"\x00" + b"r" * 40
FULL_TX = b"\xff" + b"f" * 40
SLOW_TX = b"\xee" + b"s" * 40


def tx_hash(tx: bytes) -> bytes:
    return bytes([tx[0]]) * 32


def receipt(tx: bytes) -> Receipt:
    return Receipt(tx_hash(tx), 0, "ok", "", (b"\x07" * 32,))


HEADER = Header(
    1, "fm-test", 1, b"\x00" * 32, 1_700_000_000_000, ALICE, b"\x11" * 32, b"\x22" * 32, b"\x33" * 32
)
TX_ONE = TxInfo(b"\xab" * 32, b"\x93\x01", "transfer", ALICE, 0, {"to": BOB, "amount": 5_000_000})
BLOCK_ONE = BlockInfo(
    hash=b"\xbb" * 32,
    header=HEADER,
    encoded=b"\x01\x02",
    txs=(TX_ONE,),
    receipts=(Receipt(TX_ONE.hash, 0, "ok", ""),),
    certificate=CertificateInfo(0, b"\xbb" * 32, (Vote(ALICE, b"\x5a" * 64),), b"\x03"),
)


class CannedNode:
    """A NodeApi with fixed answers; `submit` with wait="commit" blocks until `commit_gate` is set."""

    def __init__(self) -> None:
        self.syncing = False
        self.commit_gate = trio.Event()
        self.commit_waiting = trio.Event()
        self.submitted: list[tuple[list[bytes], Wait]] = []
        self.offer_count = 3

    def status(self) -> NodeStatus:
        return NodeStatus("fm-test", "dc-paris", "member", 1, 0, ALICE, 3, self.syncing, 0)

    def peers(self) -> Sequence[PeerInfo]:
        return [
            PeerInfo(
                "12D3KooWpeer", "dc-berlin", True, True, 10, {"frames_in": 4}, ("consensus-in", "relay-in")
            )
        ]

    def metrics(self) -> NodeMetrics:
        return NodeMetrics(
            1200,
            900,
            96,
            12,
            1200,
            108,
            107,
            150,
            402_113,
            90,
            61_200,
            55,
            339_913,
            5,
            1_000,
            {"duplicates": 3},
            {"links_refused": 2},
            {"collections_gen0": 40, "pause_us_gen0": 1_200},
        )

    def commit_times(self, from_height: int | None, limit: int) -> Sequence[CommitTime]:
        remembered = [CommitTime(h, 1_700_000_000_000_000 + 7_000 * h, 10 * h) for h in range(3, 9)]
        start = 0 if from_height is None else from_height
        return [c for c in remembered if c.height >= start][:limit]

    def head(self) -> Head:
        return Head(1, b"\xbb" * 32, HEADER.timestamp_ms)

    def block(self, height: int) -> BlockInfo:
        if height != 1:
            raise NotFound(f"no block at height {height}")
        return BLOCK_ONE

    def tx(self, tx_hash: bytes) -> TxLocation:
        if tx_hash != TX_ONE.hash:
            raise NotFound("no such transaction")
        proof = InclusionProof(0, 1, (), HEADER.tx_root)
        return TxLocation(TX_ONE, BLOCK_ONE.receipts[0], 1, 0, BLOCK_ONE.hash, proof)

    def validators(self) -> ValidatorSetInfo:
        return ValidatorSetInfo(b"\x33" * 32, 1, 3, (ValidatorInfo(0, "dc-paris", ALICE),))

    def genesis(self) -> GenesisInfo:
        return GenesisInfo(b"\x44" * 32, {"chain_id": "fm-test", "regions": ["eu-west"]})

    async def submit(self, txs: Sequence[bytes], wait: Wait) -> Sequence[Admission]:
        if self.syncing:
            raise Syncing(1, 9)
        self.submitted.append((list(txs), wait))
        if any(tx.startswith(SLOW_TX[:1]) for tx in txs):
            raise CommitTimeout([tx_hash(tx) for tx in txs], 30_000)
        refusals: list[TxRejected | MempoolFull | None] = []
        for tx in txs:
            if tx.startswith(REJECTED_TX[:1]):
                refusals.append(TxRejected("BAD_SIGNATURE", "signature does not verify"))
            elif tx.startswith(FULL_TX[:1]):
                refusals.append(MempoolFull("mempool holds 100000 transactions"))
            else:
                refusals.append(None)
        if wait == "commit":
            self.commit_waiting.set()
            await self.commit_gate.wait()
            return [
                Admission(tx_hash(tx), refusal) if refusal else Admission(tx_hash(tx), None, 7, receipt(tx))
                for tx, refusal in zip(txs, refusals, strict=True)
            ]
        return [Admission(tx_hash(tx), refusal) for tx, refusal in zip(txs, refusals, strict=True)]

    def account(self, address: Address) -> AccountInfo:
        if address != ALICE:
            raise NotFound("no such account")
        return AccountInfo(address, 2**53 - 1, 250, 4)

    def classes(self) -> MarketInfo:
        return MarketInfo(("vcpu", "gpu-a100"), ("eu-west", "us-east"))

    def orders(
        self,
        kind: OrderKind,
        resource_class: str | None,
        region: str | None,
        owner: Address | None,
        limit: int,
    ) -> Sequence[OfferInfo | BidInfo]:
        orders: list[OfferInfo | BidInfo] = []
        for seq in range(min(self.offer_count, limit)):
            if kind == "offer":
                orders.append(
                    OfferInfo(seq.to_bytes(32, "big"), ALICE, "vcpu", "eu-west", 8, 100, 0, 3600, seq)
                )
            else:
                orders.append(BidInfo(seq.to_bytes(32, "big"), BOB, "vcpu", "eu-west", 2, 150, 600, 900, seq))
        return [o for o in orders if owner is None or o.owner == owner]

    def book(self, resource_class: str, region: str) -> BookInfo:
        return BookInfo(resource_class, region, (BookLevel(150, 2),), (BookLevel(100, 8), BookLevel(120, 1)))

    def trades(self, from_height: int | None, limit: int) -> Sequence[TradeInfo]:
        every = [
            TradeInfo(
                h, bytes([h]) * 32, b"\x01" * 32, b"\x02" * 32, BOB, ALICE, "vcpu", "eu-west", 1, 125, 600
            )
            for h in range(1, 6)
        ]
        if from_height is None:
            return every[-limit:]
        return [t for t in every if t.height >= from_height][:limit]

    def price(self, resource_class: str, region: str) -> PriceInfo:
        return PriceInfo(resource_class, region, 125, (PricePoint(4, 120, 3), PricePoint(5, 125, 1)))

    def quote(self, resource_class: str, region: str, quantity: int, duration: int) -> QuoteInfo:
        return QuoteInfo(
            resource_class, region, quantity, duration, min(quantity, 8), 100, 100 * duration // 3600
        )

    def lease(self, lease_id: bytes) -> LeaseInfo:
        if lease_id != b"\x07" * 32:
            raise NotFound("no such lease")
        return LeaseInfo(
            lease_id, b"\x01" * 32, b"\x02" * 32, BOB, ALICE, "vcpu", "eu-west", 2, 125, 1000, 1600, 41,
            "active", 1300, b"\x09" * 32, b"\x0a" * 48,
        )  # fmt: skip

    def leases(self, owner: Address | None, limit: int) -> Sequence[LeaseInfo]:
        return [self.lease(b"\x07" * 32)] if owner in (None, ALICE, BOB) else []


async def crash(params: dict[str, object]) -> object:
    raise RuntimeError(SECRET)


async def float_result(params: dict[str, object]) -> object:
    return {"price": float("nan")}


async def operator_echo(params: dict[str, object]) -> object:
    return params["value"]


def methods_for(node: CannedNode) -> list[Method]:
    return [
        *rpc_methods(node),
        Method("test_crash", (), crash),
        Method("test_nan", (), float_result),
        Method("admin_echo", (Param("value", Int()),), operator_echo, operator=True),
    ]


def local_client(base_url: str = "") -> httpx.AsyncClient:
    """An HTTP client for the loopback server (plain HTTP: no CA bundle to load)."""
    return httpx.AsyncClient(base_url=base_url, timeout=WAIT_BOUND_S, verify=False)


@pytest.fixture
def node() -> CannedNode:
    return CannedNode()


@pytest.fixture
async def server(node: CannedNode, nursery: trio.Nursery) -> AsyncIterator[str]:
    url = await nursery.start(RpcServer(Dispatcher(methods_for(node)), port=0).run)
    yield url
    nursery.cancel_scope.cancel()


@pytest.fixture
async def client(server: str) -> AsyncIterator[httpx.AsyncClient]:
    async with local_client(server) as http:
        yield http


async def post(client: httpx.AsyncClient, body: bytes | str) -> httpx.Response:
    return await client.post("/", content=body.encode() if isinstance(body, str) else body)


def summary(response: Any) -> Any:
    """(id, error code) for an error, (id, "result") for a success: what the conformance table compares."""
    assert set(response) in ({"jsonrpc", "id", "result"}, {"jsonrpc", "id", "error"}), response
    assert response["jsonrpc"] == "2.0"
    if "error" in response:
        error = response["error"]
        assert isinstance(error["code"], int) and isinstance(error["message"], str) and error["message"]
        assert set(error) <= {"code", "message", "data"}
        return (response["id"], error["code"])
    return (response["id"], "result")


def req(method: object, params: object = None, id: object = 1, **extra: object) -> dict[str, object]:
    request: dict[str, object] = {"jsonrpc": "2.0", "method": method, **extra}
    if params is not None:
        request["params"] = params
    if id is not ...:
        request["id"] = id
    return request


def call(method: object, params: object = None, id: object = 1, **extra: object) -> str:
    return json.dumps(req(method, params, id, **extra))


NOTIFY = ...
TYPO_ADDRESS = address_text(bytes(ALICE))[:-1] + ("q" if address_text(bytes(ALICE))[-1] != "q" else "p")

CONFORMANCE = [
    # Parse errors: the id cannot be read, so it is null.
    ("invalid JSON", '{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]', (None, -32700)),
    ("not UTF-8", b"\xff\xfe\xfd{", (None, -32700)),
    ("empty body", b"", (None, -32700)),
    ("NaN is not JSON", '{"jsonrpc":"2.0","method":"chain_head","id":NaN}', (None, -32700)),
    ("trailing garbage", call("chain_head") + "}", (None, -32700)),
    # Invalid request objects.
    ("jsonrpc 1.0", call("chain_head", jsonrpc="1.0"), (1, -32600)),
    ("jsonrpc as number", call("chain_head", jsonrpc=2.0), (1, -32600)),
    ("jsonrpc missing", '{"method":"chain_head","id":1}', (1, -32600)),
    ("method not a string", '{"jsonrpc": "2.0", "method": 1, "params": "bar"}', (None, -32600)),
    ("method missing", '{"jsonrpc": "2.0", "id": 4}', (4, -32600)),
    ("params a string", call("chain_head", "bar", id=2), (2, -32600)),
    ("params a number", call("chain_head", 3, id=2), (2, -32600)),
    ("id a boolean", call("chain_head", id=True), (None, -32600)),
    ("id an object", call("chain_head", id={"a": 1}), (None, -32600)),
    ("id an array", call("chain_head", id=[1]), (None, -32600)),
    ("request a number", "1", (None, -32600)),
    ("request a string", '"chain_head"', (None, -32600)),
    ("request null", "null", (None, -32600)),
    # Ids of every allowed type are echoed; a null id is a request, not a notification.
    ("string id", call("chain_head", id="abc"), ("abc", "result")),
    ("fractional id", call("chain_head", id=1.5), (1.5, "result")),
    ("null id", call("chain_head", id=None), (None, "result")),
    ("positional empty params", call("chain_head", []), (1, "result")),
    # Unknown methods.
    ("unknown method", call("foobar"), (1, -32601)),
    ("rpc. is reserved", call("rpc.discover"), (1, -32601)),
    # Bad params.
    ("missing param", call("chain_block", {}), (1, -32602)),
    ("params omitted", call("chain_block"), (1, -32602)),
    ("null for a required param", call("chain_block", {"height": None}), (1, -32602)),
    ("string for an integer", call("chain_block", {"height": "1"}), (1, -32602)),
    ("boolean for an integer", call("chain_block", {"height": True}), (1, -32602)),
    ("float for an integer", call("chain_block", {"height": 1.0}), (1, -32602)),
    ("negative height", call("chain_block", {"height": -1}), (1, -32602)),
    ("integer beyond 2^53", call("chain_block", {"height": 2**53}), (1, -32602)),
    ("extra unknown param", call("node_status", {"verbose": True}), (1, -32602)),
    ("metrics take no params", call("node_metrics", {"since": 1}), (1, -32602)),
    ("commit times from a negative height", call("node_commit_times", {"from_height": -1}), (1, -32602)),
    ("commit times limit zero", call("node_commit_times", {"limit": 0}), (1, -32602)),
    (
        "commit times limit over the cap",
        call("node_commit_times", {"limit": MAX_LIST_RESULTS + 1}),
        (1, -32602),
    ),
    ("commit times from a float", call("node_commit_times", {"from_height": 2.0}), (1, -32602)),
    ("positional params", call("chain_block", [1]), (1, -32602)),
    ("hex with odd digits", call("chain_tx", {"hash": "a" * 63}), (1, -32602)),
    ("hex not hex", call("chain_tx", {"hash": "zz" * 32}), (1, -32602)),
    ("hex too short", call("lease_get", {"id": "ab" * 31}), (1, -32602)),
    ("address with a typo", call("account_get", {"address": TYPO_ADDRESS}), (1, -32602)),
    ("address as bytes hex", call("account_get", {"address": bytes(ALICE).hex()}), (1, -32602)),
    ("wait not in enum", call("tx_submit", {"tx": "abcd", "wait": "maybe"}), (1, -32602)),
    ("tx and txs both", call("tx_submit", {"tx": "abcd", "txs": ["abcd"]}), (1, -32602)),
    ("neither tx nor txs", call("tx_submit", {"wait": "none"}), (1, -32602)),
    ("txs empty", call("tx_submit", {"txs": []}), (1, -32602)),
    ("txs over the cap", call("tx_submit", {"txs": ["ab"] * (MAX_SUBMIT_TXS + 1)}), (1, -32602)),
    ("unknown class", call("market_book", {"class": "tpu", "region": "eu-west"}), (1, -32602)),
    ("unknown region", call("market_price", {"class": "vcpu", "region": "mars"}), (1, -32602)),
    (
        "quantity zero",
        call("market_quote", {"class": "vcpu", "region": "eu-west", "quantity": 0, "duration": 60}),
        (1, -32602),
    ),
    ("limit over the cap", call("market_trades", {"limit": MAX_LIST_RESULTS + 1}), (1, -32602)),
    # Application errors.
    ("block not found", call("chain_block", {"height": 99}), (1, -32001)),
    ("lease not found", call("lease_get", {"id": "ee" * 32}), (1, -32001)),
    ("operator method disabled", call("admin_echo", {"value": 3}), (1, -32004)),
    ("internal error", call("test_crash"), (1, -32603)),
    ("result not representable", call("test_nan"), (1, -32603)),
    # Batches.
    ("empty batch", "[]", (None, -32600)),
    ("batch of garbage", "[1,2,3]", [(None, -32600)] * 3),
    ("batch of one garbage", "[1]", [(None, -32600)]),
    (
        "mixed batch with notifications",
        json.dumps(
            [
                req("chain_head", id="1"),
                req("node_status", id=NOTIFY),
                req("chain_block", {"height": 99}, id="2"),
                {"foo": "boo"},
                req("foo.get", {"name": "myself"}, id="5"),
                req("chain_block", {"height": 1}, id="9"),
                req("foobar", id=NOTIFY),
                req("chain_block", {"height": "x"}, id=NOTIFY),
            ]
        ),
        [("1", "result"), ("2", -32001), (None, -32600), ("5", -32601), ("9", "result")],
    ),
    ("batch nested in a batch", "[[]]", [(None, -32600)]),
    (
        "batch at the cap",
        json.dumps([req("chain_head", id=i) for i in range(MAX_BATCH_REQUESTS)]),
        [(i, "result") for i in range(MAX_BATCH_REQUESTS)],
    ),
    (
        "batch over the cap",
        json.dumps([req("chain_head", id=i) for i in range(MAX_BATCH_REQUESTS + 1)]),
        (None, -32600),
    ),
]


@pytest.mark.parametrize(
    ("body", "expected"), [case[1:] for case in CONFORMANCE], ids=[c[0] for c in CONFORMANCE]
)
async def test_conformance(client: httpx.AsyncClient, body: str | bytes, expected: Any) -> None:
    response = await post(client, body)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    answer = response.json()
    if isinstance(expected, list):
        assert isinstance(answer, list)
        assert [summary(item) for item in answer] == expected
    else:
        assert isinstance(answer, dict)
        assert summary(answer) == expected


NOTIFICATIONS_ONLY = [
    ("notification", call("node_status", id=NOTIFY)),
    ("notification to an unknown method", call("foobar", id=NOTIFY)),
    ("notification with bad params", call("chain_block", {"height": "x"}, id=NOTIFY)),
    ("notification that crashes", call("test_crash", id=NOTIFY)),
    ("batch of notifications", json.dumps([req("chain_head", id=NOTIFY), req("foobar", id=NOTIFY)])),
]


@pytest.mark.parametrize(
    "body", [case[1] for case in NOTIFICATIONS_ONLY], ids=[c[0] for c in NOTIFICATIONS_ONLY]
)
async def test_notifications_get_no_response(client: httpx.AsyncClient, body: str) -> None:
    response = await post(client, body)
    assert response.status_code == 204
    assert response.content == b""


async def test_internal_error_does_not_leak(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="fedmarket.rpc"):
        response = await post(client, call("test_crash"))
    assert response.json() == {
        "jsonrpc": "2.0",
        "error": {"code": -32603, "message": "Internal error"},
        "id": 1,
    }
    assert SECRET not in response.text and "Traceback" not in response.text
    logged = [record.exc_info[1] for record in caplog.records if record.exc_info]
    assert len(logged) == 1 and SECRET in str(logged[0])


async def test_error_messages_name_the_param(client: httpx.AsyncClient) -> None:
    error = (await post(client, call("chain_block", {"height": "1"}))).json()["error"]
    assert error["data"] == {"param": "height"}
    assert "height" in error["message"] and "integer" in error["message"]
    error = (await post(client, call("node_status", {"verbose": True}))).json()["error"]
    assert error["data"] == {"param": "verbose"}


@pytest.mark.parametrize(
    ("http_method", "path", "status"),
    [
        ("GET", "/", 405),
        ("PUT", "/", 405),
        ("DELETE", "/", 405),
        ("POST", "/rpc", 404),
        ("GET", "/favicon.ico", 404),
    ],
)
async def test_only_post_on_root(client: httpx.AsyncClient, http_method: str, path: str, status: int) -> None:
    response = await client.request(http_method, path, content=call("chain_head").encode())
    assert response.status_code == status
    assert summary(response.json()) == (None, -32600)
    if status == 405:
        assert response.headers["allow"] == "POST"


async def test_oversized_body_announced(client: httpx.AsyncClient, node: CannedNode) -> None:
    body = call("tx_submit", {"tx": "ab" * (MAX_BODY_BYTES // 2)})
    response = await post(client, body)
    assert response.status_code == 413
    assert summary(response.json()) == (None, -32600)
    assert node.submitted == []


async def test_oversized_body_streamed(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(MAX_BODY_BYTES // 65536 + 2):
            yield b" " * 65536

    response = await client.post("/", content=chunks())
    assert response.status_code == 413
    assert summary(response.json()) == (None, -32600)


async def test_body_at_the_cap_is_read(client: httpx.AsyncClient) -> None:
    request = call("chain_head")
    response = await post(client, request + " " * (MAX_BODY_BYTES - len(request)))
    assert response.status_code == 200
    assert summary(response.json()) == (1, "result")


async def test_lying_content_length_is_cut_off(server: str) -> None:
    """A client announcing a huge body and sending little gets its 413 before sending the rest."""
    port = int(server.rstrip("/").rsplit(":", 1)[1])
    with trio.fail_after(WAIT_BOUND_S):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            head = f"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: {10 * MAX_BODY_BYTES}\r\n\r\n"
            await stream.send_all(head.encode() + b"[")
            reply = b""
            while b"\r\n\r\n" not in reply:
                reply += await stream.receive_some(4096)
    assert reply.startswith(b"HTTP/1.1 413")


# The node methods: shapes of the results.


async def result_of(client: httpx.AsyncClient, method: str, params: object = None) -> Any:
    answer = (await post(client, call(method, params))).json()
    assert "result" in answer, answer
    return answer["result"]


async def error_of(client: httpx.AsyncClient, method: str, params: object = None) -> Any:
    answer = (await post(client, call(method, params))).json()
    assert "error" in answer, answer
    return answer["error"]


async def test_status_and_chain_queries(client: httpx.AsyncClient) -> None:
    alice = address_text(bytes(ALICE))
    status = await result_of(client, "node_status")
    assert status == {
        "chain_id": "fm-test",
        "node_name": "dc-paris",
        "role": "member",
        "height": 1,
        "view": 0,
        "proposer": alice,
        "peers": 3,
        "syncing": False,
        "mempool_size": 0,
    }
    assert await result_of(client, "chain_head") == {
        "height": 1,
        "hash": "bb" * 32,
        "timestamp_ms": HEADER.timestamp_ms,
    }
    peers = await result_of(client, "node_peers")
    assert peers["peers"][0]["counters"] == {"frames_in": 4}
    assert peers["peers"][0]["links"] == ["consensus-in", "relay-in"]
    block = await result_of(client, "chain_block", {"height": 1})
    assert block["header"]["proposer"] == alice and block["header"]["prev_hash"] == "00" * 32
    assert block["txs"][0]["body"] == {"to": address_text(bytes(BOB)), "amount": 5_000_000}
    assert block["certificate"]["votes"] == [{"signer": alice, "signature": "5a" * 64}]
    assert block["encoded"] == "0102"
    located = await result_of(client, "chain_tx", {"hash": "AB" * 32})
    assert located["height"] == 1 and located["proof"]["tx_root"] == "11" * 32
    validators = await result_of(client, "chain_validators")
    assert validators["members"] == [{"index": 0, "name": "dc-paris", "address": alice}]
    genesis = await result_of(client, "chain_genesis")
    assert genesis == {"hash": "44" * 32, "document": {"chain_id": "fm-test", "regions": ["eu-west"]}}


async def test_node_metrics_are_named_integer_counters(client: httpx.AsyncClient) -> None:
    metrics = await result_of(client, "node_metrics")
    assert metrics == {
        "signature_checks": 1200,
        "worker_signature_checks": 900,
        "vote_signature_checks": 96,
        "blocks_committed": 12,
        "txs_committed": 1200,
        "consensus_messages_sent": 108,
        "consensus_messages_received": 107,
        "network_writes": 150,
        "network_bytes_written": 402_113,
        "consensus_writes": 90,
        "consensus_bytes_written": 61_200,
        "gossip_writes": 55,
        "gossip_bytes_written": 339_913,
        "request_writes": 5,
        "request_bytes_written": 1_000,
        "consensus_counters": {"duplicates": 3},
        "network_counters": {"links_refused": 2},
        "collector_counters": {"collections_gen0": 40, "pause_us_gen0": 1_200},
    }
    assert await result_of(client, "node_metrics", []) == metrics


async def test_commit_times_page_forward_in_height_order(client: httpx.AsyncClient) -> None:
    first = await result_of(client, "node_commit_times", {"limit": 2})
    assert first == {
        "commits": [
            {"height": 3, "time_us": 1_700_000_000_021_000, "txs": 30},
            {"height": 4, "time_us": 1_700_000_000_028_000, "txs": 40},
        ],
        "truncated": True,
    }
    rest = await result_of(client, "node_commit_times", {"from_height": 5})
    assert [c["height"] for c in rest["commits"]] == [5, 6, 7, 8] and rest["truncated"] is False
    assert await result_of(client, "node_commit_times", {"from_height": 99}) == {
        "commits": [],
        "truncated": False,
    }


async def test_account_amounts_are_exact_integers(client: httpx.AsyncClient) -> None:
    alice = address_text(bytes(ALICE))
    account = await result_of(client, "account_get", {"address": alice})
    assert account == {"address": alice, "balance": 2**53 - 1, "escrow": 250, "next_nonce": 4}
    error = await error_of(client, "account_get", {"address": address_text(bytes(BOB))})
    assert error["code"] == -32001


async def test_market_queries(client: httpx.AsyncClient, node: CannedNode) -> None:
    offers = await result_of(client, "market_offers", {"class": "vcpu"})
    assert offers["truncated"] is False and len(offers["offers"]) == 3
    assert offers["offers"][1]["order_id"] == "00" * 31 + "01" and offers["offers"][0]["min_price"] == 100
    bids = await result_of(client, "market_bids", {"owner": address_text(bytes(BOB)), "region": "eu-west"})
    assert [bid["owner"] for bid in bids["bids"]] == [address_text(bytes(BOB))] * 3
    node.offer_count = MAX_LIST_RESULTS + 5
    capped = await result_of(client, "market_offers")
    assert capped["truncated"] is True and len(capped["offers"]) == MAX_LIST_RESULTS
    book = await result_of(client, "market_book", {"class": "vcpu", "region": "eu-west"})
    assert book["offers"] == [{"price": 100, "quantity": 8}, {"price": 120, "quantity": 1}]
    price = await result_of(client, "market_price", {"class": "gpu-a100", "region": "us-east"})
    assert price["last_price"] == 125 and price["history"][-1] == {"height": 5, "price": 125, "quantity": 1}
    quote = await result_of(
        client, "market_quote", {"class": "vcpu", "region": "eu-west", "quantity": 10, "duration": 7200}
    )
    assert quote["fillable_quantity"] == 8 and quote["cost"] == 200
    assert (await result_of(client, "market_classes"))["regions"] == ["eu-west", "us-east"]


async def test_trades_paging(client: httpx.AsyncClient) -> None:
    latest = await result_of(client, "market_trades", {"limit": 2})
    assert [t["height"] for t in latest["trades"]] == [4, 5] and latest["truncated"] is True
    from_two = await result_of(client, "market_trades", {"from_height": 2, "limit": 10})
    assert [t["height"] for t in from_two["trades"]] == [2, 3, 4, 5] and from_two["truncated"] is False
    default = await result_of(client, "market_trades")
    assert len(default["trades"]) == 5


async def test_leases(client: httpx.AsyncClient) -> None:
    lease = await result_of(client, "lease_get", {"id": "07" * 32})
    assert lease["status"] == "active" and lease["sealed_grant"] == "0a" * 48
    assert lease["buyer"] == address_text(bytes(BOB)) and lease["escrow"] == 41
    listed = await result_of(client, "lease_list", {"owner": address_text(bytes(ALICE))})
    assert listed == {"leases": [lease], "truncated": False}


async def test_submit_one_admitted(client: httpx.AsyncClient, node: CannedNode) -> None:
    result = await result_of(client, "tx_submit", {"tx": "aabb"})
    assert result == {"hash": "aa" * 32, "status": "admitted", "height": None, "receipt": None}
    assert node.submitted == [([b"\xaa\xbb"], "none")]


@pytest.mark.parametrize(
    ("tx", "code", "reason_code"),
    [(REJECTED_TX, -32000, "BAD_SIGNATURE"), (FULL_TX, -32002, None), (SLOW_TX, -32003, None)],
)
async def test_submit_one_refused(
    client: httpx.AsyncClient, tx: bytes, code: int, reason_code: str | None
) -> None:
    error = await error_of(client, "tx_submit", {"tx": tx.hex()})
    assert error["code"] == code
    if reason_code is not None:
        assert error["data"] == {"reason_code": reason_code, "hash": tx_hash(tx).hex()}
    if code == -32003:
        assert error["data"]["hashes"] == [tx_hash(tx).hex()] and error["data"]["waited_ms"] == 30_000


async def test_submit_while_syncing(client: httpx.AsyncClient, node: CannedNode) -> None:
    node.syncing = True
    error = await error_of(client, "tx_submit", {"tx": "aabb", "wait": "commit"})
    assert error["code"] == -32005 and error["data"] == {"height": 1, "target_height": 9}


async def test_submit_batch_reports_each_transaction(client: httpx.AsyncClient) -> None:
    result = await result_of(client, "tx_submit", {"txs": ["aabb", REJECTED_TX.hex(), FULL_TX.hex()]})
    statuses = [(entry["hash"][:2], entry["status"]) for entry in result["results"]]
    assert statuses == [("aa", "admitted"), ("00", "rejected"), ("ff", "rejected")]
    assert result["results"][0]["error"] is None
    assert result["results"][1]["error"]["code"] == -32000
    assert result["results"][1]["error"]["data"] == {"reason_code": "BAD_SIGNATURE"}
    assert result["results"][2]["error"]["code"] == -32002


async def test_wait_commit_answers_only_once_committed(client: httpx.AsyncClient, node: CannedNode) -> None:
    answers: list[Any] = []

    async def submit() -> None:
        answers.append(await result_of(client, "tx_submit", {"txs": ["aabb", "cc"], "wait": "commit"}))

    with trio.fail_after(WAIT_BOUND_S):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(submit)
            await node.commit_waiting.wait()
            await trio.testing.wait_all_tasks_blocked()
            assert answers == []
            node.commit_gate.set()
    entries = answers[0]["results"]
    assert [(e["status"], e["height"]) for e in entries] == [("committed", 7), ("committed", 7)]
    assert entries[0]["receipt"] == {
        "tx_hash": "aa" * 32,
        "code": 0,
        "status": "ok",
        "detail": "",
        "ids": ["07" * 32],
    }


async def test_operator_methods_when_enabled(node: CannedNode, nursery: trio.Nursery) -> None:
    url = await nursery.start(RpcServer(Dispatcher(methods_for(node), operator_enabled=True), port=0).run)
    async with local_client(url) as http:
        assert await result_of(http, "admin_echo", {"value": 3}) == 3
    nursery.cancel_scope.cancel()


async def test_shutdown_lets_in_flight_requests_finish(node: CannedNode) -> None:
    answers: list[Any] = []
    server_scope = trio.CancelScope()

    async def run_server(task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        with server_scope:
            server = RpcServer(Dispatcher(rpc_methods(node)), port=0, shutdown_grace_s=5.0)
            await server.run(task_status=task_status)

    async with local_client() as http:
        with trio.fail_after(WAIT_BOUND_S):
            async with trio.open_nursery() as nursery:
                url = await nursery.start(run_server)

                async def submit() -> None:
                    body = call("tx_submit", {"tx": "aabb", "wait": "commit"}).encode()
                    answers.append((await http.post(url, content=body)).json()["result"])

                nursery.start_soon(submit)
                await node.commit_waiting.wait()
                server_scope.cancel()
                await trio.testing.wait_all_tasks_blocked()
                assert answers == []
                node.commit_gate.set()
    assert answers == [
        {"hash": "aa" * 32, "status": "committed", "height": 7, "receipt": to_receipt_json(b"\xaa")}
    ]
    port = int(url.rstrip("/").rsplit(":", 1)[1])
    with pytest.raises(OSError):
        await trio.open_tcp_stream("127.0.0.1", port)


def to_receipt_json(first_byte: bytes) -> dict[str, object]:
    return {"tx_hash": first_byte.hex() * 32, "code": 0, "status": "ok", "detail": "", "ids": ["07" * 32]}


async def test_idle_keep_alive_connection_does_not_hold_shutdown(node: CannedNode) -> None:
    """Shutdown does not wait for a client that keeps an idle connection open (hypercorn keeps it 5 s)."""
    async with local_client() as http:
        with trio.fail_after(SHUTDOWN_GRACE_S + 1.0):
            async with trio.open_nursery() as nursery:
                url = await nursery.start(RpcServer(Dispatcher(rpc_methods(node)), port=0).run)
                response = await http.post(url, content=call("chain_head").encode())
                assert response.json()["result"]["height"] == 1
                nursery.cancel_scope.cancel()
