"""The chain: building, validating (and refusing) blocks, commit and discard, catch-up, verification."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import plyvel
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import schema
from ledger.block import Block, InvalidBlock, tx_root
from ledger.chain import (
    VERIFIED_CACHE_SIZE,
    AppliedBlock,
    Chain,
    ChainVerificationError,
    tx_hash_of,
    verify_chain_full,
    verify_links_and_certificates,
)
from ledger.errors import DecodeError, InvalidCertificate, LedgerError
from ledger.keys import PrivateKey
from ledger.tx import Transaction, Transfer, sign_transaction
from ledger.votes import Certificate
from tests.ledger.crash_writer import (
    CHAIN_ID,
    USER_KEYS,
    VALIDATOR_KEYS,
    certify,
    commit_next,
    make_genesis,
    next_block,
)

GENESIS = make_genesis()
CLOCK_BOUND_MS = GENESIS.block_params.clock_bound_ms


def snapshot(chain: Chain) -> tuple[Any, ...]:
    state = chain.state
    return (
        state.height,
        state.state_root,
        state.last_timestamp_ms,
        list(state.accounts()),
        list(state.orders()),
        list(state.leases()),
        state.pending_books(),
        chain.head(),
    )


@dataclass
class Pair:
    """A proposer and a member that agree on two blocks; the proposer has built (not committed) a third."""

    proposer: Chain
    member: Chain
    block: Block
    committed: list[Block]

    def accept(self, block: Block) -> None:
        """The correct block still validates and commits on the member after a refusal."""
        execution = self.member.validate_block(block.encoded, block.header.timestamp_ms)
        assert execution.state_root == block.header.state_root
        self.member.commit(block, certify(block), execution)


def make_pair(directory: Path, seed: int = 11) -> Pair:
    proposer = Chain.open(directory / "proposer", GENESIS)
    member = Chain.open(directory / "member", GENESIS)
    rng = random.Random(seed)
    committed = [commit_next(proposer, rng, 10) for _ in range(2)]
    member.apply_certified([(b, certify(b)) for b in committed])
    block, _ = next_block(proposer, rng, 10)
    return Pair(proposer, member, block, committed)


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    made = make_pair(tmp_path)
    yield made
    made.proposer.close()
    made.member.close()


def with_txs(block: Block, txs: tuple[bytes, ...]) -> Block:
    """The block with other transactions and a matching tx root."""
    hashes = [Transaction.decode(data).hash for data in txs]
    return Block(replace(block.header, tx_root=tx_root(hashes)), txs)


def forged(data: bytes) -> bytes:
    """The transaction with a signature that does not verify (another key's over the same payload)."""
    tx = Transaction.decode(data)
    signature = PrivateKey(b"\x66" * 32).sign(b"fedmarket/tx", CHAIN_ID, tx.signing_payload())
    return Transaction(tx.kind, tx.chain_id, tx.sender, tx.nonce, tx.body, signature).encoded


Mutation = Callable[[Pair], tuple[Block | bytes, int]]


def header_change(**changes: Any) -> Mutation:
    def mutate(pair: Pair) -> tuple[Block | bytes, int]:
        block = pair.block
        return Block(replace(block.header, **changes), block.txs), block.header.timestamp_ms

    return mutate


def clock_offset(offset_ms: int) -> Mutation:
    return lambda pair: (pair.block, pair.block.header.timestamp_ms + offset_ms)


def tx_change(change: Callable[[Pair], tuple[bytes, ...]]) -> Mutation:
    return lambda pair: (with_txs(pair.block, change(pair)), pair.block.header.timestamp_ms)


MUTATIONS: dict[str, tuple[Mutation, str]] = {
    "prev_hash": (header_change(prev_hash=b"\x09" * 32), "does not link"),
    "height": (header_change(height=4), "does not follow"),
    "chain_id": (header_change(chain_id="another-chain"), "chain"),
    "validators_hash": (header_change(validators_hash=b"\x0a" * 32), "validator set"),
    "proposer": (header_change(proposer=USER_KEYS[0].public.raw), "non-member"),
    "timestamp_not_after_parent": (header_change(timestamp_ms=GENESIS.genesis_time_ms + 2_000), "not later"),
    "timestamp_ahead_of_clock": (clock_offset(-CLOCK_BOUND_MS - 1), "local clock"),
    "timestamp_behind_clock": (clock_offset(CLOCK_BOUND_MS + 1), "local clock"),
    "tx_root": (header_change(tx_root=b"\x07" * 32), "tx root"),
    "state_root": (header_change(state_root=b"\x08" * 32), "state root"),
    "bad_signature": (tx_change(lambda p: (*p.block.txs[:-1], forged(p.block.txs[-1]))), "signature"),
    "duplicate_tx": (tx_change(lambda p: (*p.block.txs, p.block.txs[0])), "twice"),
    "committed_tx": (tx_change(lambda p: (*p.block.txs, p.committed[0].txs[0])), "committed"),
    "malformed_bytes": (lambda p: (p.block.encoded[:-3], p.block.header.timestamp_ms), "msgpack|canonical"),
}


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_a_bad_block_is_refused_and_leaves_the_state_unchanged(pair: Pair, name: str) -> None:
    mutation, reason = MUTATIONS[name]
    bad, local_now_ms = mutation(pair)
    before = snapshot(pair.member)
    stored_before = dict(pair.member.store.state_items())
    with pytest.raises(LedgerError, match=reason):
        pair.member.validate_block(bad, local_now_ms)
    assert snapshot(pair.member) == before
    assert dict(pair.member.store.state_items()) == stored_before
    pair.accept(pair.block)
    assert pair.member.state.state_root == pair.block.header.state_root


def test_a_malformed_transaction_is_refused(pair: Pair) -> None:
    block = pair.block
    bad = Block(block.header, (*block.txs[:-1], b"\xc1"))
    with pytest.raises(InvalidBlock, match="malformed"):
        pair.member.validate_block(bad, block.header.timestamp_ms)
    pair.accept(block)


@pytest.fixture(scope="module")
def shared_pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    made = make_pair(tmp_path_factory.mktemp("shared"), seed=12)
    yield made
    made.proposer.close()
    made.member.close()


FIELDS = ["chain_id", "height", "prev_hash", "timestamp_ms", "proposer", "tx_root", "state_root"]


@given(
    st.sampled_from(FIELDS), st.binary(min_size=32, max_size=32), st.integers(1, 2**40), st.text(max_size=8)
)
@settings(max_examples=40, deadline=None)
def test_any_changed_header_field_is_refused(
    shared_pair: Pair, name: str, raw: bytes, number: int, text: str
) -> None:
    header = shared_pair.block.header
    value: Any = {"chain_id": text, "height": number, "timestamp_ms": number}.get(name, raw)
    if getattr(header, name) == value:
        return
    before = snapshot(shared_pair.member)
    bad = Block(replace(header, **{name: value}), shared_pair.block.txs)
    with pytest.raises(LedgerError):
        shared_pair.member.validate_block(bad, header.timestamp_ms)
    assert snapshot(shared_pair.member) == before


def test_build_block_leaves_out_invalid_transactions(pair: Pair) -> None:
    proposer = pair.proposer
    proposer.discard_pending()
    user = USER_KEYS[0]
    nonce = proposer.state.account(user.public.raw).next_nonce
    first = sign_transaction(user, CHAIN_ID, nonce, Transfer(USER_KEYS[1].public.raw, 5))
    second = sign_transaction(user, CHAIN_ID, nonce + 1, Transfer(USER_KEYS[2].public.raw, 6))
    other_chain = sign_transaction(user, "another-chain", nonce + 2, Transfer(USER_KEYS[2].public.raw, 1))
    offered = [
        first,
        b"\xc1not a transaction",
        forged(second.encoded),
        first.encoded,
        pair.committed[0].txs[0],
        other_chain,
        second.encoded,
    ]
    timestamp_ms = proposer.head().timestamp_ms + 1_000
    block, execution = proposer.build_block(offered, timestamp_ms, VALIDATOR_KEYS[3].public.raw)
    assert block.txs == (first.encoded, second.encoded)
    assert all(receipt.ok for receipt in execution.receipts)
    pair.accept(block)
    proposer.commit(block, certify(block), execution)
    assert proposer.state.state_root == pair.member.state.state_root


def test_build_block_checks_time_and_proposer(pair: Pair) -> None:
    head = pair.proposer.head()
    with pytest.raises(InvalidBlock, match="not later"):
        pair.proposer.build_block([], head.timestamp_ms, VALIDATOR_KEYS[0].public.raw)
    with pytest.raises(InvalidBlock, match="not a member"):
        pair.proposer.build_block([], head.timestamp_ms + 1, USER_KEYS[0].public.raw)
    block, _ = pair.proposer.build_block([], head.timestamp_ms + 1, VALIDATOR_KEYS[0].public.raw)
    assert block.txs == () and block.height == head.height + 1


def test_pending_execution_commit_and_discard(pair: Pair) -> None:
    member, block = pair.member, pair.block
    before = snapshot(member)
    execution = member.validate_block(block, block.header.timestamp_ms)
    assert member.validate_block(block.encoded, block.header.timestamp_ms) is execution
    assert member.state.height == block.height
    member.discard(execution)
    assert snapshot(member) == before
    member.discard(execution)  # no longer pending: nothing to do
    assert snapshot(member) == before
    with pytest.raises(LedgerError, match="no pending execution"):
        member.commit(block, certify(block), execution)
    empty, empty_execution = pair.proposer.build_block([], block.header.timestamp_ms, block.header.proposer)
    assert pair.proposer.validate_block(empty, empty.header.timestamp_ms) is empty_execution
    execution = member.validate_block(block, block.header.timestamp_ms)
    member.validate_block(empty, empty.header.timestamp_ms)  # another proposal replaces the pending one
    with pytest.raises(LedgerError):
        member.commit(block, certify(block), execution)
    member.discard_pending()
    assert snapshot(member) == before
    pair.accept(block)


def test_signatures_are_checked_once_and_the_cache_is_bounded(pair: Pair) -> None:
    member, block = pair.member, pair.block
    txs = [Transaction.decode(data) for data in block.txs]
    hashes = [tx.hash for tx in txs]
    assert [tx_hash_of(data) for data in block.txs] == hashes
    assert not any(member.is_verified(h) for h in hashes)
    for tx in txs[:3]:
        member.mark_verified(tx)  # as the mempool does: decoded and verified once
    member.mark_verified(hashes[3])
    pair.accept(block)
    assert all(member.is_verified(h) for h in hashes)
    for number in range(VERIFIED_CACHE_SIZE):
        member.mark_verified(number.to_bytes(32, "big"))
    assert not member.is_verified(hashes[0])
    assert member.is_verified((VERIFIED_CACHE_SIZE - 1).to_bytes(32, "big"))


def test_catch_up_stores_the_valid_prefix_then_names_the_bad_block(tmp_path: Path) -> None:
    source = Chain.open(tmp_path / "source", GENESIS)
    follower = Chain.open(tmp_path / "follower", GENESIS)
    try:
        rng = random.Random(13)
        blocks = [commit_next(source, rng, 4) for _ in range(4)]
        certified: list[tuple[Block | bytes, Any]] = [(b, certify(b)) for b in blocks]
        certified[2] = (blocks[2], certify(blocks[2], VALIDATOR_KEYS[:2]))
        with pytest.raises(InvalidCertificate, match=r"block 3: .*2 votes"):
            follower.apply_certified(certified)
        assert follower.head().height == 2
        assert follower.state.state_root == blocks[1].header.state_root
        later = blocks[3].header.timestamp_ms + 1
        altered = Block(replace(blocks[3].header, timestamp_ms=later), blocks[3].txs)
        with pytest.raises(InvalidCertificate):
            follower.apply_certified([(blocks[2], certify(blocks[2])), (altered, certify(blocks[3]))])
        assert follower.head().height == 3
        future = [(blocks[3].encoded, certify(blocks[3]))]
        with pytest.raises(InvalidBlock, match="future"):
            follower.apply_certified(future, local_now_ms=blocks[3].header.timestamp_ms - CLOCK_BOUND_MS - 1)
        assert follower.apply_certified(future, local_now_ms=blocks[3].header.timestamp_ms) == 4
        assert follower.apply_certified([(b, certify(b)) for b in blocks]) == 4  # overlap is skipped
        assert follower.head() == source.head()
        with pytest.raises(DecodeError):
            follower.apply_certified([(b"\x93junk", certify(blocks[3]))])
    finally:
        source.close()
        follower.close()


def test_batched_certified_apply_equals_one_by_one_commits(tmp_path: Path) -> None:
    source = Chain.open(tmp_path / "source", GENESIS)
    follower = Chain.open(tmp_path / "follower", GENESIS)
    try:
        rng = random.Random(21)
        blocks = [commit_next(source, rng, 12) for _ in range(12)]
        applied: list[AppliedBlock] = []
        certified = [(b.encoded, certify(b)) for b in blocks]
        assert follower.apply_certified(certified, verify_signatures=False, applied=applied) == 12
        assert follower.head() == source.head()
        assert snapshot(follower) == snapshot(source)
        assert dict(follower.store.state_items()) == dict(source.store.state_items())
        assert [a.block.hash for a in applied] == [b.hash for b in blocks]
        assert [tuple(tx.encoded for tx in a.txs) for a in applied] == [b.txs for b in blocks]
        for block in blocks:
            assert follower.store.results(block.height) == source.store.results(block.height)
            assert all(follower.store.tx_location(tx_hash_of(tx)) for tx in block.txs)
    finally:
        source.close()
        follower.close()
    assert verify_chain_full(tmp_path / "follower", GENESIS).head_hash == blocks[-1].hash


def test_catch_up_checks_each_certificate_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = Chain.open(tmp_path / "source", GENESIS)
    follower = Chain.open(tmp_path / "follower", GENESIS)
    checked: list[int] = []
    original = Certificate.verify

    def counting(certificate: Certificate, *args: Any) -> None:
        checked.append(certificate.height)
        original(certificate, *args)

    try:
        rng = random.Random(5)
        *blocks, next_one = [commit_next(source, rng, 4) for _ in range(6)]
        monkeypatch.setattr(Certificate, "verify", counting)
        assert follower.apply_certified([(b, certify(b)) for b in blocks], verify_signatures=False) == 5
        assert checked == [1, 2, 3, 4, 5]
        execution = follower.validate_block(next_one, next_one.header.timestamp_ms)
        follower.commit(next_one, certify(next_one), execution)  # the store checks what nobody checked
        assert checked == [1, 2, 3, 4, 5, 6]
    finally:
        source.close()
        follower.close()


@pytest.mark.parametrize("defect", ["certificate", "state_root"])
def test_batched_certified_apply_stores_nothing_after_the_last_good_block(
    tmp_path: Path, defect: str
) -> None:
    source = Chain.open(tmp_path / "source", GENESIS)
    follower = Chain.open(tmp_path / "follower", GENESIS)
    try:
        rng = random.Random(22)
        blocks = [commit_next(source, rng, 6) for _ in range(6)]
        certified: list[tuple[Block | bytes, Certificate]] = [(b, certify(b)) for b in blocks]
        if defect == "certificate":
            certified[3] = (blocks[3], certify(blocks[3], VALIDATOR_KEYS[:2]))
            expected: tuple[type[LedgerError], str] = (InvalidCertificate, "block 4: .*2 votes")
        else:
            altered = Block(replace(blocks[3].header, state_root=b"\x07" * 32), blocks[3].txs)
            certified[3] = (altered, certify(altered))
            expected = (InvalidBlock, "block 4: executing it gives another state root")
        applied: list[AppliedBlock] = []
        with pytest.raises(expected[0], match=expected[1]):
            follower.apply_certified(certified, verify_signatures=False, applied=applied)
        assert [a.block.height for a in applied] == [1, 2, 3]
        assert follower.head().block_hash == blocks[2].hash
        assert follower.state.state_root == blocks[2].header.state_root
        assert follower.store.block_bytes(4) is None and follower.store.certificate(4) is None
        assert not any(follower.store.tx_location(tx_hash_of(tx)) for b in blocks[3:] for tx in b.txs)
        good = [(b, certify(b)) for b in blocks[3:]]
        assert follower.apply_certified(good, verify_signatures=False) == 6
        assert snapshot(follower) == snapshot(source)
    finally:
        source.close()
        follower.close()


def test_certified_apply_relies_on_the_certificate_for_signatures_only_when_told(tmp_path: Path) -> None:
    """A certified block with a badly signed transaction (which 2f+1 members, f+1 of them honest, never
    certify) passes a catch-up that trusts the certificate; the default and the full verifier refuse it."""
    source = Chain.open(tmp_path / "source", GENESIS)
    strict = Chain.open(tmp_path / "strict", GENESIS)
    trusting = Chain.open(tmp_path / "trusting", GENESIS)
    try:
        good = sign_transaction(USER_KEYS[0], CHAIN_ID, 0, Transfer(USER_KEYS[1].public.raw, 5))
        bad = Transaction.decode(forged(good.encoded))
        source.mark_verified(bad)  # as if it slipped past: only to build the block
        head = source.head()
        proposer = GENESIS.validators.proposer(1, 0).public_key.raw
        block, execution = source.build_block([bad], head.timestamp_ms + 1_000, proposer)
        assert block.txs == (bad.encoded,)
        source.commit(block, certify(block), execution)
        with pytest.raises(InvalidBlock, match="signature"):
            strict.apply_certified([(block, certify(block))])
        assert strict.head().height == 0
        assert trusting.apply_certified([(block, certify(block))], verify_signatures=False) == 1
    finally:
        source.close()
        strict.close()
        trusting.close()
    with pytest.raises(ChainVerificationError, match="block 1"):
        verify_chain_full(tmp_path / "trusting", GENESIS)


@pytest.fixture
def stored_chain(tmp_path: Path) -> tuple[Path, list[Block]]:
    path = tmp_path / "data"
    chain = Chain.open(path, GENESIS)
    rng = random.Random(14)
    blocks = [commit_next(chain, rng, 6) for _ in range(5)]
    chain.close()
    return path, blocks


def test_full_verification_passes_on_a_good_directory(stored_chain: tuple[Path, list[Block]]) -> None:
    path, blocks = stored_chain
    report = verify_chain_full(path, GENESIS)
    assert report.height == 5 and report.head_hash == blocks[-1].hash
    assert report.state_root == blocks[-1].header.state_root
    assert report.transactions == sum(len(b.txs) for b in blocks)


def rewrite(path: Path, key: bytes, value: bytes) -> None:
    db = plyvel.DB(str(path))
    db.put(key, value)
    db.close()


@pytest.mark.parametrize("alteration", ["timestamp", "transaction", "results", "certificate"])
def test_full_verification_names_the_altered_block(
    stored_chain: tuple[Path, list[Block]], alteration: str
) -> None:
    path, blocks = stored_chain
    target = blocks[2]
    if alteration == "timestamp":
        header = replace(target.header, timestamp_ms=target.header.timestamp_ms + 1)
        rewrite(path, schema.block_key(3), Block(header, target.txs).encoded)
    elif alteration == "transaction":
        rewrite(path, schema.block_key(3), with_txs(target, target.txs[:-1]).encoded)
    elif alteration == "results":
        rewrite(path, schema.receipts_key(3), b"\x92\x90\x90")
    else:
        rewrite(path, schema.certificate_key(3), certify(target, VALIDATOR_KEYS[:2]).encode())
    with pytest.raises(ChainVerificationError) as caught:
        verify_chain_full(path, GENESIS)
    assert caught.value.height == 3


def test_full_verification_detects_an_altered_state(stored_chain: tuple[Path, list[Block]]) -> None:
    path, _ = stored_chain
    rewrite(path, schema.account_key(USER_KEYS[0].public.raw), b"\x93\x01\x02\x03")
    with pytest.raises(ChainVerificationError, match="stored state") as caught:
        verify_chain_full(path, GENESIS)
    assert caught.value.height == 5


def test_light_verification(stored_chain: tuple[Path, list[Block]]) -> None:
    _, blocks = stored_chain
    certified = [(b.encoded, certify(b)) for b in blocks]
    report = verify_links_and_certificates(GENESIS, certified)
    assert (report.height, report.head_hash, report.state_root) == (5, blocks[-1].hash, None)
    broken = list(certified)
    repeated_signer = [VALIDATOR_KEYS[0], VALIDATOR_KEYS[0], VALIDATOR_KEYS[1]]
    broken[3] = (blocks[3].encoded, certify(blocks[3], repeated_signer))
    with pytest.raises(ChainVerificationError) as caught:
        verify_links_and_certificates(GENESIS, broken)
    assert caught.value.height == 4
    swapped = [certified[0], certified[2], certified[1]]
    with pytest.raises(ChainVerificationError) as caught:
        verify_links_and_certificates(GENESIS, swapped)
    assert caught.value.height == 2
    with pytest.raises(ChainVerificationError) as caught:
        verify_links_and_certificates(make_genesis(chain_id="another-chain"), certified)
    assert caught.value.height == 1
