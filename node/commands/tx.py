"""`fedmarket tx`: sign a transaction with a key file and submit it to a node.

Theory: the CLI asks the node for the chain id and the account's next nonce, signs locally (the key never
leaves the machine), and submits the encoded transaction. The hash is computed locally before submission, so
it is known even if the node is lost mid-call, and it is the order id of an offer or a bid. Without `--wait`
the answer only means "admitted to this node's mempool"; with `--wait` it means committed, with a receipt.
"""

from __future__ import annotations

import argparse
import time

from ledger.errors import LedgerError
from ledger.limits import MAX_SUPPLY
from ledger.tx import (
    MAX_PRICE,
    MAX_QUANTITY,
    BidBody,
    Body,
    Cancel,
    Close,
    Grant,
    OfferBody,
    Transfer,
    sign_transaction,
)
from node.commands import inputs
from node.commands.base import CliError, Handler, Subcommands, TxFailed, UsageError, add_command, add_group
from node.commands.durations import parse_duration
from node.commands.lease import seal_credentials
from node.commands.output import print_json, print_text, render_fields
from node.commands.rpc_client import RpcClient, RpcError, connect
from node.rpc.limits import MAX_JSON_INT
from node.rpc.protocol import COMMIT_TIMEOUT, NOT_FOUND

DEFAULT_BID_EXPIRY = "1h"
MAX_NONCE = MAX_JSON_INT

quantity = inputs.integer_in(1, MAX_QUANTITY, "a positive quantity")
price = inputs.integer_in(1, MAX_PRICE, "a positive price")
amount = inputs.integer_in(1, MAX_SUPPLY, "a positive amount")
nonce = inputs.integer_in(0, MAX_NONCE, "a nonce")


def register(commands: Subcommands) -> None:
    tx = add_group(commands, "tx", "sign and submit transactions")
    offer = _tx_command(
        tx,
        "offer",
        "offer capacity for sale (prints the order id)",
        submit_offer,
        "fedmarket tx offer --key provider.key --class vm.small --region eu-west --quantity 10 "
        "--price 1500 --duration 3d --wait",
    )
    _order_options(offer)
    offer.add_argument(
        "--price", metavar="P", type=price, required=True, help="minimum price, micro-credits per unit-hour"
    )
    offer.add_argument(
        "--duration", metavar="D", type=inputs.duration, required=True, help="how long it is available (3d)"
    )
    offer.add_argument(
        "--from",
        dest="start",
        metavar="T",
        type=inputs.start_time,
        help="start: 'now' (default), a duration from now (2h) or an ISO time (UTC unless it has an offset)",
    )

    bid = _tx_command(
        tx,
        "bid",
        "bid for capacity (prints the order id)",
        submit_bid,
        "fedmarket tx bid --key alice.key --class vm.small --region eu-west --quantity 2 --max-price 2000 "
        "--duration 2h --wait",
    )
    _order_options(bid)
    bid.add_argument(
        "--max-price",
        metavar="P",
        type=price,
        required=True,
        help="maximum price, micro-credits per unit-hour",
    )
    bid.add_argument(
        "--duration", metavar="D", type=inputs.duration, required=True, help="length of the lease (2h)"
    )
    bid.add_argument(
        "--expires",
        metavar="D",
        type=inputs.duration,
        default=parse_duration(DEFAULT_BID_EXPIRY),
        help=f"the bid stays open this long (default {DEFAULT_BID_EXPIRY})",
    )
    bid.add_argument(
        "--access-key",
        metavar="KEY",
        type=inputs.access_key,
        help="X25519 key to seal access to (64 hex digits, or an fm1 address); default: derived from --key",
    )

    transfer = _tx_command(
        tx,
        "transfer",
        "move credits",
        submit_transfer,
        "fedmarket tx transfer --key alice.key --to fm1... --amount 500",
    )
    transfer.add_argument(
        "--to", metavar="ADDRESS", type=inputs.address, required=True, help="recipient (fm1...)"
    )
    transfer.add_argument("--amount", metavar="N", type=amount, required=True, help="micro-credits")

    cancel = _tx_command(
        tx,
        "cancel",
        "cancel an open order of yours",
        submit_cancel,
        "fedmarket tx cancel --key alice.key --order ID",
    )
    cancel.add_argument(
        "--order", metavar="ID", type=inputs.order_id, required=True, help="order id (64 hex)"
    )

    grant = _tx_command(
        tx,
        "grant",
        "seal access credentials to a lease's buyer (provider only)",
        submit_grant,
        "fedmarket tx grant --key provider.key --lease ID --credentials access.txt --wait",
    )
    grant.add_argument("--lease", metavar="ID", type=inputs.lease_id, required=True, help="lease id (64 hex)")
    grant.add_argument(
        "--credentials",
        metavar="FILE",
        type=inputs.credentials_file,
        required=True,
        help=f"file whose bytes are sealed (at most {inputs.MAX_CREDENTIALS_BYTES} bytes)",
    )

    close = _tx_command(
        tx,
        "close",
        "end a lease early (buyer or provider)",
        submit_close,
        "fedmarket tx close --key alice.key --lease ID --reason 'job finished'",
    )
    close.add_argument("--lease", metavar="ID", type=inputs.lease_id, required=True, help="lease id (64 hex)")
    close.add_argument(
        "--reason", metavar="TEXT", type=inputs.reason, required=True, help="why (kept on chain)"
    )


