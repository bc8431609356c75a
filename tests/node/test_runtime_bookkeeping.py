"""The runtime's configuration from genesis and its counters, on a real chain with a stand-in network."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ledger.chain import Chain
from ledger.genesis import BlockParams, Genesis
from ledger.keys import PrivateKey
from ledger.tx import Transaction, Transfer, sign_transaction
from ledger.validators import ValidatorSet
from node.config import NodeConfig
from node.metrics import COMMIT_RING_HEIGHTS, NodeMetrics
from node.p2p import Traffic
from node.runtime import NodeRuntime
from node.service import NodeService

CHAIN = "runtime-test"
MEMBERS = [PrivateKey(bytes([i + 1]) * 32) for i in range(4)]
ALICE, BOB = (PrivateKey(bytes([40 + i]) * 32) for i in range(2))


def make_genesis(block_params: BlockParams) -> Genesis:
    return Genesis(
        chain_id=CHAIN,
        genesis_time_ms=1_000_000,
        validators=ValidatorSet.of([(f"m{i}", k.public.raw) for i, k in enumerate(MEMBERS)]),
        resource_classes=("vcpu",),
        regions=("eu-west",),
        balances=((ALICE.public.raw, 10**9), (BOB.public.raw, 10**9)),
        block_params=block_params,
    )


class StandInNetwork:
    """What `NodeService.metrics` reads of the network; nothing else is used by these tests."""

    def __init__(self) -> None:
        self.traffic = Traffic(
            consensus_messages_out=7, consensus_writes=2, gossip_writes=3, request_writes=1
        )
        self.traffic.gossip_bytes_out = 300


def transfer(nonce: int) -> Transaction:
    return sign_transaction(ALICE, CHAIN, nonce, Transfer(BOB.public.raw, 1))


@pytest.fixture
def make_runtime(tmp_path: Path) -> Iterator[Any]:
    chains: list[Chain] = []

    def build(block_params: BlockParams | None = None) -> NodeRuntime:
        genesis = make_genesis(block_params or BlockParams())
        chain = Chain.open(tmp_path / f"data-{len(chains)}", genesis)
        chains.append(chain)
        config = NodeConfig(name="m0", home=tmp_path)
        return NodeRuntime(config, genesis, MEMBERS[0], chain, StandInNetwork())  # type: ignore[arg-type]

    try:
        yield build
    finally:
        for chain in chains:
            chain.close()


def test_view_timeout_comes_from_genesis(make_runtime: Any) -> None:
    runtime = make_runtime(BlockParams(empty_block_interval_ms=500, view_timeout_ms=1_250))
    assert runtime.replica is not None
    assert runtime.replica.config.base_timeout_ms == 1_250
    assert make_runtime().replica.config.base_timeout_ms == 4_000


def test_each_transaction_signature_is_counted_once_wherever_it_is_checked(make_runtime: Any) -> None:
    runtime = make_runtime()
    first, second, third = transfer(0), transfer(1), transfer(2)
    runtime.chain.verify_tx(first)
    runtime.chain.verify_tx(first)  # cached: not checked again
    assert runtime.chain.signature_checks == 1
    checked = runtime._decode_batch([first.encoded, second.encoded, third.encoded, b"garbage"])
    assert [tx is not None for tx in checked] == [True, True, True, False]
    assert runtime.metrics.batch_signature_checks == 2
    metrics = NodeService(runtime).metrics()
    assert metrics.signature_checks == 3 and metrics.batch_signature_checks == 2
    assert metrics.consensus_messages_sent == 7 and metrics.network_writes == 6
    assert metrics.gossip_bytes_written == 300 and metrics.network_bytes_written == 300


def test_commits_are_counted_and_timed(make_runtime: Any) -> None:
    runtime = make_runtime()
    txs = [transfer(0), transfer(1)]
    block, _ = runtime.chain.build_block(txs, 2_000_000, MEMBERS[0].public.raw)
    runtime._after_commit(block, txs)
    metrics = NodeService(runtime).metrics()
    assert (metrics.blocks_committed, metrics.txs_committed) == (1, 2)
    (commit,) = NodeService(runtime).commit_times(None, 10)
    assert commit.height == 1 and commit.txs == 2 and commit.time_us > 1_600_000_000 * 10**6


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
