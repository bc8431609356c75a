"""Transaction batches for gossipsub.

py-libp2p's gossipsub costs milliseconds of CPU per message, whatever its size, so transactions travel in
batches: one canonical msgpack array of transaction bytes per gossip message. Every batch is checked against
the size cap before it is published (an oversized gossip message would be dropped with only a DEBUG log) and
every inbound batch against the count and size caps before anyone looks inside.
"""

from __future__ import annotations

from collections.abc import Sequence

from ledger.codec import decode, encode
from ledger.errors import DecodeError
from node.p2p.errors import GossipBatchTooLarge

# msgpack overhead: an array header (at most 5 bytes) and a bin header per item (at most 5 bytes).
ARRAY_HEADER_BYTES = 5
ITEM_HEADER_BYTES = 5


def split_into_batches(
    txs: Sequence[bytes], max_batch_bytes: int, max_batch_txs: int, max_tx_bytes: int
) -> list[bytes]:
    """Encode `txs` as few batches as the caps allow; refuse the whole call if one transaction cannot fit."""
    for tx in txs:
        alone = ARRAY_HEADER_BYTES + ITEM_HEADER_BYTES + len(tx)
        if not tx or len(tx) > max_tx_bytes or alone >= max_batch_bytes:
            raise GossipBatchTooLarge(
                f"a transaction of {len(tx)} bytes cannot be gossiped (1..{max_tx_bytes} bytes, "
                f"batch cap {max_batch_bytes} bytes)"
            )
    batches: list[bytes] = []
    current: list[bytes] = []
    size = ARRAY_HEADER_BYTES
    for tx in txs:
        item = ITEM_HEADER_BYTES + len(tx)
        if current and (size + item >= max_batch_bytes or len(current) >= max_batch_txs):
            batches.append(encode_batch(current, max_batch_bytes))
            current, size = [], ARRAY_HEADER_BYTES
        current.append(tx)
        size += item
    if current:
        batches.append(encode_batch(current, max_batch_bytes))
    return batches


def encode_batch(txs: Sequence[bytes], max_batch_bytes: int) -> bytes:
    encoded = encode(list(txs))
    if len(encoded) >= max_batch_bytes:
        raise GossipBatchTooLarge(f"batch of {len(encoded)} bytes is over the cap {max_batch_bytes}")
    return encoded


def decode_batch(data: bytes, max_batch_bytes: int, max_batch_txs: int, max_tx_bytes: int) -> list[bytes]:
    """The transactions of a gossip batch; DecodeError for anything else."""
    if len(data) >= max_batch_bytes:
        raise DecodeError(f"gossip batch of {len(data)} bytes over the cap {max_batch_bytes}")
    value = decode(data, max_batch_bytes)
    if not isinstance(value, list) or not value or len(value) > max_batch_txs:
        raise DecodeError(f"a gossip batch is a list of 1..{max_batch_txs} transactions")
    txs: list[bytes] = []
    for item in value:
        if not isinstance(item, bytes) or not item or len(item) > max_tx_bytes:
            raise DecodeError(f"a gossiped transaction is 1..{max_tx_bytes} bytes")
        txs.append(item)
    return txs
