"""The LevelDB store: one synced batch per block, reopening at the head, refusals, queries."""

from __future__ import annotations

import random
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any

import plyvel
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import schema
from ledger.block import Block
from ledger.chain import Chain
from ledger.codec import encode
from ledger.errors import InvalidCertificate, LedgerError
from ledger.keys import PrivateKey
from ledger.limits import MAX_BLOCK_TXS, MAX_INT, MAX_SIGNER_RECORD_BYTES
from ledger.merkle import verify_proof
from ledger.state import Execution
from ledger.store import BlockCommit, Store, StoreError, tx_location_values
from ledger.tx import Transaction
from ledger.votes import Certificate, sign_commit
from tests.ledger.crash_writer import (
    CHAIN_ID,
    VALIDATOR_KEYS,
    certify,
    commit_next,
    make_genesis,
    next_block,
)

GENESIS = make_genesis()


class RecordingBatch:
    def __init__(self, batch: Any, options: dict[str, Any]) -> None:
        self.batch = batch
        self.options = options
        self.keys: list[bytes] = []

    def __enter__(self) -> RecordingBatch:
        self.batch.__enter__()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.batch.__exit__(kind, error, trace)

    def put(self, key: bytes, value: bytes) -> None:
        self.keys.append(key)
        self.batch.put(key, value)

    def delete(self, key: bytes) -> None:
        self.keys.append(key)
        self.batch.delete(key)


class RecordingDB:
    """The real database, with every write batch and direct put recorded."""

    def __init__(self, db: plyvel.DB) -> None:
        self.db = db
        self.batches: list[RecordingBatch] = []
        self.puts: list[bytes] = []

    def write_batch(self, **options: Any) -> RecordingBatch:
        batch = RecordingBatch(self.db.write_batch(**options), options)
        self.batches.append(batch)
        return batch

    def put(self, key: bytes, value: bytes, **options: Any) -> None:
        self.puts.append(key)
        self.db.put(key, value, **options)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.db, name)


def record_writes(chain: Chain) -> RecordingDB:
    recording = RecordingDB(chain.store._db)
    chain.store._db = recording
    return recording


@pytest.fixture
def chain(tmp_path: Path) -> Any:
    opened = Chain.open(tmp_path / "data", GENESIS)
    yield opened
    opened.close()


def test_each_block_is_one_synced_batch_with_the_head_last(chain: Chain) -> None:
    recording = record_writes(chain)
    block = commit_next(chain, random.Random(1), 12)
    assert len(recording.batches) == 1 and not recording.puts
    batch = recording.batches[0]
    assert batch.options == {"sync": True}
    assert batch.keys[-1] == schema.HEAD_KEY
    assert batch.keys.count(schema.HEAD_KEY) == 1
    assert schema.block_key(block.height) in batch.keys
    assert schema.certificate_key(block.height) in batch.keys
    assert schema.receipts_key(block.height) in batch.keys
    assert sum(key.startswith(schema.TX_INDEX_PREFIX) for key in batch.keys) == len(block.txs)
    assert any(key.startswith(schema.STATE_PREFIX) for key in batch.keys)


def test_reopen_resumes_at_the_head_with_the_same_state(tmp_path: Path) -> None:
    path = tmp_path / "data"
    chain = Chain.open(path, GENESIS)
    rng = random.Random(2)
    blocks = [commit_next(chain, rng, 10) for _ in range(4)]
    head, root, items = chain.head(), chain.state.state_root, dict(chain.store.state_items())
    accounts = list(chain.state.accounts())
    chain.close()
    reopened = Chain.open(path, GENESIS)
    try:
        assert reopened.head() == head
        assert head.height == 4 and head.block_hash == blocks[-1].hash
        assert reopened.state.state_root == root == blocks[-1].header.state_root
        assert dict(reopened.store.state_items()) == items
        assert list(reopened.state.accounts()) == accounts
        commit_next(reopened, rng, 10)
        assert reopened.head().height == 5
    finally:
        reopened.close()


def test_queries(chain: Chain) -> None:
    rng = random.Random(3)
    blocks = [commit_next(chain, rng, 6) for _ in range(3)]
    store = chain.store
    assert [b.hash for b, _ in store.blocks()] == [b.hash for b in blocks]
    assert [b.height for b, _ in store.blocks(2, 3)] == [2]
    for block in blocks:
        assert store.block(block.height) == block
        assert store.block_by_hash(block.hash) == block
        assert store.block_bytes(block.height) == block.encoded
        certificate = store.certificate(block.height)
        assert certificate is not None and certificate.block_hash == block.hash
        results = store.results(block.height)
        assert results is not None
        receipts, _ = Execution.decode_results(results)
        assert len(receipts) == len(block.txs)
    last = blocks[-1]
    tx = Transaction.decode(last.txs[2])
    assert store.tx_location(tx.hash) == (last.height, 2)
    inclusion = chain.tx_inclusion(tx.hash)
    assert inclusion is not None
    found, index, proof = inclusion
    assert (found, index, proof.size) == (last, 2, len(last.txs))
    assert verify_proof(last.header.tx_root, tx.hash, proof)
    assert chain.tx_inclusion(b"\x00" * 32) is None
    assert store.tx_location(b"\x00" * 32) is None
    assert store.block(99) is None and store.certificate(99) is None and store.results(0) is None
    assert store.block_by_hash(b"\x01" * 32) is None


