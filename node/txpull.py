"""Mempool catch-up pull over libp2p request/response: `/fedmarket/txpull/1.0.0`.

Gossip loss is silent (gossipsub drops on full queues), so every node periodically asks one member which
transactions it holds (the oldest pending hashes) and fetches the ones it lacks. Two request kinds share the
protocol: `[HASHES, limit]` answers up to `limit` pending hashes, oldest first; `[FETCH, [hash, ...]]`
answers the encoded transactions it still holds among those. Both sides cap counts and bytes.
"""

from __future__ import annotations

from collections.abc import Callable

from ledger.codec import Value, decode, encode, expect_bytes, expect_int, expect_list
from ledger.errors import DecodeError
from ledger.hashing import HASH_BYTES
from ledger.limits import MAX_TX_BYTES

TXPULL_PROTOCOL = "/fedmarket/txpull/1.0.0"
HASHES = 0
FETCH = 1
MAX_PULL_HASHES = 1_024  # fits one request frame of the network layer (64 KiB)
MAX_PULL_RESPONSE_BYTES = 2 * 1024 * 1024
MAX_REQUEST_BYTES = 64 * 1024


def hashes_request(limit: int) -> bytes:
    return encode([HASHES, min(limit, MAX_PULL_HASHES)])


def fetch_request(hashes: list[bytes]) -> bytes:
    return encode([FETCH, list[Value](hashes[:MAX_PULL_HASHES])])


def serve(
    request: bytes, pending: Callable[[int], list[bytes]], lookup: Callable[[bytes], bytes | None]
) -> bytes:
    """Answer a pull request from this node's mempool (`pending(limit)` hashes, `lookup(hash)` encoding)."""
    kind, argument = expect_list(decode(request, MAX_REQUEST_BYTES), 2, "txpull request")
    if expect_int(kind, "txpull kind", HASHES, FETCH) == HASHES:
        return encode(list[Value](pending(expect_int(argument, "txpull limit", 1, MAX_PULL_HASHES))))
    if not isinstance(argument, list) or len(argument) > MAX_PULL_HASHES:
        raise DecodeError(f"txpull fetch: at most {MAX_PULL_HASHES} hashes")
    found: list[Value] = []
    size = 0
    for item in argument:
        encoded = lookup(expect_bytes(item, "txpull hash", HASH_BYTES))
        if encoded is None:
            continue
        size += len(encoded) + 8
        if size > MAX_PULL_RESPONSE_BYTES:
            break
        found.append(encoded)
    return encode(found)


def decode_hashes(data: bytes) -> list[bytes]:
    value = decode(data, MAX_PULL_HASHES * (HASH_BYTES + 4) + 16)
    if not isinstance(value, list):
        raise DecodeError("txpull hashes: expected a list")
    return [expect_bytes(item, "txpull hash", HASH_BYTES) for item in value]


def decode_transactions(data: bytes) -> list[bytes]:
    value = decode(data, MAX_PULL_RESPONSE_BYTES + 1024)
    if not isinstance(value, list) or len(value) > MAX_PULL_HASHES:
        raise DecodeError(f"txpull transactions: expected a list of at most {MAX_PULL_HASHES}")
    return [expect_bytes(item, "txpull transaction", max_len=MAX_TX_BYTES) for item in value]
