"""Block sync over libp2p request/response: `/fedmarket/sync/1.0.0`.

A request names a first height and a count; the answer carries consecutive committed blocks with their
commit certificates, capped in count and bytes. The asker trusts nothing in the answer: every block goes
through certificate checks (by the replica, or by `Chain.apply_certified` for observers).
"""

from __future__ import annotations

from ledger.block import Block
from ledger.codec import Value, decode, encode, expect_bytes, expect_int, expect_list
from ledger.errors import DecodeError
from ledger.limits import MAX_BLOCK_BYTES
from ledger.store import Store
from ledger.votes import MAX_CERTIFICATE_BYTES, Certificate

SYNC_PROTOCOL = "/fedmarket/sync/1.0.0"
MAX_SYNC_BLOCKS = 256
MAX_SYNC_RESPONSE_BYTES = 4 * MAX_BLOCK_BYTES


def encode_request(from_height: int, count: int) -> bytes:
    return encode([from_height, count])


def decode_request(data: bytes) -> tuple[int, int]:
    from_height, count = expect_list(decode(data, 64), 2, "sync request")
    return expect_int(from_height, "sync from height", 1), expect_int(count, "sync count", 1, MAX_SYNC_BLOCKS)


def serve_request(store: Store, data: bytes) -> bytes:
    """The answer to a sync request: as many consecutive blocks as fit the caps (maybe none)."""
    from_height, count = decode_request(data)
    items: list[Value] = []
    size = 0
    top = store.head().height
    for height in range(from_height, min(top, from_height + count - 1) + 1):
        block = store.block_bytes(height)
        certificate = store.certificate(height)
        if block is None or certificate is None:
            break
        cert_bytes = certificate.encode()
        size += len(block) + len(cert_bytes) + 16
        if items and size > MAX_SYNC_RESPONSE_BYTES:
            break
        items.append([block, cert_bytes])
    return encode(items)


def decode_response(data: bytes) -> list[tuple[Block, Certificate]]:
    """Decoded blocks and certificates; checks of content are the caller's job."""
    value = decode(data, MAX_SYNC_RESPONSE_BYTES + 1024)
    if not isinstance(value, list) or len(value) > MAX_SYNC_BLOCKS:
        raise DecodeError(f"sync response: expected a list of at most {MAX_SYNC_BLOCKS} blocks")
    blocks = []
    for item in value:
        block, certificate = expect_list(item, 2, "sync block")
        blocks.append(
            (
                Block.decode(expect_bytes(block, "sync block bytes", max_len=MAX_BLOCK_BYTES)),
                Certificate.decode(
                    expect_bytes(certificate, "sync certificate", max_len=MAX_CERTIFICATE_BYTES)
                ),
            )
        )
    return blocks