@pytest.mark.parametrize("defect", ["too_few", "other_block", "non_member", "duplicate", "other_chain"])
def test_a_block_with_a_bad_certificate_is_refused(chain: Chain, defect: str) -> None:
    block, execution = next_block(chain, random.Random(4), 5)
    signers = VALIDATOR_KEYS[:3]
    if defect == "too_few":
        certificate = certify(block, signers[:2])
    elif defect == "other_block":
        votes = tuple(sign_commit(k, CHAIN_ID, block.height, 0, b"\x05" * 32) for k in signers)
        certificate = Certificate(block.height, 0, block.hash, votes)
    elif defect == "non_member":
        certificate = certify(block, [*signers[:2], PrivateKey(b"\x42" * 32)])
    elif defect == "duplicate":
        certificate = certify(block, [signers[0], signers[0], signers[1]])
    else:
        certificate = certify(block, signers, chain_id="another-chain")
    recording = record_writes(chain)
    head = chain.head()
    with pytest.raises(InvalidCertificate):
        chain.commit(block, certificate, execution)
    assert not recording.batches and chain.head() == head
    chain.commit(block, certify(block), execution)
    assert chain.head().height == head.height + 1


def test_the_store_refuses_a_block_that_does_not_extend_the_head(chain: Chain) -> None:
    rng = random.Random(5)
    first = commit_next(chain, rng, 3)
    block, execution = next_block(chain, rng, 3)
    entry = BlockCommit(first, certify(first), (), b"", {})
    with pytest.raises(StoreError):
        chain.store.commit(entry)
    outside = BlockCommit(block, certify(block), tuple(b"\x00" * 32 for _ in block.txs), b"", {b"x/": b""})
    with pytest.raises(StoreError):
        chain.store.commit(outside)
    chain.commit(block, certify(block), execution)
    assert chain.head().height == 2


def test_catch_up_writes_several_blocks_in_one_batch(tmp_path: Path) -> None:
    source = Chain.open(tmp_path / "source", GENESIS)
    follower = Chain.open(tmp_path / "follower", GENESIS)
    try:
        rng = random.Random(6)
        blocks = [commit_next(source, rng, 5) for _ in range(4)]
        recording = record_writes(follower)
        certified = [(block.encoded, certify(block)) for block in blocks]
        assert follower.apply_certified(certified) == 4
        assert len(recording.batches) == 1 and recording.batches[0].options == {"sync": True}
        assert recording.batches[0].keys[-1] == schema.HEAD_KEY
        assert follower.head() == source.head()
        assert dict(follower.store.state_items()) == dict(source.store.state_items())
    finally:
        source.close()
        follower.close()


@given(st.integers(0, 2**32), st.lists(st.integers(0, 12), min_size=1, max_size=4))
@settings(max_examples=6, deadline=None)
def test_two_stores_fed_the_same_blocks_agree_at_every_height(seed: int, sizes: list[int]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        proposer = Chain.open(Path(directory) / "a", GENESIS)
        member = Chain.open(Path(directory) / "b", GENESIS)
        try:
            rng = random.Random(seed)
            for size in sizes:
                block, execution = next_block(proposer, rng, size)
                certificate = certify(block)
                proposer.commit(block, certificate, execution)
                validated = member.validate_block(block.encoded, block.header.timestamp_ms)
                member.commit(block, certificate, validated)
                assert member.state.state_root == proposer.state.state_root == block.header.state_root
                assert dict(member.store.state_items()) == dict(proposer.store.state_items())
                assert member.store.results(block.height) == proposer.store.results(block.height)
        finally:
            proposer.close()
            member.close()


def test_signer_record_is_kept_across_reopen(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "data", GENESIS)
    assert store.signer_record() is None
    store.put_signer_record(b"last signed: height 7 view 1")
    with pytest.raises(StoreError):
        store.put_signer_record(b"x" * (MAX_SIGNER_RECORD_BYTES + 1))
    store.close()
    store = Store.open(tmp_path / "data", GENESIS)
    try:
        assert store.signer_record() == b"last signed: height 7 view 1"
    finally:
        store.close()


def test_foreign_corrupt_or_locked_data_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "data"
    Store.open(path, GENESIS).close()
    with pytest.raises(StoreError, match="another genesis"):
        Store.open(path, make_genesis(chain_id="other-chain"))
    store = Store.open(path, GENESIS)
    with pytest.raises(StoreError, match="cannot open"):
        Store.open(path, GENESIS)
    store.close()
    with pytest.raises(StoreError):
        Store.open(tmp_path / "missing", GENESIS, create=False)

    foreign = tmp_path / "foreign"
    db = plyvel.DB(str(foreign), create_if_missing=True)
    db.put(b"hello", b"world")
    db.close()
    with pytest.raises(StoreError, match="not a fedmarket store"):
        Store.open(foreign, GENESIS)

    db = plyvel.DB(str(path))
    db.put(schema.HEAD_KEY, b"\xc1garbage")
    db.close()
    with pytest.raises(StoreError, match="corrupt"):
        Store.open(path, GENESIS)

    (tmp_path / "file").write_bytes(b"not a directory")
    with pytest.raises(LedgerError):
        Store.open(tmp_path / "file", GENESIS)


def test_a_stray_block_beyond_the_head_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "data"
    chain = Chain.open(path, GENESIS)
    block: Block = commit_next(chain, random.Random(7), 2)
    chain.close()
    db = plyvel.DB(str(path))
    db.put(schema.block_key(block.height + 1), block.encoded)
    db.close()
    with pytest.raises(StoreError, match="beyond the head"):
        Store.open(path, GENESIS)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, MAX_INT), st.integers(0, MAX_BLOCK_TXS))
def test_tx_location_values_are_the_canonical_encoding(height: int, count: int) -> None:
    assert tx_location_values(height, count) == [encode([height, index]) for index in range(count)]
