"""Receipts and events: what a block did, one receipt per transaction and one event per automatic effect.

Theory: a transaction that breaks a rule is still included in its block (the proposer cannot always know), so
its outcome is a receipt with a code rather than an exception; the codes are the protocol's documented failure
modes (docs/transactions.md). Effects that no transaction asked for (fills, expiries, refunds, settlements,
revocations) are events, in the deterministic order in which the state applied them. Both are stored beside
the block (not in its hash) and encoded canonically.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import NamedTuple

from ledger.codec import Value, decode, encode_shape, expect_bytes, expect_int, expect_list, expect_str
from ledger.errors import DecodeError, LedgerError
from ledger.hashing import HASH_BYTES
from ledger.limits import MAX_TEXT_CHARS

MAX_RESULTS_BYTES = 64 * 1024 * 1024
MAX_EVENT_FIELDS = 16


class ReceiptCode(IntEnum):
    OK = 0
    BAD_NONCE = 1
    INSUFFICIENT_FUNDS = 2
    UNKNOWN_CLASS = 3
    UNKNOWN_REGION = 4
    BAD_WINDOW = 5
    UNKNOWN_ORDER = 6
    NOT_OWNER = 7
    UNKNOWN_LEASE = 8
    NOT_PARTY = 9
    LEASE_NOT_ACTIVE = 10
    ALREADY_GRANTED = 11
    BAD_AMOUNT = 12
    BAD_EXPIRY = 13
    WRONG_CHAIN = 14


class TxRejected(LedgerError):
    """A transaction the current state would refuse (mempool admission)."""

    def __init__(self, code: ReceiptCode, detail: str) -> None:
        super().__init__(f"{code.name}: {detail}")
        self.code = code
        self.detail = detail


class Receipt(NamedTuple):
    """The outcome of one transaction; `ids` holds the order id an OFFER or BID placed, or the lease id.
    (A named tuple: a block makes thousands of these, and a tuple is the cheapest immutable record.)"""

    tx_hash: bytes
    code: ReceiptCode
    detail: str = ""
    ids: tuple[bytes, ...] = ()

    @property
    def ok(self) -> bool:
        return self.code == ReceiptCode.OK

    def to_value(self) -> Value:
        return [self.tx_hash, int(self.code), self.detail, list(self.ids)]

    @classmethod
    def from_value(cls, value: Value) -> Receipt:
        tx_hash, code, detail, ids = expect_list(value, 4, "receipt")
        code_number = expect_int(code, "receipt code")
        try:
            receipt_code = ReceiptCode(code_number)
        except ValueError:
            raise DecodeError(f"receipt: unknown code {code_number}") from None
        if not isinstance(ids, list) or len(ids) > MAX_EVENT_FIELDS:
            raise DecodeError("receipt ids: expected a short list")
        return cls(
            expect_bytes(tx_hash, "receipt tx hash", HASH_BYTES),
            receipt_code,
            expect_str(detail, "receipt detail", MAX_TEXT_CHARS),
            tuple(expect_bytes(item, "receipt id", HASH_BYTES) for item in ids),
        )


class EventKind(IntEnum):
    """Automatic effects; the `data` layout of each kind is listed in docs/transactions.md."""

    LEASE_CREATED = 1  # subject lease id; data: bid id, offer id, buyer, provider, class, region, quantity,
    #                    price, start, end, escrow, bid refund
    REFUND = 2  # subject order or lease id; data: account, amount
    ORDER_EXPIRED = 3  # subject order id; data: owner
    LEASE_CANCELLED = 4  # subject lease id (no grant by the deadline); data: buyer, refund
    LEASE_ENDED = 5  # subject lease id; data: provider, amount paid
    LEASE_CLOSED = 6  # subject lease id; data: closed by, reason, provider paid, buyer refunded
    GRANT_REVOKED = 7  # subject lease id; data: provider, buyer
    BOOK_CLEARED = 8  # subject empty; data: class, region, round, price, quantity, complete


EventField = int | bytes | str | bool


@dataclass(frozen=True, slots=True)
class Event:
    kind: EventKind
    subject: bytes
    data: tuple[EventField, ...]

    def to_value(self) -> Value:
        return [int(self.kind), self.subject, list(self.data)]

    @classmethod
    def from_value(cls, value: Value) -> Event:
        kind, subject, data = expect_list(value, 3, "event")
        kind_number = expect_int(kind, "event kind")
        try:
            event_kind = EventKind(kind_number)
        except ValueError:
            raise DecodeError(f"event: unknown kind {kind_number}") from None
        if not isinstance(data, list) or len(data) > MAX_EVENT_FIELDS:
            raise DecodeError("event data: expected a short list")
        items: list[EventField] = []
        for item in data:
            if not isinstance(item, int | bytes | str | bool):
                raise DecodeError("event data: expected integers, bytes, text or booleans")
            items.append(item)
        return cls(event_kind, expect_bytes(subject, "event subject", max_len=HASH_BYTES), tuple(items))


def encode_results(receipts: list[Receipt], events: list[Event]) -> bytes:
    """The canonical bytes of `[[r.to_value() ...], [e.to_value() ...]]`, packed without building those lists:
    msgpack packs a tuple (a `Receipt` is a named tuple, its ids a tuple) as an array and an IntEnum as its
    integer, and every field was typed by the state that made it, so `encode`'s walk has nothing to refuse."""
    return encode_shape([receipts, [(e.kind, e.subject, e.data) for e in events]])  # type: ignore[list-item]


def decode_results(data: bytes) -> tuple[list[Receipt], list[Event]]:
    receipts, events = expect_list(decode(data, MAX_RESULTS_BYTES), 2, "block results")
    if not isinstance(receipts, list) or not isinstance(events, list):
        raise DecodeError("block results: expected two lists")
    return [Receipt.from_value(r) for r in receipts], [Event.from_value(e) for e in events]
