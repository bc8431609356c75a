"""State records of accounts and open orders, and their canonical encodings as state values.

Theory: the ledger state is a map from `ledger.schema` keys to canonical values. Every record here encodes to
a fixed-layout list (no maps) and decodes strictly, so a state read back from the store is the state that was
written, and two nodes that hold the same records hold the same bytes. The record ids live in the keys, not in
the values. An order record is the source of truth for an open order; the market's book entry is an index of
it, rebuilt from the record after a rollback or a reload.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import msgpack

from ledger.codec import Value, decode, expect_bytes, expect_int, expect_list, expect_str
from ledger.errors import DecodeError
from ledger.keys import PUBLIC_KEY_BYTES
from ledger.limits import MAX_SUPPLY, MAX_TX_BYTES
from ledger.market import Bid, Offer
from ledger.tx import (
    MAX_DURATION_S,
    MAX_NAME_CHARS,
    MAX_PRICE,
    MAX_QUANTITY,
    MAX_TIME_S,
    X25519_KEY_BYTES,
    PlanReference,
)

MAX_RECORD_BYTES = MAX_TX_BYTES + 1024

OFFER_SIDE = 0
BID_SIDE = 1


def pack_record(value: Value) -> bytes:
    """The canonical bytes of a state record. Records are built only from fields that were range-checked
    when their transaction was decoded (or from sums kept within MAX_SUPPLY), so this hot path packs them
    without `ledger.codec.encode`'s walk; msgpack's shortest form makes the bytes identical to it, and
    the record decoders check them strictly on the way back."""
    return msgpack.packb(value, use_bin_type=True)  # type: ignore[no-any-return]


class Account(NamedTuple):
    """What an address holds: spendable balance, credits held in escrow (open bids, running leases), and
    the nonce its next transaction must carry."""

    balance: int
    escrow: int
    next_nonce: int


class AccountRecord:
    """The mutable form the state keeps (updated in place on the hot path of transfers)."""

    __slots__ = ("balance", "escrow", "next_nonce")

    def __init__(self, balance: int, escrow: int, next_nonce: int) -> None:
        self.balance = balance
        self.escrow = escrow
        self.next_nonce = next_nonce

    def snapshot(self) -> tuple[int, int, int]:
        return (self.balance, self.escrow, self.next_nonce)

    def public(self) -> Account:
        return Account(self.balance, self.escrow, self.next_nonce)

    def encode(self) -> bytes:
        return pack_record([self.balance, self.escrow, self.next_nonce])

    @classmethod
    def decode(cls, data: bytes) -> AccountRecord:
        balance, escrow, next_nonce = expect_list(decode(data, MAX_RECORD_BYTES), 3, "account")
        return cls(
            expect_int(balance, "account balance", 0, MAX_SUPPLY),
            expect_int(escrow, "account escrow", 0, MAX_SUPPLY),
            expect_int(next_nonce, "account next nonce"),
        )


def _name(value: Value, what: str) -> str:
    return expect_str(value, what, MAX_NAME_CHARS)


@dataclass(frozen=True, slots=True)
class OfferRecord:
    order_id: bytes
    owner: bytes
    resource_class: str
    region: str
    quantity: int  # still unsold
    original_quantity: int
    min_price: int
    available_from: int
    available_until: int
    seq: int  # time priority: the state's order counter when the offer was placed
    height: int  # block that placed it
    plan: PlanReference | None

    def with_quantity(self, quantity: int) -> OfferRecord:
        """This offer with `quantity` units left (`dataclasses.replace`, without its generic field walk)."""
        return OfferRecord(
            self.order_id,
            self.owner,
            self.resource_class,
            self.region,
            quantity,
            self.original_quantity,
            self.min_price,
            self.available_from,
            self.available_until,
            self.seq,
            self.height,
            self.plan,
        )

    def to_market(self) -> Offer:
        return Offer(
            self.order_id,
            self.owner,
            self.resource_class,
            self.region,
            self.quantity,
            self.min_price,
            self.available_from,
            self.available_until,
            self.seq,
        )

    def to_value(self) -> Value:
        return [
            OFFER_SIDE,
            self.owner,
            self.resource_class,
            self.region,
            self.quantity,
            self.original_quantity,
            self.min_price,
            self.available_from,
            self.available_until,
            self.seq,
            self.height,
            None if self.plan is None else self.plan.to_value(),
        ]


@dataclass(frozen=True, slots=True)
class BidRecord:
    order_id: bytes
    owner: bytes
    resource_class: str
    region: str
    quantity: int  # still unfilled
    original_quantity: int
    max_price: int
    duration: int
    expires_at: int
    seq: int
    height: int
    access_key: bytes
    escrow: int  # always lease_cost(quantity, max_price, duration)

    def with_quantity(self, quantity: int, escrow: int) -> BidRecord:
        """This bid with `quantity` units still wanted and `escrow` held for them."""
        return BidRecord(
            self.order_id,
            self.owner,
            self.resource_class,
            self.region,
            quantity,
            self.original_quantity,
            self.max_price,
            self.duration,
            self.expires_at,
            self.seq,
            self.height,
            self.access_key,
            escrow,
        )

    def to_market(self) -> Bid:
        return Bid(
            self.order_id,
            self.owner,
            self.resource_class,
            self.region,
            self.quantity,
            self.max_price,
            self.duration,
            self.expires_at,
            self.seq,
        )

    def to_value(self) -> Value:
        return [
            BID_SIDE,
            self.owner,
            self.resource_class,
            self.region,
            self.quantity,
            self.original_quantity,
            self.max_price,
            self.duration,
            self.expires_at,
            self.seq,
            self.height,
            self.access_key,
            self.escrow,
        ]


OrderRecord = OfferRecord | BidRecord


def encode_order(record: OrderRecord) -> bytes:
    return pack_record(record.to_value())


def decode_order(order_id: bytes, data: bytes) -> OrderRecord:
    """The order record stored under `order_id`; any defect raises `DecodeError`."""
    value = decode(data, MAX_RECORD_BYTES)
    if not isinstance(value, list) or not value:
        raise DecodeError("order: expected a list")
    side = value[0]
    if side == OFFER_SIDE and not isinstance(side, bool):
        (_, owner, resource_class, region, quantity, original, min_price, start, until, seq, height, plan) = (
            expect_list(value, 12, "offer record")
        )
        return OfferRecord(
            order_id,
            expect_bytes(owner, "offer owner", PUBLIC_KEY_BYTES),
            _name(resource_class, "offer class"),
            _name(region, "offer region"),
            expect_int(quantity, "offer quantity", 1, MAX_QUANTITY),
            expect_int(original, "offer original quantity", 1, MAX_QUANTITY),
            expect_int(min_price, "offer min price", 1, MAX_PRICE),
            expect_int(start, "offer available_from", 0, MAX_TIME_S),
            expect_int(until, "offer available_until", 0, MAX_TIME_S),
            expect_int(seq, "offer seq"),
            expect_int(height, "offer height"),
            None if plan is None else PlanReference.from_value(plan),
        )
    if side == BID_SIDE and not isinstance(side, bool):
        (_, owner, resource_class, region, quantity, original, max_price, duration, expires, seq, height) = (
            expect_list(value, 13, "bid record")[:11]
        )
        access_key, escrow = value[11], value[12]
        return BidRecord(
            order_id,
            expect_bytes(owner, "bid owner", PUBLIC_KEY_BYTES),
            _name(resource_class, "bid class"),
            _name(region, "bid region"),
            expect_int(quantity, "bid quantity", 1, MAX_QUANTITY),
            expect_int(original, "bid original quantity", 1, MAX_QUANTITY),
            expect_int(max_price, "bid max price", 1, MAX_PRICE),
            expect_int(duration, "bid duration", 1, MAX_DURATION_S),
            expect_int(expires, "bid expires_at", 0, MAX_TIME_S),
            expect_int(seq, "bid seq"),
            expect_int(height, "bid height"),
            expect_bytes(access_key, "bid access key", X25519_KEY_BYTES),
            expect_int(escrow, "bid escrow", 0, MAX_SUPPLY),
        )
    raise DecodeError(f"order: unknown side {side!r}")
