"""The CLI against a tiny JSON-RPC server (stdlib http.server on 127.0.0.1): request shape, error mapping, the
transactions it signs, `--wait` output, grants sealed to the buyer and opened by `lease access`, query output.

The server answers canned results per method; the node itself is not needed (devnet tests cover that).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from ledger.keys import PrivateKey
from ledger.tx import BidBody, Grant, OfferBody, Transaction, Transfer
from node.cli import main
from node.commands.lease import open_grant, seal_credentials
from node.commands.rpc_client import RpcClient, RpcError, default_rpc_url

CHAIN_ID = "fedmarket-test"
PROVIDER = PrivateKey(bytes([1]) * 32)
BUYER = PrivateKey(bytes([2]) * 32)
LEASE_ID = "9c" * 32


class FakeRpcError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class FakeNode:
    """Canned answers by method; every request body is recorded."""

    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    methods: dict[str, Callable[[dict[str, Any]], Any]] = field(default_factory=dict)
    raw_reply: tuple[int, bytes] | None = None
    release: threading.Event = field(default_factory=threading.Event)
    stall: bool = False

    def submitted(self) -> list[Transaction]:
        return [
            Transaction.decode(bytes.fromhex(r["params"]["tx"]))
            for r in self.requests
            if r["method"] == "tx_submit"
        ]


def _handler_for(node: FakeNode) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            request = json.loads(body)
            node.requests.append(request)
            node.headers.append(dict(self.headers))
            if node.stall:
                node.release.wait(10)
            if node.raw_reply is not None:
                self._send(*node.raw_reply)
                return
            try:
                method = node.methods.get(request["method"])
                if method is None:
                    raise FakeRpcError(-32601, "Method not found")
                result = method(request.get("params", {}))
                answer = {"jsonrpc": "2.0", "id": request["id"], "result": result}
            except FakeRpcError as exc:
                error = {"code": exc.code, "message": exc.message}
                answer = {"jsonrpc": "2.0", "id": request["id"], "error": error}
            self._send(200, json.dumps(answer).encode())

        def _send(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


@pytest.fixture
def node() -> Iterator[FakeNode]:
    fake = FakeNode()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(fake))
    server.daemon_threads = True
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    nonces: dict[str, int] = {}

    def submit(params: dict[str, Any]) -> dict[str, Any]:
        tx = Transaction.decode(bytes.fromhex(params["tx"]))
        nonces[tx.sender.hex()] = tx.nonce + 1
        if params.get("wait") != "commit":
            return {"hash": tx.hash.hex(), "status": "admitted", "height": None, "receipt": None}
        receipt = {"tx_hash": tx.hash.hex(), "code": 0, "status": "ok", "detail": "", "ids": [tx.hash.hex()]}
        return {"hash": tx.hash.hex(), "status": "committed", "height": 42, "receipt": receipt}

    fake.methods.update(
        node_status=lambda p: {"chain_id": CHAIN_ID, "node_name": "dc1", "role": "member", "height": 41},
        account_get=lambda p: {"address": p["address"], "balance": 10**9, "escrow": 0, "next_nonce": 7},
        tx_submit=submit,
    )
    try:
        yield fake
    finally:
        fake.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _key_file(tmp_path: Path, key: PrivateKey, name: str) -> str:
    path = tmp_path / name
    path.write_text(key.to_key_file())
    path.chmod(0o600)
    return str(path)


# The client alone.


def test_request_shape_is_json_rpc_2_with_named_params(node: FakeNode) -> None:
    client = RpcClient(node.url, timeout=5)
    assert client.call("node_status")["chain_id"] == CHAIN_ID
    assert client.call("account_get", {"address": BUYER.address})["next_nonce"] == 7
    first, second = node.requests
    assert first == {"jsonrpc": "2.0", "id": 1, "method": "node_status"}
    assert second == {
        "jsonrpc": "2.0",
        "id": 2,
        "method": "account_get",
        "params": {"address": BUYER.address},
    }
    assert node.headers[0]["Content-Type"] == "application/json"


def test_json_rpc_errors_keep_code_and_message(node: FakeNode) -> None:
    def not_found(params: dict[str, Any]) -> Any:
        raise FakeRpcError(-32001, "Not found: no lease 9c9c")

    node.methods["lease_get"] = not_found
    with pytest.raises(RpcError) as caught:
        RpcClient(node.url, timeout=5).call("lease_get", {"id": LEASE_ID})
    assert caught.value.code == -32001
    assert "Not found: no lease 9c9c" in caught.value.message and "-32001" in caught.value.message
    with pytest.raises(RpcError) as unknown:
        RpcClient(node.url, timeout=5).call("no_such_method")
    assert unknown.value.code == -32601 and "this node does not offer no_such_method" in unknown.value.message


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (500, b"<html>oops</html>", "HTTP 500"),
        (200, b"not json", "not JSON"),
        (200, b'{"jsonrpc": "1.0", "id": 1, "result": 3}', "not JSON-RPC 2.0"),
        (200, b'{"jsonrpc": "2.0", "id": 99, "result": 3}', "malformed"),
        (200, b'{"jsonrpc": "2.0", "id": 1, "error": "bad"}', "malformed error"),
        (
            400,
            b'{"jsonrpc": "2.0", "id": null, "error": {"code": -32700, "message": "Parse error"}}',
            "-32700",
        ),
    ],
)
def test_broken_answers_are_one_sentence_errors(
    node: FakeNode, status: int, body: bytes, expected: str
) -> None:
    node.raw_reply = (status, body)
    with pytest.raises(RpcError) as caught:
        RpcClient(node.url, timeout=5).call("node_status")
    message = caught.value.message
    assert expected in message
    assert "\n" not in message and (node.url in message or message.startswith("node_status failed"))


def test_a_silent_node_times_out(node: FakeNode) -> None:
    node.stall = True
    with pytest.raises(RpcError, match=r"no answer within 0\.3 s"):
        RpcClient(node.url, timeout=0.3).call("node_status")


def test_default_rpc_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FEDMARKET_RPC", raising=False)
    assert default_rpc_url(tmp_path) == "http://127.0.0.1:26657"
    (tmp_path / ".devnet").mkdir()
    devnet = {"nodes": [{"name": "dc1", "rpc_url": "http://127.0.0.1:27001"}, {"rpc_url": "http://x:1"}]}
    (tmp_path / ".devnet" / "devnet.json").write_text(json.dumps(devnet))
    assert default_rpc_url(tmp_path) == "http://127.0.0.1:27001"
    monkeypatch.setenv("FEDMARKET_RPC", "http://10.0.0.1:9")
    assert default_rpc_url(tmp_path) == "http://10.0.0.1:9"


# Transactions.


def test_offer_signs_at_the_next_nonce_and_prints_the_order_id(
    node: FakeNode, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = _key_file(tmp_path, PROVIDER, "provider.key")
    code, out, err = _run(
        capsys, "tx", "offer", "--key", key, "--class", "vm.small", "--region", "eu-west", "--quantity", "10",
        "--price", "1500", "--duration", "3d", "--from", "2030-01-01T00:00:00Z", "--rpc", node.url,
    )  # fmt: skip
    assert (code, err) == (0, "")
    (tx,) = node.submitted()
    assert out == tx.hash.hex() + "\n"
    tx.verify_signature(CHAIN_ID)
    assert (tx.sender, tx.nonce) == (PROVIDER.public.raw, 7)
    start = 1_893_456_000
    assert tx.body == OfferBody("vm.small", "eu-west", 10, 1500, start, start + 3 * 86_400)
    assert node.requests[-1]["params"]["wait"] == "none"


def test_bid_seals_to_the_signer_by_default_and_waits(
    node: FakeNode, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = _key_file(tmp_path, BUYER, "buyer.key")
    code, out, _ = _run(
        capsys, "tx", "bid", "--key", key, "--class", "vm.small", "--region", "eu-west", "--quantity", "2",
        "--max-price", "2000", "--duration", "2h", "--expires", "10m", "--wait", "--json", "--rpc", node.url,
    )  # fmt: skip
    assert code == 0
    (tx,) = node.submitted()
    assert isinstance(tx.body, BidBody)
    assert tx.body.access_key == BUYER.public.x25519()
    assert (tx.body.quantity, tx.body.max_price, tx.body.duration) == (2, 2000, 7200)
    shown = json.loads(out)
    assert shown["hash"] == tx.hash.hex() and shown["height"] == 42 and shown["receipt"]["status"] == "ok"
    assert node.requests[-1]["params"]["wait"] == "commit"


def test_wait_prints_height_and_receipt_and_a_failed_receipt_exits_3(
    node: FakeNode, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = _key_file(tmp_path, BUYER, "buyer.key")
    argv = [
        "tx",
        "transfer",
        "--key",
        key,
        "--to",
        PROVIDER.address,
        "--amount",
        "500",
        "--wait",
        "--rpc",
        node.url,
    ]
    code, out, _ = _run(capsys, *argv)
    assert code == 0
    assert "height" in out and "42" in out and "receipt.status" in out and "ok" in out
    assert node.submitted()[0].body == Transfer(PROVIDER.public.raw, 500)

    def failing(params: dict[str, Any]) -> dict[str, Any]:
        tx_hash = Transaction.decode(bytes.fromhex(params["tx"])).hash.hex()
        receipt = {"tx_hash": tx_hash, "code": 2, "status": "insufficient_funds", "detail": "balance 3 < 500"}
        return {"hash": tx_hash, "status": "committed", "height": 43, "receipt": receipt}

    node.methods["tx_submit"] = failing
    code, out, err = _run(capsys, *argv)
    assert code == 3
    assert "43" in out
    assert err.count("\n") == 1 and "insufficient_funds balance 3 < 500" in err


def test_refusals_and_commit_timeouts_are_one_line_errors(
    node: FakeNode, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = _key_file(tmp_path, BUYER, "buyer.key")
    argv = ["tx", "cancel", "--key", key, "--order", "ab" * 32, "--rpc", node.url]

    def refuse(params: dict[str, Any]) -> Any:
        raise FakeRpcError(-32000, "Transaction rejected: nonce 7 already used")

    node.methods["tx_submit"] = refuse
    code, out, err = _run(capsys, *argv)
    assert (code, out) == (1, "")
    assert err.count("\n") == 1 and "nonce 7 already used" in err and "-32000" in err

    def time_out(params: dict[str, Any]) -> Any:
        raise FakeRpcError(-32003, "Timeout waiting for commit: no commit within 30 s")

    node.methods["tx_submit"] = time_out
    code, _, err = _run(capsys, *argv, "--wait")
    assert code == 1 and err.count("\n") == 1 and "may still commit" in err


def test_explicit_nonce_skips_the_account_lookup(
    node: FakeNode, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = _key_file(tmp_path, BUYER, "buyer.key")
    argv = [
        "tx",
        "close",
        "--key",
        key,
        "--lease",
        LEASE_ID,
        "--reason",
        "done",
        "--nonce",
        "99",
        "--rpc",
        node.url,
    ]
    assert _run(capsys, *argv)[0] == 0
    assert [r["method"] for r in node.requests] == ["node_status", "tx_submit"]
    assert node.submitted()[0].nonce == 99


def _lease(sealed: bytes | None, status: str = "active") -> dict[str, Any]:
    return {
        "lease_id": LEASE_ID,
        "buyer": BUYER.address,
        "provider": PROVIDER.address,
        "resource_class": "vm.small",
        "region": "eu-west",
        "quantity": 2,
        "price": 1800,
        "start": 1_900_000_000,
        "end": 1_900_007_200,
        "status": status,
        "access_key": BUYER.public.x25519().hex(),
        "sealed_grant": None if sealed is None else sealed.hex(),
    }


def test_grant_then_lease_access_round_trip(
    node: FakeNode, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = b"ssh admin@10.1.2.3\npassword: correct horse battery staple\n"
    (tmp_path / "access.txt").write_bytes(secret)
    provider_key = _key_file(tmp_path, PROVIDER, "provider.key")
    buyer_key = _key_file(tmp_path, BUYER, "buyer.key")
    node.methods["lease_get"] = lambda p: _lease(None, "awaiting_grant")

    code, _, err = _run(capsys, "lease", "access", "--key", buyer_key, "--lease", LEASE_ID, "--rpc", node.url)
    assert code == 1 and "no access grant yet" in err

    argv = [
        "tx",
        "grant",
        "--key",
        provider_key,
        "--lease",
        LEASE_ID,
        "--credentials",
        str(tmp_path / "access.txt"),
    ]
    assert _run(capsys, *argv, "--rpc", node.url)[0] == 0
    (tx,) = node.submitted()
    assert isinstance(tx.body, Grant) and tx.body.lease_id.hex() == LEASE_ID
    assert secret not in tx.body.sealed
    assert open_grant(BUYER, tx.body.sealed) == secret

    code, _, err = _run(capsys, *argv, "--rpc", node.url)
    assert code == 0 and err == ""
    code, _, err = _run(capsys, "tx", "grant", "--key", buyer_key, *argv[4:], "--rpc", node.url)
    assert code == 1 and "not by" in err

    node.methods["lease_get"] = lambda p: _lease(tx.body.sealed)
    code, out, err = _run(
        capsys, "lease", "access", "--key", buyer_key, "--lease", LEASE_ID, "--rpc", node.url
    )
    assert (code, out.encode(), err) == (0, secret, "")
    code, out, _ = _run(
        capsys, "lease", "access", "--key", provider_key, "--lease", LEASE_ID, "--rpc", node.url
    )
    assert code == 1 and out == ""

    out_file = tmp_path / "opened.txt"
    argv = [
        "lease",
        "access",
        "--key",
        buyer_key,
        "--lease",
        LEASE_ID,
        "--out",
        str(out_file),
        "--rpc",
        node.url,
    ]
    assert _run(capsys, *argv)[0] == 0
    assert out_file.read_bytes() == secret and out_file.stat().st_mode & 0o777 == 0o600


def test_lease_access_warns_when_revoked_and_json_has_the_text(
    node: FakeNode, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    buyer_key = _key_file(tmp_path, BUYER, "buyer.key")
    node.methods["lease_get"] = lambda p: _lease(
        seal_credentials(BUYER.public.x25519(), b"token=abc"), "ended"
    )
    code, out, err = _run(
        capsys, "lease", "access", "--key", buyer_key, "--lease", LEASE_ID, "--json", "--rpc", node.url
    )
    assert code == 0 and "revoked" in err
    assert json.loads(out) == {"lease_id": LEASE_ID, "status": "ended", "credentials": "token=abc"}


# Queries.


def test_query_offers_sends_filters_and_prints_a_table_or_the_raw_json(
    node: FakeNode, capsys: pytest.CaptureFixture[str]
) -> None:
    offer = {
        "order_id": "ab" * 32,
        "owner": PROVIDER.address,
        "resource_class": "vm.small",
        "region": "eu-west",
        "quantity": 10,
        "min_price": 1500,
        "available_from": 1_893_456_000,
        "available_until": 1_893_715_200,
        "seq": 3,
    }
    result = {"offers": [offer], "truncated": False}
    node.methods["market_offers"] = lambda p: result
    argv = ["query", "offers", "--class", "vm.small", "--owner", PROVIDER.address, "--rpc", node.url]
    code, out, _ = _run(capsys, *argv)
    assert code == 0
    assert node.requests[-1]["params"] == {"class": "vm.small", "owner": PROVIDER.address}
    header, row = out.splitlines()
    assert header.split()[:3] == ["ORDER_ID", "OWNER", "RESOURCE_CLASS"]
    assert "ab" * 32 in row and "2030-01-01 00:00:00Z" in row and "2030-01-04 00:00:00Z" in row
    code, out, _ = _run(capsys, *argv, "--json")
    assert json.loads(out) == result


def test_query_block_and_account_render_fields(node: FakeNode, capsys: pytest.CaptureFixture[str]) -> None:
    block = {
        "hash": "11" * 32,
        "header": {"height": 5, "timestamp_ms": 1_893_456_000_250, "proposer": PROVIDER.address},
        "encoded": "ff" * 100,
        "txs": [
            {"hash": "22" * 32, "kind": "TRANSFER", "nonce": 1, "body": {"to": BUYER.address, "amount": 5}}
        ],
        "receipts": [],
        "certificate": None,
    }
    node.methods["chain_block"] = lambda p: block
    code, out, _ = _run(capsys, "query", "block", "5", "--rpc", node.url)
    assert code == 0 and node.requests[-1]["params"] == {"height": 5}
    assert "header.timestamp_ms  2030-01-01 00:00:00.250Z" in out
    assert "ff" * 100 not in out
    assert "txs:" in out and "BODY.AMOUNT" in out
    code, out, _ = _run(capsys, "query", "account", BUYER.address, "--rpc", node.url)
    assert code == 0 and "next_nonce  7" in out
