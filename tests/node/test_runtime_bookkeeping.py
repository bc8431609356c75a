"""The runtime's configuration from genesis, on a real chain with no network (never touched here)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ledger.chain import Chain
from ledger.genesis import BlockParams, Genesis
from ledger.keys import PrivateKey
from ledger.validators import ValidatorSet
from node.config import NodeConfig
from node.runtime import NodeRuntime

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


@pytest.fixture
def make_runtime(tmp_path: Path) -> Iterator[Any]:
    chains: list[Chain] = []

    def build(block_params: BlockParams | None = None) -> NodeRuntime:
        genesis = make_genesis(block_params or BlockParams())
        chain = Chain.open(tmp_path / f"data-{len(chains)}", genesis)
        chains.append(chain)
        config = NodeConfig(name="m0", home=tmp_path)
        return NodeRuntime(config, genesis, MEMBERS[0], chain, network=None)  # type: ignore[arg-type]

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
