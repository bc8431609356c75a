"""The LevelDB store: blocks, certificates, results, the transaction index and the ledger state.

Theory: LevelDB applies a write batch atomically (the batch is one record of its write-ahead log, replayed
whole or not at all on reopen), and `sync=True` makes the batch durable before the call returns. So every
block is committed as ONE synced batch holding the block, its hash index, its certificate, its results, its
transaction index entries, the state writes its execution produced, and, last, the head record. After any
crash the store holds a prefix of the chain in which every block is whole and the state is exactly the state
after the head block: there is no moment at which a block is half written or the state is ahead of (or behind)
the head. Keys come from `ledger.schema` only. The store checks what it is given against what it holds (the
link to the head, the certificate against the genesis validator set) so that no caller can write a fork.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import plyvel

from ledger import schema
from ledger.block import Block
from ledger.codec import decode, encode, expect_bytes, expect_int, expect_list
from ledger.errors import DecodeError, InvalidCertificate, LedgerError
from ledger.genesis import Genesis
from ledger.hashing import HASH_BYTES
from ledger.limits import MAX_BLOCK_TXS, MAX_SIGNER_RECORD_BYTES
from ledger.state import LedgerState
from ledger.votes import Certificate

# Measured with synced batches shaped like a 1,000-transaction block (3,000 keys, 250 KB) on this machine:
# 4 MB stalls for up to 1.4 s while level-0 compactions catch up; 64 MB kept the worst batch near 0.2 s (p99
# 38 ms); larger buffers flush less often but each flush takes longer (256 MB: 0.7 s). See docs/encoding.md.
WRITE_BUFFER_BYTES = 64 * 1024 * 1024
BLOCK_CACHE_BYTES = 32 * 1024 * 1024
TABLE_BLOCK_BYTES = 16 * 1024
BLOOM_BITS_PER_KEY = (
    10  # most transaction-index lookups are misses (is this tx new?): bloom filters skip disk
)
MAX_OPEN_FILES = 512
MAX_RECORD_BYTES = 1024

_T = TypeVar("_T")


class StoreError(LedgerError):
    """The data directory cannot be used: corrupt, foreign, locked, or a write that would break the chain."""


@dataclass(frozen=True, slots=True)
class Head:
    """The last committed block (height 0 is genesis, whose hash is the genesis hash)."""

    height: int
    block_hash: bytes
    timestamp_ms: int
    state_root: bytes

    def encode(self) -> bytes:
        return encode([self.height, self.block_hash, self.timestamp_ms, self.state_root])

    @classmethod
    def decode(cls, data: bytes) -> Head:
        height, block_hash, timestamp_ms, state_root = expect_list(decode(data, MAX_RECORD_BYTES), 4, "head")
        return cls(
            expect_int(height, "head height"),
            expect_bytes(block_hash, "head hash", HASH_BYTES),
            expect_int(timestamp_ms, "head timestamp"),
            expect_bytes(state_root, "head state root", HASH_BYTES),
        )


@dataclass(frozen=True, slots=True)
class BlockCommit:
    """Everything one block adds to the store, written together."""

    block: Block
    certificate: Certificate
    tx_hashes: tuple[bytes, ...]
    results: bytes
    writes: Mapping[bytes, bytes | None]


def tx_location_values(height: int, count: int) -> list[bytes]:
    """`encode([height, index])` for each index in range(count), the values of a block's tx index entries:
    a two-item array is the header 0x92 and the two packed integers, so the height is packed once."""
    prefix = b"\x92" + encode(height)
    return [prefix + packed for packed in _PACKED_INDICES[:count]]


_PACKED_INDICES = tuple(encode(index) for index in range(MAX_BLOCK_TXS))


def _tx_location(data: bytes) -> tuple[int, int]:
    height, index = expect_list(decode(data, MAX_RECORD_BYTES), 2, "tx location")
    return expect_int(height, "tx height", 1), expect_int(index, "tx index")


class Store:
    """One data directory; not thread-safe (the node calls it from one thread)."""

    def __init__(self, db: plyvel.DB, genesis: Genesis, head: Head) -> None:
        self._db = db
        self.genesis = genesis
        self._head = head
        # Certificates `verify_certificate` checked since the last write: the write does not check them again.
        self._checked: set[tuple[Certificate, int, bytes]] = set()

    @classmethod
    def open(cls, path: str | Path, genesis: Genesis, create: bool = True) -> Store:
        """Create the store for `genesis` at `path` (unless `create` is False), or reopen it at its head."""
        try:
            db = plyvel.DB(
                str(path),
                create_if_missing=create,
                write_buffer_size=WRITE_BUFFER_BYTES,
                lru_cache_size=BLOCK_CACHE_BYTES,
                block_size=TABLE_BLOCK_BYTES,
                bloom_filter_bits=BLOOM_BITS_PER_KEY,
                max_open_files=MAX_OPEN_FILES,
            )
        except plyvel.Error as exc:
            raise StoreError(f"cannot open the store at {path}: {exc}") from None
        try:
            head = cls._initialize(db, genesis, str(path))
        except BaseException:
            db.close()
            raise
        return cls(db, genesis, head)

    @staticmethod
    def _initialize(db: plyvel.DB, genesis: Genesis, path: str) -> Head:
        try:
            stored_genesis = db.get(schema.GENESIS_KEY)
            if stored_genesis is None:
                if next(db.iterator(include_value=False), None) is not None:
                    raise StoreError(f"{path} holds data that is not a fedmarket store")
                state, writes = LedgerState.from_genesis(genesis)
                head = Head(0, genesis.hash(), genesis.genesis_time_ms, state.state_root)
                with db.write_batch(sync=True) as batch:
                    batch.put(schema.GENESIS_KEY, genesis.hash())
                    for key, value in sorted(writes.items()):
                        batch.put(key, value)
                    batch.put(schema.HEAD_KEY, head.encode())
                return head
            if stored_genesis != genesis.hash():
                raise StoreError(f"{path} holds the chain of another genesis")
            raw_head = db.get(schema.HEAD_KEY)
            if raw_head is None:
                raise StoreError(f"{path} has no head record")
            head = Head.decode(raw_head)
            _check_head(db, genesis, head, path)
            return head
        except DecodeError as exc:
            raise StoreError(f"{path} is corrupt: {exc}") from None
        except plyvel.Error as exc:
            raise StoreError(f"{path} cannot be read: {exc}") from None

    def close(self) -> None:
        self._db.close()

    @property
    def closed(self) -> bool:
        return bool(self._db.closed)

    # Writes.

    def commit(self, entry: BlockCommit) -> None:
        """Write one certified block with its results and state writes in one synced batch."""
        self.commit_many([entry])

    def commit_many(self, entries: Sequence[BlockCommit]) -> None:
        """Write consecutive certified blocks in one synced batch (catch-up); all or nothing."""
        try:
            self._commit_many(entries)
        finally:
            self._checked.clear()

    def _commit_many(self, entries: Sequence[BlockCommit]) -> None:
        if not entries:
            return
        head = self._head
        for entry in entries:
            head = self._check_entry(head, entry)
        try:
            with self._db.write_batch(sync=True) as batch:
                put = batch.put
                for entry in entries:
                    block = entry.block
                    height = block.height
                    batch.put(schema.block_key(height), block.encoded)
                    batch.put(schema.block_hash_key(block.hash), schema.u64(height))
                    batch.put(schema.certificate_key(height), entry.certificate.encode())
                    batch.put(schema.receipts_key(height), entry.results)
                    hashes = entry.tx_hashes
                    for key, value in zip(
                        map(schema.tx_index_key, hashes), tx_location_values(height, len(hashes)), strict=True
                    ):
                        put(key, value)
                    for key, state_value in entry.writes.items():
                        if state_value is None:
                            batch.delete(key)
                        else:
                            put(key, state_value)
                batch.put(schema.HEAD_KEY, head.encode())
        except plyvel.Error as exc:
            raise StoreError(f"write failed: {exc}") from None
        self._head = head

    def _check_entry(self, parent: Head, entry: BlockCommit) -> Head:
        header = entry.block.header
        if header.height != parent.height + 1 or header.prev_hash != parent.block_hash:
            raise StoreError(
                f"block {header.height} does not extend the head at height {parent.height}: refused"
            )
        if len(entry.tx_hashes) != len(entry.block.txs):
            raise StoreError(f"block {header.height}: one transaction hash per transaction is needed")
        state_prefix = schema.STATE_PREFIX
        for key in entry.writes:
            if not key.startswith(state_prefix):
                raise StoreError(f"block {header.height}: a state write outside the state keys")
        try:
            self.verify_certificate(entry.certificate, header.height, header.hash)
        except InvalidCertificate as exc:
            raise InvalidCertificate(f"block {header.height} refused: {exc}") from None
        return Head(header.height, header.hash, header.timestamp_ms, header.state_root)

    def verify_certificate(self, certificate: Certificate, height: int, block_hash: bytes) -> None:
        """`certificate.verify` against this chain's validators, remembered until the next write, which then
        does not check the same certificate for the same block again (catch-up checks each block's before
        executing it)."""
        checked = (certificate, height, block_hash)
        if checked not in self._checked:
            certificate.verify(self.genesis.validators, self.genesis.chain_id, height, block_hash)
            self._checked.add(checked)

    def put_signer_record(self, data: bytes) -> None:
        """Durably replace consensus's small "last signed" record (synced before returning)."""
        if not isinstance(data, bytes) or len(data) > MAX_SIGNER_RECORD_BYTES:
            raise StoreError(f"the signer record is at most {MAX_SIGNER_RECORD_BYTES} bytes")
        try:
            self._db.put(schema.SIGNER_RECORD_KEY, data, sync=True)
        except plyvel.Error as exc:
            raise StoreError(f"write failed: {exc}") from None

    # Queries.

    def signer_record(self) -> bytes | None:
        return self._get(schema.SIGNER_RECORD_KEY)

    def head(self) -> Head:
        return self._head

    def block_bytes(self, height: int) -> bytes | None:
        return self._get(schema.block_key(height)) if 1 <= height <= self._head.height else None

    def block(self, height: int) -> Block | None:
        data = self.block_bytes(height)
        return None if data is None else self._decoded(Block.decode, data, f"block {height}")

    def height_of(self, block_hash: bytes) -> int | None:
        data = self._get(schema.block_hash_key(block_hash))
        return None if data is None or len(data) != 8 else schema.parse_u64(data)

    def block_by_hash(self, block_hash: bytes) -> Block | None:
        height = self.height_of(block_hash)
        return None if height is None else self.block(height)

    def certificate(self, height: int) -> Certificate | None:
        data = self._get(schema.certificate_key(height)) if 1 <= height <= self._head.height else None
        return None if data is None else self._decoded(Certificate.decode, data, f"certificate {height}")

    def results(self, height: int) -> bytes | None:
        """The encoded receipts and events of a block (`Execution.decode_results` reads them)."""
        return self._get(schema.receipts_key(height)) if 1 <= height <= self._head.height else None

    def tx_location(self, tx_hash: bytes) -> tuple[int, int] | None:
        """(height, index in block) of a committed transaction, or None."""
        data = self._get(schema.tx_index_key(tx_hash))
        return None if data is None else self._decoded(_tx_location, data, "tx location")

    def first_committed(self, tx_hashes: Iterable[bytes]) -> bytes | None:
        """The first of `tx_hashes` that names a committed transaction, if any (one lookup per hash, with no
        decoding of what is found)."""
        get, key_of = self._db.get, schema.tx_index_key
        try:
            for tx_hash in tx_hashes:
                if get(key_of(tx_hash)) is not None:
                    return tx_hash
        except plyvel.Error as exc:
            raise StoreError(f"read failed: {exc}") from None
        return None

    def blocks(self, start: int = 1, stop: int | None = None) -> Iterator[tuple[Block, Certificate]]:
        """Committed blocks with their certificates, heights in [start, stop), in height order."""
        last = self._head.height if stop is None else min(stop - 1, self._head.height)
        for height in range(max(start, 1), last + 1):
            block, certificate = self.block(height), self.certificate(height)
            if block is None or certificate is None:
                raise StoreError(f"block {height} is missing below the head {self._head.height}")
            yield block, certificate

    def state_items(self) -> Iterator[tuple[bytes, bytes]]:
        """Every state key and value (the input of `LedgerState.load`), in key order."""
        try:
            yield from self._db.iterator(
                start=schema.STATE_PREFIX, stop=schema.prefix_end(schema.STATE_PREFIX)
            )
        except plyvel.Error as exc:
            raise StoreError(f"read failed: {exc}") from None

    def _get(self, key: bytes) -> bytes | None:
        try:
            value: bytes | None = self._db.get(key)
        except plyvel.Error as exc:
            raise StoreError(f"read failed: {exc}") from None
        return value

    @staticmethod
    def _decoded(decoder: Callable[[bytes], _T], data: bytes, what: str) -> _T:
        try:
            return decoder(data)
        except DecodeError as exc:
            raise StoreError(f"stored {what} is corrupt: {exc}") from None


def _check_head(db: plyvel.DB, genesis: Genesis, head: Head, path: str) -> None:
    """The head record must name a whole block, and nothing may be stored beyond it."""
    if head.height == 0:
        if head.block_hash != genesis.hash():
            raise StoreError(f"{path}: the head at height 0 is not the genesis")
    else:
        data = db.get(schema.block_key(head.height))
        if data is None or db.get(schema.certificate_key(head.height)) is None:
            raise StoreError(f"{path}: the head block {head.height} is missing")
        if Block.decode(data).hash != head.block_hash:
            raise StoreError(f"{path}: the head block {head.height} does not match the head record")
    if db.get(schema.block_key(head.height + 1)) is not None:
        raise StoreError(f"{path}: a block is stored beyond the head {head.height}")
