"""The JSON-RPC methods of the node contract (ARCHITECTURE.md section 4), written against `NodeApi`.

Theory: a handler does three things and nothing else: its params were already checked by the schema it
declares; it calls the api; it shapes the view into JSON by the rules of `node.rpc.shape`. Expected failures
the api raises (`ApiError`) become the documented application codes here, in one place. List results are
capped at `MAX_LIST_RESULTS`; the handler asks the api for one more entry than it returns, so it can say
`truncated` without counting the whole list.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from functools import wraps

from ledger.hashing import HASH_BYTES
from ledger.limits import MAX_TX_BYTES
from node.rpc.api import (
    Address,
    Admission,
    ApiError,
    CommitTimeout,
    MempoolFull,
    NodeApi,
    NotFound,
    OrderKind,
    Syncing,
    TxRejected,
    Wait,
)
from node.rpc.limits import (
    DEFAULT_TRADES_LIMIT,
    MAX_LIST_RESULTS,
    MAX_QUOTE_DURATION_S,
    MAX_QUOTE_QUANTITY,
    MAX_SUBMIT_TXS,
)
from node.rpc.params import AddressText, Hex, HexList, Int, Param, Text
from node.rpc.protocol import (
    COMMIT_TIMEOUT,
    INVALID_PARAMS,
    MEMPOOL_FULL,
    NOT_FOUND,
    SYNCING,
    TX_REJECTED,
    Handler,
    Method,
    RpcError,
)
from node.rpc.shape import Json, to_json

WAIT_CHOICES = ("none", "commit")

_HASH = Hex(size=HASH_BYTES)
_TX = Hex(max_size=MAX_TX_BYTES)
_CLASS = Param("class", Text())
_REGION = Param("region", Text())
_OPTIONAL_CLASS = Param("class", Text(), required=False)
_OPTIONAL_REGION = Param("region", Text(), required=False)
_OPTIONAL_OWNER = Param("owner", AddressText(), required=False)

Params = dict[str, object]


def api_error_to_rpc(exc: ApiError) -> RpcError:
    """The documented JSON-RPC error for a failure the api reports."""
    if isinstance(exc, TxRejected):
        return RpcError(TX_REJECTED, exc.reason, {"reason_code": exc.code})
    if isinstance(exc, MempoolFull):
        return RpcError(MEMPOOL_FULL, str(exc) or None)
    if isinstance(exc, CommitTimeout):
        data = {"hashes": [h.hex() for h in exc.hashes], "waited_ms": exc.waited_ms}
        return RpcError(COMMIT_TIMEOUT, str(exc), data)
    if isinstance(exc, Syncing):
        return RpcError(SYNCING, str(exc), {"height": exc.height, "target_height": exc.target_height})
    if isinstance(exc, NotFound):
        return RpcError(NOT_FOUND, str(exc) or None)
    raise TypeError(f"api error {type(exc).__name__} has no documented code") from exc


def _mapping_api_errors(handler: Callable[[Params], Awaitable[Json]]) -> Handler:
    @wraps(handler)
    async def mapped(params: Params) -> object:
        try:
            return await handler(params)
        except ApiError as exc:
            raise api_error_to_rpc(exc) from None

    return mapped


def _capped(items: Sequence[object], limit: int, keep_last: bool = False) -> tuple[Json, bool]:
    truncated = len(items) > limit
    kept = (items[-limit:] if keep_last else items[:limit]) if truncated else items
    return to_json(list(kept)), truncated


class _Handlers:
    def __init__(self, api: NodeApi) -> None:
        self.api = api

    def _check_book(self, resource_class: object, region: object) -> None:
        market = self.api.classes()
        if resource_class is not None and resource_class not in market.resource_classes:
            raise RpcError(INVALID_PARAMS, f"unknown resource class {resource_class!r}", {"param": "class"})
        if region is not None and region not in market.regions:
            raise RpcError(INVALID_PARAMS, f"unknown region {region!r}", {"param": "region"})

    async def node_status(self, params: Params) -> Json:
        return to_json(self.api.status())

    async def node_peers(self, params: Params) -> Json:
        return {"peers": to_json(list(self.api.peers()))}

    async def node_metrics(self, params: Params) -> Json:
        return to_json(self.api.metrics())

    async def node_commit_times(self, params: Params) -> Json:
        from_height = params["from_height"]
        limit = _int(params["limit"])
        commits = self.api.commit_times(None if from_height is None else _int(from_height), limit + 1)
        shaped, truncated = _capped(commits, limit)
        return {"commits": shaped, "truncated": truncated}

    async def chain_head(self, params: Params) -> Json:
        return to_json(self.api.head())

    async def chain_block(self, params: Params) -> Json:
        return to_json(self.api.block(_int(params["height"])))

    async def chain_tx(self, params: Params) -> Json:
        return to_json(self.api.tx(_bytes(params["hash"])))

    async def chain_validators(self, params: Params) -> Json:
        return to_json(self.api.validators())

    async def chain_genesis(self, params: Params) -> Json:
        return to_json(self.api.genesis())

    async def tx_submit(self, params: Params) -> Json:
        single, many = params["tx"], params["txs"]
        if (single is None) == (many is None):
            raise RpcError(INVALID_PARAMS, "give exactly one of 'tx' or 'txs'", {"param": "tx"})
        txs = [_bytes(single)] if single is not None else [_bytes(item) for item in _list(many)]
        wait: Wait = "commit" if params["wait"] == "commit" else "none"
        admissions = list(await self.api.submit(txs, wait))
        if len(admissions) != len(txs):
            raise RuntimeError(f"submit answered {len(admissions)} admissions for {len(txs)} transactions")
        if single is not None:
            admission = admissions[0]
            if admission.refusal is not None:
                error = api_error_to_rpc(admission.refusal)
                error.data = {**_dict(error.data), "hash": admission.hash.hex()}
                raise error
            return _admission_json(admission)
        results: list[Json] = []
        for admission in admissions:
            entry = _admission_json(admission)
            refusal = None if admission.refusal is None else api_error_to_rpc(admission.refusal)
            entry["error"] = None if refusal is None else to_json(refusal.to_json())
            results.append(entry)
        return {"results": results}

    async def account_get(self, params: Params) -> Json:
        address = params["address"]
        assert isinstance(address, Address)
        return to_json(self.api.account(address))

    async def market_classes(self, params: Params) -> Json:
        return to_json(self.api.classes())

    async def _orders(self, kind: OrderKind, params: Params) -> Json:
        resource_class, region, owner = params["class"], params["region"], params["owner"]
        self._check_book(resource_class, region)
        orders = self.api.orders(
            kind,
            None if resource_class is None else str(resource_class),
            None if region is None else str(region),
            owner if isinstance(owner, Address) else None,
            MAX_LIST_RESULTS + 1,
        )
        shaped, truncated = _capped(orders, MAX_LIST_RESULTS)
        return {f"{kind}s": shaped, "truncated": truncated}

    async def market_offers(self, params: Params) -> Json:
        return await self._orders("offer", params)

    async def market_bids(self, params: Params) -> Json:
        return await self._orders("bid", params)

    async def market_book(self, params: Params) -> Json:
        self._check_book(params["class"], params["region"])
        return to_json(self.api.book(str(params["class"]), str(params["region"])))

    async def market_trades(self, params: Params) -> Json:
        from_height = params["from_height"]
        limit = _int(params["limit"])
        trades = self.api.trades(None if from_height is None else _int(from_height), limit + 1)
        shaped, truncated = _capped(trades, limit, keep_last=from_height is None)
        return {"trades": shaped, "truncated": truncated}

    async def market_price(self, params: Params) -> Json:
        self._check_book(params["class"], params["region"])
        return to_json(self.api.price(str(params["class"]), str(params["region"])))

    async def market_quote(self, params: Params) -> Json:
        self._check_book(params["class"], params["region"])
        quote = self.api.quote(
            str(params["class"]), str(params["region"]), _int(params["quantity"]), _int(params["duration"])
        )
        return to_json(quote)

    async def lease_get(self, params: Params) -> Json:
        return to_json(self.api.lease(_bytes(params["id"])))

    async def lease_list(self, params: Params) -> Json:
        owner = params["owner"]
        leases = self.api.leases(owner if isinstance(owner, Address) else None, MAX_LIST_RESULTS + 1)
        shaped, truncated = _capped(leases, MAX_LIST_RESULTS)
        return {"leases": shaped, "truncated": truncated}


def _admission_json(admission: Admission) -> dict[str, Json]:
    if admission.refusal is not None:
        status = "rejected"
    elif admission.height is not None:
        status = "committed"
    else:
        status = "admitted"
    return {
        "hash": admission.hash.hex(),
        "status": status,
        "height": admission.height,
        "receipt": to_json(admission.receipt),
    }


def _int(value: object) -> int:
    assert isinstance(value, int)
    return value


def _bytes(value: object) -> bytes:
    assert isinstance(value, bytes)
    return value


def _list(value: object) -> list[object]:
    assert isinstance(value, list)
    return value


def _dict(value: object) -> dict[str, object]:
    return dict(value) if isinstance(value, dict) else {}


def rpc_methods(api: NodeApi) -> list[Method]:
    """Every method of the contract, bound to `api`."""
    h = _Handlers(api)

    def method(
        name: str, handler: Callable[[Params], Awaitable[Json]], summary: str, *params: Param
    ) -> Method:
        return Method(name, params, _mapping_api_errors(handler), summary)

    return [
        method("node_status", h.node_status, "chain id, node name and role, height, view, proposer, peers"),
        method("node_peers", h.node_peers, "connected peers and their state"),
        method("node_metrics", h.node_metrics, "counters of signature checks, commits, messages and writes"),
        method(
            "node_commit_times",
            h.node_commit_times,
            "when this node committed recent heights (its wall clock)",
            Param("from_height", Int(), required=False),
            Param("limit", Int(1, MAX_LIST_RESULTS), required=False, default=MAX_LIST_RESULTS),
        ),
        method("chain_head", h.chain_head, "height and hash of the last committed block"),
        method("chain_block", h.chain_block, "a committed block", Param("height", Int())),
        method("chain_tx", h.chain_tx, "a committed transaction with its proof", Param("hash", _HASH)),
        method("chain_validators", h.chain_validators, "the validator set"),
        method("chain_genesis", h.chain_genesis, "the genesis document"),
        method(
            "tx_submit",
            h.tx_submit,
            "submit signed transactions",
            Param("tx", _TX, required=False),
            Param("txs", HexList(_TX, MAX_SUBMIT_TXS), required=False),
            Param("wait", Text(choices=WAIT_CHOICES), required=False, default="none"),
        ),
        method("account_get", h.account_get, "balance, escrow, next nonce", Param("address", AddressText())),
        method("market_classes", h.market_classes, "resource classes and regions"),
        method(
            "market_offers",
            h.market_offers,
            "open offers",
            _OPTIONAL_CLASS,
            _OPTIONAL_REGION,
            _OPTIONAL_OWNER,
        ),
        method("market_bids", h.market_bids, "open bids", _OPTIONAL_CLASS, _OPTIONAL_REGION, _OPTIONAL_OWNER),
        method("market_book", h.market_book, "aggregated depth per price", _CLASS, _REGION),
        method(
            "market_trades",
            h.market_trades,
            "matches with their clearing prices",
            Param("from_height", Int(), required=False),
            Param("limit", Int(1, MAX_LIST_RESULTS), required=False, default=DEFAULT_TRADES_LIMIT),
        ),
        method("market_price", h.market_price, "last clearing price and recent history", _CLASS, _REGION),
        method(
            "market_quote",
            h.market_quote,
            "what a bid would pay if the book cleared now",
            _CLASS,
            _REGION,
            Param("quantity", Int(1, MAX_QUOTE_QUANTITY)),
            Param("duration", Int(1, MAX_QUOTE_DURATION_S)),
        ),
        method("lease_get", h.lease_get, "one lease with its state and grant", Param("id", _HASH)),
        method("lease_list", h.lease_list, "leases, optionally of one party", _OPTIONAL_OWNER),
    ]
