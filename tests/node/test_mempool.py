"""The mempool: admission checks, limits, deduplication, proposal order and pruning on commit."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.genesis import Genesis
from ledger.keys import PrivateKey
from ledger.limits import MAX_TX_BYTES
from ledger.state import BlockContext, LedgerState
from ledger.tx import Transaction, Transfer, sign_transaction
from ledger.validators import ValidatorSet
from node.config import MempoolConfig
from node.mempool import Mempool, MempoolFull, MempoolRejected

CHAIN = "mempool-test"
MEMBERS = [PrivateKey(bytes([i + 1]) * 32) for i in range(4)]
ALICE, BOB, CAROL = (PrivateKey(bytes([40 + i]) * 32) for i in range(3))
GENESIS = Genesis(
    chain_id=CHAIN,
    genesis_time_ms=1_000_000,
    validators=ValidatorSet.of([(f"m{i}", k.public.raw) for i, k in enumerate(MEMBERS)]),
    resource_classes=("vcpu",),
    regions=("eu-west",),
    balances=((ALICE.public.raw, 1_000), (BOB.public.raw, 1_000)),
)


def pool(**limits: int) -> Mempool:
    return Mempool(CHAIN, MempoolConfig(**limits))


def state() -> LedgerState:
    return LedgerState.from_genesis(GENESIS)[0]


def transfer(key: PrivateKey, nonce: int, amount: int = 1, chain: str = CHAIN) -> Transaction:
    return sign_transaction(key, chain, nonce, Transfer(CAROL.public.raw, amount))


def test_stateless_checks_refuse_with_a_reason() -> None:
    mempool = pool()
    good = transfer(ALICE, 0)
    cases = {
        "TOO_LARGE": b"\x00" * (MAX_TX_BYTES + 1),
        "MALFORMED": b"\x93garbage",
        "WRONG_CHAIN": transfer(ALICE, 0, chain="other").encoded,
    }
    for code, raw in cases.items():
        with pytest.raises(MempoolRejected) as refused:
            mempool.check_envelope(raw)
        assert refused.value.code == code
    assert mempool.check_envelope(good.encoded).hash == good.hash


def test_stateful_checks_duplicates_and_limits() -> None:
    mempool, ledger = pool(max_txs=3, max_per_account=2), state()
    assert mempool.admit(transfer(ALICE, 0), ledger, 0)
    assert not mempool.admit(transfer(ALICE, 0), ledger, 0)  # same hash: already here
    with pytest.raises(MempoolRejected) as refused:
        mempool.admit(transfer(ALICE, 0, amount=2), ledger, 0)
    assert refused.value.code == "NONCE_PENDING"
    assert mempool.admit(transfer(ALICE, 1), ledger, 0)
    with pytest.raises(MempoolRejected) as refused:
        mempool.admit(transfer(ALICE, 2), ledger, 0)
    assert refused.value.code == "ACCOUNT_LIMIT"
    with pytest.raises(MempoolRejected) as refused:
        mempool.admit(transfer(BOB, 0, amount=5_000), ledger, 0)
    assert refused.value.code == "INSUFFICIENT_FUNDS"
    assert mempool.admit(transfer(BOB, 0), ledger, 0)
    with pytest.raises(MempoolFull):
        mempool.admit(transfer(BOB, 1), ledger, 0)
    assert len(mempool) == 3 and mempool.next_nonce(ALICE.public.raw) == 2


def test_selection_keeps_arrival_order_and_contiguous_nonces() -> None:
    mempool, ledger = pool(), state()
    arrivals = [
        transfer(ALICE, 0),
        transfer(BOB, 0),
        transfer(ALICE, 1),
        transfer(BOB, 1),
        transfer(ALICE, 2),
    ]
    for tx in arrivals:
        mempool.admit(tx, ledger, 0)
    assert mempool.select(ledger, 10) == arrivals
    assert mempool.select(ledger, 2) == arrivals[:2]


def test_a_nonce_is_admitted_only_after_its_predecessor() -> None:
    mempool, ledger = pool(max_txs=4), state()
    for nonce in range(1, 5):  # a client parking gapped transactions that no proposal could take
        with pytest.raises(MempoolRejected) as refused:
            mempool.admit(transfer(ALICE, nonce), ledger, 0)
        assert refused.value.code == "NONCE_GAP"
    assert len(mempool) == 0
    assert mempool.admit(transfer(ALICE, 0), ledger, 0)
    assert mempool.admit(transfer(ALICE, 1), ledger, 0)
    with pytest.raises(MempoolRejected, match="NONCE_GAP"):
        mempool.admit(transfer(ALICE, 3), ledger, 0)
    assert mempool.admit(transfer(BOB, 0), ledger, 0)


def test_a_hole_left_by_a_transaction_committed_out_of_order_can_be_filled() -> None:
    mempool, ledger = pool(), state()
    pending = [transfer(ALICE, nonce) for nonce in range(3)]
    for tx in pending:
        mempool.admit(tx, ledger, 0)
    # A faulty proposer includes nonce 1 before nonce 0: it fails (bad nonce) but is committed, so it leaves.
    ledger.execute(BlockContext(1, 2_000_000, MEMBERS[0].public.raw), [pending[1]])
    mempool.remove_committed([pending[1]], ledger)
    assert mempool.admit(transfer(ALICE, 1, amount=2), ledger, 0)
    assert [t.nonce for t in mempool.select(ledger, 10)] == [0, 1, 2]


def test_commit_prunes_included_and_stale_transactions() -> None:
    mempool, ledger = pool(), state()
    for tx in [transfer(ALICE, 0), transfer(ALICE, 1), transfer(BOB, 0)]:
        mempool.admit(tx, ledger, 0)
    other_alice_0 = transfer(ALICE, 0, amount=9)  # a competing tx with the same nonce, committed elsewhere
    ledger.execute(BlockContext(1, 2_000_000, MEMBERS[0].public.raw), [other_alice_0])
    mempool.remove_committed([other_alice_0], ledger)
    assert [t.nonce for t in mempool.select(ledger, 10) if t.sender == ALICE.public.raw] == [1]
    assert len(mempool) == 2


def test_overdue_lists_only_proposable_transactions_past_the_bound() -> None:
    mempool, ledger = pool(censorship_bound_ms=1_000), state()
    mempool.admit(transfer(ALICE, 0), ledger, 0)
    mempool.admit(transfer(ALICE, 1), ledger, 0)  # waits for Alice's nonce 0: not censorship
    assert mempool.overdue(ledger, 500) == []
    assert mempool.overdue(ledger, 1_000) == [transfer(ALICE, 0).hash]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([0, 1]), st.integers(0, 5)), max_size=30))
def test_selection_never_breaks_nonce_order(arrivals: list[tuple[int, int]]) -> None:
    mempool, ledger = pool(), state()
    keys = [ALICE, BOB]
    for who, nonce in arrivals:
        try:
            mempool.admit(transfer(keys[who], nonce), ledger, 0)
        except MempoolRejected:
            continue
    expected = {k.public.raw: 0 for k in keys}
    chosen = mempool.select(ledger, 100)
    for tx in chosen:
        assert tx.nonce == expected[tx.sender]
        expected[tx.sender] += 1
    assert len(chosen) == len(mempool), "every pending transaction can be proposed"


def test_a_pending_transaction_is_gossiped_again_once() -> None:
    mempool, ledger = pool(), state()
    mempool.admit(transfer(ALICE, 0), ledger, 0)
    mempool.admit(transfer(BOB, 0), ledger, 4_000)
    assert mempool.to_regossip(4_999, 5_000, 10) == []
    assert [t.sender for t in mempool.to_regossip(5_000, 5_000, 10)] == [ALICE.public.raw]
    assert mempool.to_regossip(20_000, 5_000, 10) == [transfer(BOB, 0)]
    assert mempool.to_regossip(30_000, 5_000, 10) == []


def test_a_transaction_from_a_peer_is_left_to_its_origin_to_gossip_again() -> None:
    mempool, ledger = pool(), state()
    mempool.admit(transfer(ALICE, 0), ledger, 0, from_peer=True)
    mempool.admit(transfer(BOB, 0), ledger, 0)
    assert mempool.to_regossip(60_000, 5_000, 10) == [transfer(BOB, 0)]
    assert len(mempool) == 2
