"""Fixtures of the ledger tests: keys, a small genesis, and a driver that applies blocks to a state."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from ledger.genesis import BlockParams, Genesis, MarketParams
from ledger.keys import PrivateKey
from ledger.state import BlockContext, Execution, LedgerState
from ledger.tx import Body, Transaction, sign_transaction
from ledger.validators import ValidatorSet

CHAIN_ID = "fedmarket-test"
GENESIS_TIME_MS = 1_700_000_000_000
CLASSES = ("cpu.small", "gpu.a100")
REGIONS = ("eu-west", "us-east")
START_BALANCE = 10**12


def make_key(number: int) -> PrivateKey:
    return PrivateKey(number.to_bytes(32, "big"))


VALIDATOR_KEYS = [make_key(1000 + i) for i in range(4)]
USER_KEYS = [make_key(2000 + i) for i in range(4)]


def make_genesis(**market: int) -> Genesis:
    return Genesis(
        chain_id=CHAIN_ID,
        genesis_time_ms=GENESIS_TIME_MS,
        validators=ValidatorSet.of([(f"member-{i}", k.public.raw) for i, k in enumerate(VALIDATOR_KEYS)]),
        resource_classes=CLASSES,
        regions=REGIONS,
        balances=tuple((k.public.raw, START_BALANCE) for k in USER_KEYS),
        block_params=BlockParams(),
        market_params=MarketParams(**{"grant_deadline_s": 60, **market}),
    )


@dataclass
class Driver:
    """A state plus the bookkeeping to sign the next transaction of each user and apply blocks."""

    genesis: Genesis
    state: LedgerState
    stored: dict[bytes, bytes]
    nonces: dict[bytes, int] = field(default_factory=dict)
    time_ms: int = GENESIS_TIME_MS

    @property
    def now(self) -> int:
        return self.time_ms // 1000

    def tx(self, key: PrivateKey, body: Body, nonce: int | None = None) -> Transaction:
        address = key.public.raw
        if nonce is None:
            nonce = self.nonces.get(address, 0)
            self.nonces[address] = nonce + 1
        return sign_transaction(key, CHAIN_ID, nonce, body)

    def block(self, txs: Sequence[Transaction] = (), advance_ms: int = 1000) -> Execution:
        self.time_ms += advance_ms
        ctx = BlockContext(self.state.height + 1, self.time_ms, VALIDATOR_KEYS[0].public.raw)
        execution = self.state.execute(ctx, txs)
        for key, value in execution.writes.items():
            if value is None:
                self.stored.pop(key, None)
            else:
                self.stored[key] = value
        return execution


@pytest.fixture(scope="session")
def genesis() -> Genesis:
    return make_genesis()


@pytest.fixture(scope="session")
def users() -> list[PrivateKey]:
    return USER_KEYS


@pytest.fixture(scope="session")
def driver_factory() -> Callable[..., Driver]:
    def build(**market: Any) -> Driver:
        genesis = make_genesis(**market)
        state, writes = LedgerState.from_genesis(genesis)
        return Driver(genesis, state, dict(writes))

    return build


@pytest.fixture
def driver(driver_factory: Callable[..., Driver]) -> Driver:
    return driver_factory()
