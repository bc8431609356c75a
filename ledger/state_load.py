"""Reopening the ledger state from the store's state records.

Theory: the stored records are the whole state; every index the state keeps in memory (the market's books, the
lease timers) is a function of them and is rebuilt here, so a reopened state has the same root and the same
future behaviour as the one that wrote the records. A record that does not decode, or a key of no known
family, is a `LedgerError`: a damaged store is reported, never half-loaded.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from ledger.errors import LedgerError
from ledger.leases import Lease
from ledger.records import AccountRecord, decode_order
from ledger.schema import ACCOUNT_PREFIX, LEASE_PREFIX, ORDER_PREFIX
from ledger.state_meta import (
    BOOKS_KEY,
    CLOCK_KEY,
    PRICE_KEY_PREFIX,
    ROOT_KEY,
    StateMeta,
    decode_price_key,
    decode_prices,
)

if TYPE_CHECKING:
    from ledger.state import LedgerState

ID_BYTES = 32


def _id(key: bytes, prefix: bytes) -> bytes:
    found = key[len(prefix) :]
    if len(found) != ID_BYTES:
        raise LedgerError(f"state key {key!r} does not end in a 32-byte id")
    return found


def load_into(state: LedgerState, items: Iterable[tuple[bytes, bytes]]) -> None:
    clock: tuple[int, int, int] | None = None
    root: bytes | None = None
    books = frozenset[tuple[str, str]]()
    orders = []
    for key, value in items:
        if key.startswith(ACCOUNT_PREFIX):
            state.accounts_by_address[_id(key, ACCOUNT_PREFIX)] = AccountRecord.decode(value)
        elif key.startswith(ORDER_PREFIX):
            orders.append(decode_order(_id(key, ORDER_PREFIX), value))
        elif key.startswith(LEASE_PREFIX):
            lease = Lease.decode(_id(key, LEASE_PREFIX), value)
            state.leases_by_id[lease.lease_id] = lease
            if lease.timer_at is not None:
                state.lease_timers.add((lease.timer_at, lease.lease_id))
        elif key == CLOCK_KEY:
            clock = StateMeta.decode_clock(value)
        elif key == ROOT_KEY:
            root = StateMeta.decode_root(value)
        elif key == BOOKS_KEY:
            books = StateMeta.decode_books(value)
        elif key.startswith(PRICE_KEY_PREFIX):
            state.prices[decode_price_key(key)] = decode_prices(value)
        else:
            raise LedgerError(f"unknown state key {key!r}")
    if clock is None or root is None:
        raise LedgerError("the stored state lacks its clock or its root")
    for record in sorted(orders, key=lambda order: order.seq):
        try:
            state.market.add(record.to_market())
        except ValueError as exc:
            raise LedgerError(f"stored order {record.order_id.hex()} is not valid: {exc}") from None
        state.orders_by_id[record.order_id] = record
    height, timestamp_ms, next_seq = clock
    state.meta = StateMeta(height, timestamp_ms, next_seq, books, root)
