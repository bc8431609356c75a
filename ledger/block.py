"""Blocks: a header that commits to everything, and the transactions as their canonical bytes.

Theory: the block hash is a tagged hash of the canonical header alone. The header commits to the transactions
through `tx_root` (a Merkle root over the transaction hashes, so one transaction can be proven with a short
path), to the parent through `prev_hash`, to the federation through `validators_hash`, and to the ledger state
AFTER executing this block through `state_root`: two nodes whose states diverge disagree on the first block
where they differ. Certificates are not inside the block (members may hold different valid sets of votes).
Block time: a timestamp is later than the parent's and within a bound of the checking member's own clock,
which is passed in, so this module reads no clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ledger.codec import (
    Value,
    decode,
    decode_shape,
    encode,
    expect_bytes,
    expect_int,
    expect_list,
    expect_str,
)
from ledger.errors import DecodeError, LedgerError
from ledger.hashing import HASH_BYTES, tagged_hash
from ledger.keys import PUBLIC_KEY_BYTES
from ledger.limits import MAX_BLOCK_BYTES, MAX_BLOCK_TXS, MAX_TEXT_CHARS, MAX_TX_BYTES
from ledger.merkle import merkle_root

BLOCK_VERSION = 1
BLOCK_HASH_TAG = b"fedmarket/block-header"
HEADER_FIELDS = 9
MAX_HEADER_BYTES = 1024


class InvalidBlock(LedgerError):
    """A well-formed block that breaks a rule of the chain (link, time, roots, transactions)."""


class UntimelyBlock(InvalidBlock):
    """A block whose timestamp is outside the clock bound of the local clock: a judgment of this member's
    clock at this moment, not a proof against the proposer (the block may have waited in a queue while this
    member was away, or this clock may be off)."""


@dataclass(frozen=True)
class BlockHeader:
    version: int
    chain_id: str
    height: int
    prev_hash: bytes
    timestamp_ms: int
    proposer: bytes
    tx_root: bytes
    state_root: bytes
    validators_hash: bytes
    encoded: bytes = field(init=False, repr=False, compare=False)
    hash: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.version != BLOCK_VERSION:
            raise DecodeError(f"block header: unknown version {self.version}")
        expect_str(self.chain_id, "block chain id", MAX_TEXT_CHARS)
        expect_int(self.height, "block height", 1)
        expect_bytes(self.prev_hash, "block prev hash", HASH_BYTES)
        expect_int(self.timestamp_ms, "block timestamp")
        expect_bytes(self.proposer, "block proposer", PUBLIC_KEY_BYTES)
        expect_bytes(self.tx_root, "block tx root", HASH_BYTES)
        expect_bytes(self.state_root, "block state root", HASH_BYTES)
        expect_bytes(self.validators_hash, "block validators hash", HASH_BYTES)
        encoded = encode(self.to_value())
        object.__setattr__(self, "encoded", encoded)
        object.__setattr__(self, "hash", tagged_hash(BLOCK_HASH_TAG, encoded))

    def to_value(self) -> Value:
        return [
            self.version,
            self.chain_id,
            self.height,
            self.prev_hash,
            self.timestamp_ms,
            self.proposer,
            self.tx_root,
            self.state_root,
            self.validators_hash,
        ]

    @classmethod
    def from_value(cls, value: Value) -> BlockHeader:
        fields = expect_list(value, HEADER_FIELDS, "block header")
        version = expect_int(fields[0], "block version")
        chain_id = expect_str(fields[1], "block chain id", MAX_TEXT_CHARS)
        height = expect_int(fields[2], "block height", 1)
        prev_hash = expect_bytes(fields[3], "block prev hash", HASH_BYTES)
        timestamp_ms = expect_int(fields[4], "block timestamp")
        proposer = expect_bytes(fields[5], "block proposer", PUBLIC_KEY_BYTES)
        tx_root = expect_bytes(fields[6], "block tx root", HASH_BYTES)
        state_root = expect_bytes(fields[7], "block state root", HASH_BYTES)
        validators_hash = expect_bytes(fields[8], "block validators hash", HASH_BYTES)
        return cls(
            version, chain_id, height, prev_hash, timestamp_ms, proposer, tx_root, state_root, validators_hash
        )

    @classmethod
    def decode(cls, data: bytes) -> BlockHeader:
        return cls.from_value(decode(data, MAX_HEADER_BYTES))


@dataclass(frozen=True)
class Block:
    header: BlockHeader
    txs: tuple[bytes, ...]
    encoded: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.txs, tuple) or len(self.txs) > MAX_BLOCK_TXS:
            raise DecodeError(f"block: at most {MAX_BLOCK_TXS} transactions in a tuple")
        for tx in self.txs:
            if not isinstance(tx, bytes) or not 0 < len(tx) <= MAX_TX_BYTES:
                raise DecodeError(f"block: each transaction is 1 to {MAX_TX_BYTES} bytes")
        encoded = encode([self.header.to_value(), list(self.txs)])
        if len(encoded) > MAX_BLOCK_BYTES:
            raise DecodeError(f"block of {len(encoded)} bytes exceeds the limit of {MAX_BLOCK_BYTES}")
        object.__setattr__(self, "encoded", encoded)

    @property
    def hash(self) -> bytes:
        return self.header.hash

    @property
    def height(self) -> int:
        return self.header.height

    @classmethod
    def decode(cls, data: bytes) -> Block:
        """Strict decode: canonical bytes within the size caps, else `DecodeError`."""
        header, txs = expect_list(decode_shape(data, MAX_BLOCK_BYTES), 2, "block")
        if not isinstance(txs, list) or len(txs) > MAX_BLOCK_TXS:
            raise DecodeError(f"block: transactions must be a list of at most {MAX_BLOCK_TXS}")
        for tx in txs:
            if type(tx) is not bytes or not 0 < len(tx) <= MAX_TX_BYTES:
                raise DecodeError(f"block: each transaction is 1 to {MAX_TX_BYTES} bytes")
        # `data` is canonical (decode_shape) and every field is checked: it is the block's encoding, so the
        # object is filled directly instead of encoding the transactions again in `__post_init__`.
        block = object.__new__(cls)
        object.__setattr__(block, "header", BlockHeader.from_value(header))
        object.__setattr__(block, "txs", tuple(txs))
        object.__setattr__(block, "encoded", bytes(data))
        return block


def tx_root(tx_hashes: Sequence[bytes]) -> bytes:
    """The header's `tx_root`: the Merkle root over the transaction hashes in block order."""
    return merkle_root(tx_hashes)


def check_timestamp(parent_ts: int, ts: int, local_now_ms: int, clock_bound_ms: int) -> None:
    """Raise `InvalidBlock` unless `ts` is after the parent's, `UntimelyBlock` unless it is within
    `clock_bound_ms` of local time."""
    if ts <= parent_ts:
        raise InvalidBlock(f"timestamp {ts} is not later than the parent's {parent_ts}")
    if abs(ts - local_now_ms) > clock_bound_ms:
        raise UntimelyBlock(
            f"timestamp {ts} is {ts - local_now_ms:+d} ms from the local clock (bound {clock_bound_ms} ms)"
        )
