"""The ledger state's bookkeeping records: clock, pending books, state root and price history.

Theory: besides accounts, orders and leases, the state must remember a few facts for its future behaviour to
be a function of what is stored: the last height and block time, the order counter (time priority), the books
to clear at the next clearing height, the recent clearing prices, and the state root. All but the root are
committed by the root; the root is stored beside them so a reopened state resumes the chain of roots.
`root_of` defines the root: root_h = H(tag, root_{h-1} || height || the block's writes sorted by key).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ledger.codec import decode, encode, encode_shape, expect_bytes, expect_int, expect_list, expect_str
from ledger.errors import DecodeError
from ledger.hashing import HASH_BYTES, tagged_hash
from ledger.limits import MAX_CLASSES, MAX_REGIONS
from ledger.schema import STATE_META_PREFIX, state_meta_key
from ledger.tx import MAX_NAME_CHARS

BookKey = tuple[str, str]  # (resource class, region)

STATE_ROOT_TAG = b"fedmarket/state-root"
_LEN = struct.Struct(">I")
_HEIGHT = struct.Struct(">Q")

CLOCK_KEY = state_meta_key("clock")
BOOKS_KEY = state_meta_key("books")
ROOT_KEY = state_meta_key("root")
PRICE_KEY_PREFIX = STATE_META_PREFIX + b"price/"
PRICE_HISTORY = 16
MAX_META_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class PricePoint:
    height: int
    price: int
    quantity: int


def price_key(book: BookKey) -> bytes:
    return state_meta_key("price/" + encode([book[0], book[1]]).hex())


def decode_price_key(key: bytes) -> BookKey:
    try:
        raw = bytes.fromhex(key[len(PRICE_KEY_PREFIX) :].decode())
    except (UnicodeDecodeError, ValueError):
        raise DecodeError("price key: not hex") from None
    resource_class, region = expect_list(decode(raw, MAX_META_BYTES), 2, "price key")
    return expect_str(resource_class, "price class", MAX_NAME_CHARS), expect_str(
        region, "price region", MAX_NAME_CHARS
    )


def encode_prices(points: tuple[PricePoint, ...]) -> bytes:
    """The canonical bytes of a price history; its integers come from the state (heights, prices within
    MAX_PRICE, quantities within MAX_QUANTITY), so `encode`'s walk has nothing to refuse."""
    return encode_shape([[p.height, p.price, p.quantity] for p in points])


def decode_prices(data: bytes) -> tuple[PricePoint, ...]:
    value = decode(data, MAX_META_BYTES)
    if not isinstance(value, list) or not 1 <= len(value) <= PRICE_HISTORY:
        raise DecodeError(f"price history: expected 1 to {PRICE_HISTORY} entries")
    points = []
    for item in value:
        height, price, quantity = expect_list(item, 3, "price point")
        points.append(
            PricePoint(
                expect_int(height, "price height"), expect_int(price, "price"), expect_int(quantity, "qty")
            )
        )
    return tuple(points)


@dataclass(frozen=True, slots=True)
class StateMeta:
    height: int
    last_timestamp_ms: int
    next_seq: int
    books: frozenset[BookKey]
    state_root: bytes

    def encode_clock(self) -> bytes:
        return encode([self.height, self.last_timestamp_ms, self.next_seq])

    def books_write(self) -> dict[bytes, bytes | None]:
        return {BOOKS_KEY: encode([[c, r] for c, r in sorted(self.books)])}

    def root_write(self) -> dict[bytes, bytes | None]:
        return {ROOT_KEY: encode(self.state_root)}

    @staticmethod
    def decode_clock(data: bytes) -> tuple[int, int, int]:
        height, timestamp_ms, next_seq = expect_list(decode(data, MAX_META_BYTES), 3, "state clock")
        return (
            expect_int(height, "state height"),
            expect_int(timestamp_ms, "state timestamp"),
            expect_int(next_seq, "state order counter"),
        )

    @staticmethod
    def decode_books(data: bytes) -> frozenset[BookKey]:
        value = decode(data, MAX_META_BYTES)
        if not isinstance(value, list) or len(value) > MAX_CLASSES * MAX_REGIONS:
            raise DecodeError("pending books: expected a bounded list")
        books = []
        for item in value:
            resource_class, region = expect_list(item, 2, "pending book")
            books.append(
                (
                    expect_str(resource_class, "book class", MAX_NAME_CHARS),
                    expect_str(region, "book region", 64),
                )
            )
        return frozenset(books)

    @staticmethod
    def decode_root(data: bytes) -> bytes:
        return expect_bytes(decode(data, MAX_META_BYTES), "state root", HASH_BYTES)


def root_of(previous_root: bytes, height: int, writes: dict[bytes, bytes | None]) -> bytes:
    """The state root after a block with these writes (length-prefixed, sorted by key)."""
    pack = _LEN.pack
    parts = [previous_root, _HEIGHT.pack(height)]
    for key in sorted(writes):
        value = writes[key]
        if value is None:
            parts.append(pack(len(key)) + key + b"\x00")
        else:
            parts.append(pack(len(key)) + key + b"\x01" + pack(len(value)) + value)
    return tagged_hash(STATE_ROOT_TAG, b"".join(parts))
