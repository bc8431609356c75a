"""`fedmarket query`: read the chain and the market from a node.

Theory: every query is one JSON-RPC call. `--json` prints the node's result exactly; the text form is the same
data made readable: unix times as UTC dates, durations as `2h`, a lease's sealed grant as granted yes/no, and
raw encodings left out (they are in `--json`). List results are tables; the node caps them and says so.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ledger.keys import address_text
from ledger.tx import MAX_QUANTITY
from node.commands import inputs
from node.commands.base import Subcommands, add_command, add_group
from node.commands.durations import format_duration
from node.commands.output import print_json, print_text, render
from node.commands.rpc_client import connect
from node.rpc.limits import DEFAULT_TRADES_LIMIT, MAX_JSON_INT, MAX_LIST_RESULTS

MAX_HEIGHT = MAX_JSON_INT
height = inputs.integer_in(0, MAX_HEIGHT, "a block height")
limit = inputs.integer_in(1, MAX_LIST_RESULTS, "a limit")
quantity = inputs.integer_in(1, MAX_QUANTITY, "a positive quantity")

TIME_FIELDS = frozenset({"available_from", "available_until", "expires_at", "start", "end", "grant_deadline"})
DURATION_FIELDS = frozenset({"duration"})
HIDDEN_IN_TEXT = frozenset({"encoded"})

ParamsOf = Callable[[argparse.Namespace], dict[str, Any]]
Options = Callable[[argparse.ArgumentParser], object]


@dataclass(frozen=True)
class Query:
    name: str
    summary: str
    method: str
    options: Options
    params: ParamsOf
    list_field: str | None = None
    example: str = ""


def _none(parser: argparse.ArgumentParser) -> None:
    return None


def _no_params(args: argparse.Namespace) -> dict[str, Any]:
    return {}


def _filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--class", dest="resource_class", metavar="C", type=inputs.name, help="resource class"
    )
    parser.add_argument("--region", metavar="R", type=inputs.name, help="region")
    _owner(parser)


def _owner(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--owner", metavar="ADDRESS", type=inputs.address, help="only this account's (fm1...)"
    )


def _book(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--class", dest="resource_class", metavar="C", type=inputs.name, required=True, help="resource class"
    )
    parser.add_argument("--region", metavar="R", type=inputs.name, required=True, help="region")


def _quote(parser: argparse.ArgumentParser) -> None:
    _book(parser)
    parser.add_argument("--quantity", metavar="N", type=quantity, required=True, help="units")
    parser.add_argument(
        "--duration", metavar="D", type=inputs.duration, required=True, help="lease length (2h)"
    )


def _trades(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from-height", metavar="H", type=height, help="trades from this height on")
    parser.add_argument(
        "--limit", metavar="N", type=limit, help=f"at most N trades (default {DEFAULT_TRADES_LIMIT})"
    )


def _present(**params: Any) -> dict[str, Any]:
    return {name: value for name, value in params.items() if value is not None}


def _filter_params(args: argparse.Namespace) -> dict[str, Any]:
    owner = getattr(args, "owner", None)
    return _present(
        **{"class": getattr(args, "resource_class", None), "region": getattr(args, "region", None)},
        owner=None if owner is None else address_text(owner),
    )


def _book_params(args: argparse.Namespace) -> dict[str, Any]:
    return {"class": args.resource_class, "region": args.region}


QUERIES = (
    Query("status", "the node's chain id, role, height, view and peers", "node_status", _none, _no_params),
    Query("peers", "the node's peers and their state", "node_peers", _none, _no_params, "peers"),
    Query("head", "height and hash of the last committed block", "chain_head", _none, _no_params),
    Query(
        "block",
        "a committed block: header, transactions, receipts, certificate",
        "chain_block",
        lambda p: p.add_argument("height", metavar="H", type=height, help="block height"),
        lambda a: {"height": a.height},
        example="fedmarket query block 12",
    ),
    Query(
        "tx",
        "a committed transaction with its receipt and inclusion proof",
        "chain_tx",
        lambda p: p.add_argument(
            "hash", metavar="HASH", type=inputs.tx_hash, help="transaction hash (64 hex)"
        ),
        lambda a: {"hash": a.hash.hex()},
        example="fedmarket query tx 3f2a...",
    ),
    Query("validators", "the federation's validator set", "chain_validators", _none, _no_params),
    Query(
        "account",
        "balance, escrow and next nonce of an account",
        "account_get",
        lambda p: p.add_argument("address", metavar="ADDR", type=inputs.address, help="account (fm1...)"),
        lambda a: {"address": address_text(a.address)},
        example="fedmarket query account fm1...",
    ),
    Query("classes", "resource classes and regions of the market", "market_classes", _none, _no_params),
    Query(
        "offers",
        "open offers",
        "market_offers",
        _filters,
        _filter_params,
        "offers",
        "fedmarket query offers --class vm.small",
    ),
    Query(
        "bids",
        "open bids",
        "market_bids",
        _filters,
        _filter_params,
        "bids",
        "fedmarket query bids --owner fm1...",
    ),
    Query(
        "book",
        "aggregated depth per price of one book",
        "market_book",
        _book,
        _book_params,
        example="fedmarket query book --class vm.small --region eu-west",
    ),
    Query(
        "price",
        "last clearing price and recent history of one book",
        "market_price",
        _book,
        _book_params,
        example="fedmarket query price --class vm.small --region eu-west",
    ),
    Query(
        "quote",
        "what a bid would pay if the book cleared now",
        "market_quote",
        _quote,
        lambda a: {**_book_params(a), "quantity": a.quantity, "duration": a.duration},
        example="fedmarket query quote --class vm.small --region eu-west --quantity 2 --duration 2h",
    ),
    Query(
        "trades",
        "matches with their clearing prices",
        "market_trades",
        _trades,
        lambda a: _present(from_height=a.from_height, limit=a.limit),
        "trades",
        "fedmarket query trades --limit 20",
    ),
    Query(
        "leases",
        "leases, optionally of one party",
        "lease_list",
        _owner,
        _filter_params,
        "leases",
        "fedmarket query leases --owner fm1...",
    ),
    Query(
        "lease",
        "one lease with its state and grant status",
        "lease_get",
        lambda p: p.add_argument("id", metavar="ID", type=inputs.lease_id, help="lease id (64 hex)"),
        lambda a: {"id": a.id.hex()},
        example="fedmarket query lease 9c41...",
    ),
)


def register(commands: Subcommands) -> None:
    group = add_group(commands, "query", "read the chain and the market")
    for query in QUERIES:
        parser = add_command(
            group,
            query.name,
            query.summary,
            _runner(query),
            example=query.example or f"fedmarket query {query.name}",
        )
        query.options(parser)


def _runner(query: Query) -> Callable[[argparse.Namespace], None]:
    def run(args: argparse.Namespace) -> None:
        result = connect(args).call(query.method, query.params(args) or None)
        if args.json:
            print_json(result)
            return
        shown = result
        if query.list_field is not None and isinstance(result, dict) and query.list_field in result:
            shown = result[query.list_field]
            if result.get("truncated"):
                sys.stderr.write(f"note: the node returned {len(shown)} {query.list_field} and has more\n")
        print_text(render(readable(shown)))

    return run


def readable(data: Any, field: str = "") -> Any:
    """`data` with unix times as UTC dates, durations as text, grants as yes/no and encodings dropped."""
    if isinstance(data, dict):
        shown = {}
        for key, value in data.items():
            if key in HIDDEN_IN_TEXT:
                continue
            if key == "sealed_grant":
                shown["granted"] = value is not None
            else:
                shown[key] = readable(value, key)
        return shown
    if isinstance(data, list):
        return [readable(item, field) for item in data]
    if isinstance(data, int) and not isinstance(data, bool):
        if field in TIME_FIELDS:
            return _utc(data)
        if field == "timestamp_ms":
            return _utc(data // 1000, data % 1000)
        if field in DURATION_FIELDS and data > 0:
            return format_duration(data)
    return data


def _utc(seconds: int, milliseconds: int | None = None) -> str:
    fraction = "" if milliseconds is None else f".{milliseconds:03d}"
    try:
        return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S") + fraction + "Z"
    except (OverflowError, OSError, ValueError):
        return str(seconds)
