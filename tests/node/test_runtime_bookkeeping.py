"""What the runtime takes from genesis, what it counts, and the worker-thread signature checks, on a real
chain in a temporary directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from ledger.chain import Chain
from ledger.genesis import BlockParams, Genesis
from ledger.keys import PrivateKey
from ledger.tx import Transaction, Transfer, sign_transaction
from ledger.validators import ValidatorSet
from node.metrics import COMMIT_RING_HEIGHTS, NodeMetrics
from node.runtime import replica_config
from node.verifier import TxVerifier

CHAIN = "runtime-test"
MEMBERS = [PrivateKey(bytes([i + 1]) * 32) for i in range(4)]
ALICE, BOB = (PrivateKey(bytes([40 + i]) * 32) for i in range(2))


def make_genesis(block_params: BlockParams | None = None) -> Genesis:
    return Genesis(
        chain_id=CHAIN,
        genesis_time_ms=1_000_000,
        validators=ValidatorSet.of([(f"m{i}", k.public.raw) for i, k in enumerate(MEMBERS)]),
        resource_classes=("vcpu",),
        regions=("eu-west",),
        balances=((ALICE.public.raw, 10**9), (BOB.public.raw, 10**9)),
        block_params=block_params or BlockParams(),
    )


def transfer(nonce: int, chain: str = CHAIN) -> Transaction:
    return sign_transaction(ALICE, chain, nonce, Transfer(BOB.public.raw, 1))


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[Chain]:
    opened = Chain.open(tmp_path / "data", make_genesis())
    try:
        yield opened
    finally:
        opened.close()


def test_view_timeout_comes_from_genesis() -> None:
    params = BlockParams(empty_block_interval_ms=500, view_timeout_ms=1_250)
    assert replica_config(make_genesis(params)).base_timeout_ms == 1_250
    assert replica_config(make_genesis()).base_timeout_ms == 4_000


async def test_the_verifier_checks_each_signature_once_even_when_asked_twice_at_once(chain: Chain) -> None:
    verifier = TxVerifier(chain)
    good = [transfer(nonce) for nonce in range(20)]
    foreign = transfer(99, chain="another-chain")
    forged = Transaction.decode(good[0].encoded[:-1] + bytes([good[0].encoded[-1] ^ 1]))
    results: list[list[bool]] = []

    async def ask(txs: list[Transaction]) -> None:
        results.append(await verifier.verify(txs))

    async with trio.open_nursery() as nursery:  # a relayed batch and a proposal racing for the same txs
        nursery.start_soon(ask, [*good, foreign])
        nursery.start_soon(ask, [forged, *reversed(good)])
    assert sorted(map(len, results)) == [21, 21]
    assert sorted(results, key=lambda r: r[0]) == [[False] + [True] * 20, [True] * 20 + [False]]
    assert verifier.checks == 22  # 20 good ones once, the foreign and the forged one
    assert await verifier.verify(good) == [True] * 20
    assert verifier.checks == 22, "verified transactions are not checked again"
    chain.verify_tx(good[3])  # block validation finds it in the cache
    assert chain.signature_checks == 0


def test_commit_ring_keeps_the_most_recent_heights() -> None:
    metrics = NodeMetrics()
    for height in range(1, COMMIT_RING_HEIGHTS + 6):
        metrics.committed(height, 1, 1_000 * height)
    assert metrics.commits_from(None, 2) == [(6, 6_000, 1), (7, 7_000, 1)]
    assert metrics.commits_from(COMMIT_RING_HEIGHTS + 4, 10) == [
        (COMMIT_RING_HEIGHTS + 4, 1_000 * (COMMIT_RING_HEIGHTS + 4), 1),
        (COMMIT_RING_HEIGHTS + 5, 1_000 * (COMMIT_RING_HEIGHTS + 5), 1),
    ]
    assert metrics.commits_from(COMMIT_RING_HEIGHTS + 6, 10) == []
    assert metrics.blocks_committed == metrics.txs_committed == COMMIT_RING_HEIGHTS + 5
