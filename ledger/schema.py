"""Every LevelDB key of the store, built in this one module.

Theory: keys are short prefixes plus fixed-width big-endian integers or fixed-length hashes, so LevelDB's
byte order is the natural order (blocks by height iterate in height order) and two families can never collide:
every prefix ends in `/` and no prefix is a prefix of another. State keys all live under `STATE_PREFIX`, so
the whole ledger state can be loaded with one range scan.
"""

from __future__ import annotations

import struct

_U64 = struct.Struct(">Q")

META_PREFIX = b"m/"
BLOCK_PREFIX = b"b/"
BLOCK_HASH_PREFIX = b"h/"
CERTIFICATE_PREFIX = b"c/"
RECEIPTS_PREFIX = b"r/"
TX_INDEX_PREFIX = b"t/"
STATE_PREFIX = b"s/"

# State families, under STATE_PREFIX.
ACCOUNT_PREFIX = STATE_PREFIX + b"a/"
ORDER_PREFIX = STATE_PREFIX + b"o/"
LEASE_PREFIX = STATE_PREFIX + b"l/"
STATE_META_PREFIX = STATE_PREFIX + b"m/"

HEAD_KEY = META_PREFIX + b"head"
GENESIS_KEY = META_PREFIX + b"genesis"
SIGNER_RECORD_KEY = META_PREFIX + b"last-signed"


def u64(value: int) -> bytes:
    return _U64.pack(value)


def parse_u64(data: bytes) -> int:
    return int(_U64.unpack(data)[0])


def block_key(height: int) -> bytes:
    return BLOCK_PREFIX + u64(height)


def block_hash_key(block_hash: bytes) -> bytes:
    return BLOCK_HASH_PREFIX + block_hash


def certificate_key(height: int) -> bytes:
    return CERTIFICATE_PREFIX + u64(height)


def receipts_key(height: int) -> bytes:
    return RECEIPTS_PREFIX + u64(height)


def tx_index_key(tx_hash: bytes) -> bytes:
    return TX_INDEX_PREFIX + tx_hash


def account_key(address: bytes) -> bytes:
    return ACCOUNT_PREFIX + address


def order_key(order_id: bytes) -> bytes:
    return ORDER_PREFIX + order_id


def lease_key(lease_id: bytes) -> bytes:
    return LEASE_PREFIX + lease_id


def state_meta_key(name: str) -> bytes:
    return STATE_META_PREFIX + name.encode()


def prefix_end(prefix: bytes) -> bytes:
    """The smallest key greater than every key that starts with `prefix` (for range scans)."""
    return prefix[:-1] + bytes([prefix[-1] + 1])