def _tx_command(
    group: Subcommands, name: str, summary: str, handler: Handler, example: str
) -> argparse.ArgumentParser:
    parser = add_command(group, name, summary, handler, example=example)
    parser.add_argument(
        "--key", metavar="F", type=inputs.key_file, required=True, help="key file of the signer"
    )
    parser.add_argument("--wait", action="store_true", help="wait for the commit; print height and receipt")
    parser.add_argument("--nonce", metavar="N", type=nonce, help="use this nonce instead of asking the node")
    return parser


def _order_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--class", dest="resource_class", metavar="C", type=inputs.name, required=True, help="resource class"
    )
    parser.add_argument("--region", metavar="R", type=inputs.name, required=True, help="region")
    parser.add_argument("--quantity", metavar="N", type=quantity, required=True, help="units")


def submit_offer(args: argparse.Namespace) -> None:
    now = int(time.time())
    start = now if args.start is None else args.start
    until = start + args.duration
    if until <= now:
        raise UsageError("the offer's window [--from, --from + --duration] is already over", args.prog)
    body = OfferBody(args.resource_class, args.region, args.quantity, args.price, start, until)
    submit(args, body)


def submit_bid(args: argparse.Namespace) -> None:
    access_key = args.access_key if args.access_key is not None else args.key.key.public.x25519()
    expires_at = int(time.time()) + args.expires
    body = BidBody(
        args.resource_class, args.region, args.quantity, args.max_price, args.duration, expires_at, access_key
    )
    submit(args, body)


def submit_transfer(args: argparse.Namespace) -> None:
    submit(args, Transfer(args.to, args.amount))


def submit_cancel(args: argparse.Namespace) -> None:
    submit(args, Cancel(args.order))


def submit_close(args: argparse.Namespace) -> None:
    submit(args, Close(args.lease, args.reason))


def submit_grant(args: argparse.Namespace) -> None:
    client = connect(args)
    lease = client.call("lease_get", {"id": args.lease.hex()})
    provider = lease.get("provider") if isinstance(lease, dict) else None
    if provider != args.key.key.address:
        raise CliError(f"lease {args.lease.hex()} is provided by {provider}, not by {args.key.key.address}")
    try:
        access_key = bytes.fromhex(lease["access_key"])
        sealed = seal_credentials(access_key, args.credentials)
    except (KeyError, TypeError, ValueError) as exc:
        raise CliError(f"lease {args.lease.hex()} has no usable access key: {exc}") from None
    submit(args, Grant(args.lease, sealed), client)


def submit(args: argparse.Namespace, body: Body, client: RpcClient | None = None) -> None:
    """Sign `body` with `--key` at the account's next nonce, submit it, and print the outcome."""
    client = client or connect(args)
    key = args.key.key
    chain_id = chain_id_of(client)
    next_nonce = args.nonce if args.nonce is not None else next_nonce_of(client, key.address)
    try:
        tx = sign_transaction(key, chain_id, next_nonce, body)
    except LedgerError as exc:
        raise UsageError(f"the transaction is not valid: {exc}", args.prog) from None
    tx_hash = tx.hash.hex()
    wait = "commit" if args.wait else "none"
    try:
        result = client.call("tx_submit", {"tx": tx.encoded.hex(), "wait": wait})
    except RpcError as exc:
        if exc.code == COMMIT_TIMEOUT or (exc.code is None and args.wait):
            exc.message += f"; transaction {tx_hash} may still commit (see: fedmarket query tx {tx_hash})"
        raise
    if not isinstance(result, dict) or result.get("hash") != tx_hash:
        raise CliError(f"node answered tx_submit for {tx_hash} with an unexpected result: {result!r:.200}")
    outcome = {"hash": tx_hash, "nonce": next_nonce, "status": result.get("status")}
    if args.wait:
        outcome.update(height=result.get("height"), receipt=result.get("receipt"))
    if args.json:
        print_json(outcome)
    elif args.wait:
        print_text(render_fields(outcome))
    else:
        print_text(tx_hash)
    receipt = outcome.get("receipt")
    if args.wait and isinstance(receipt, dict) and receipt.get("code", 0) != 0:
        detail = receipt.get("detail") or ""
        raise TxFailed(
            f"transaction {tx_hash} committed but failed: {receipt.get('status')} {detail}".rstrip()
        )


def chain_id_of(client: RpcClient) -> str:
    status = client.call("node_status")
    chain_id = status.get("chain_id") if isinstance(status, dict) else None
    if not isinstance(chain_id, str) or not chain_id:
        raise CliError(f"node at {client.url} did not report a chain id")
    return chain_id


def next_nonce_of(client: RpcClient, address: str) -> int:
    try:
        account = client.call("account_get", {"address": address})
    except RpcError as exc:
        if exc.code == NOT_FOUND:
            return 0
        raise
    next_nonce = account.get("next_nonce") if isinstance(account, dict) else None
    if not isinstance(next_nonce, int) or isinstance(next_nonce, bool) or next_nonce < 0:
        raise CliError(f"node at {client.url} did not report the next nonce of {address}")
    return next_nonce
