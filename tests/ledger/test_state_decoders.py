"""State value decoders and reload, fuzzed: only LedgerError subclasses escape."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.errors import LedgerError
from ledger.keys import PrivateKey
from ledger.leases import Lease
from ledger.receipts import EventKind, decode_results
from ledger.records import AccountRecord, decode_order
from ledger.schema import ACCOUNT_PREFIX, LEASE_PREFIX, ORDER_PREFIX
from ledger.state import LedgerState
from ledger.state_meta import StateMeta, decode_price_key, decode_prices
from ledger.tx import BidBody, Grant, OfferBody

ID = b"\x05" * 32


def decode_any(key: bytes, value: bytes) -> object:
    if key.startswith(ACCOUNT_PREFIX):
        return AccountRecord.decode(value)
    if key.startswith(ORDER_PREFIX):
        return decode_order(ID, value)
    if key.startswith(LEASE_PREFIX):
        return Lease.decode(ID, value)
    if key.endswith(b"clock"):
        return StateMeta.decode_clock(value)
    if key.endswith(b"books"):
        return StateMeta.decode_books(value)
    if key.endswith(b"root"):
        return StateMeta.decode_root(value)
    return decode_price_key(key), decode_prices(value)


def populated(driver_factory: Any, users: list[PrivateKey]) -> Any:
    driver = driver_factory(auction_period_blocks=1)
    provider, buyer = users[0], users[1]
    now = driver.now
    first = driver.block(
        [
            driver.tx(provider, OfferBody("cpu.small", "eu-west", 5, 100, now - 1, now + 10**5, None)),
            driver.tx(buyer, BidBody("cpu.small", "eu-west", 8, 300, 600, now + 900, buyer.public.x25519())),
            driver.tx(provider, OfferBody("gpu.a100", "us-east", 1, 10, now + 50, now + 10**5, None)),
        ]
    )
    lease_id = next(e.subject for e in first.events if e.kind == EventKind.LEASE_CREATED)
    second = driver.block([driver.tx(provider, Grant(lease_id, b"sealed"))])
    return driver, first, second


@pytest.fixture(scope="module")
def sample(
    driver_factory: Any, users: list[PrivateKey]
) -> tuple[Any, list[tuple[bytes, bytes]], list[bytes]]:
    driver, first, second = populated(driver_factory, users)
    return driver, sorted(driver.stored.items()), [first.encode_results(), second.encode_results()]


def test_every_stored_value_decodes_and_reloads(driver_factory: Any, users: list[PrivateKey]) -> None:
    driver, _, _ = populated(driver_factory, users)
    for key, value in driver.stored.items():
        decode_any(key, value)
    reloaded = LedgerState.load(driver.genesis, driver.stored.items())
    assert reloaded.state_root == driver.state.state_root
    assert reloaded.last_prices("cpu.small", "eu-west") == driver.state.last_prices("cpu.small", "eu-west")


@settings(max_examples=250, deadline=None)
@given(st.data())
def test_mutated_state_values_raise_only_ledger_errors(sample: Any, data: st.DataObject) -> None:
    driver, items, results = sample
    index = data.draw(st.integers(0, len(items) + len(results) - 1))
    original = items[index][1] if index < len(items) else results[index - len(items)]
    mutated = bytearray(original)
    for _ in range(data.draw(st.integers(1, 3))):
        position = data.draw(st.integers(0, len(mutated) - 1)) if mutated else 0
        choice = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        if choice == "flip" and mutated:
            mutated[position] ^= data.draw(st.integers(1, 255))
        elif choice == "cut":
            del mutated[position:]
        else:
            mutated[position:position] = data.draw(st.binary(min_size=1, max_size=3))
    try:
        if index < len(items):
            key = items[index][0]
            decode_any(key, bytes(mutated))
            changed = [(k, bytes(mutated) if k == key else v) for k, v in items]
            LedgerState.load(driver.genesis, changed)
        else:
            decode_results(bytes(mutated))
    except LedgerError:
        pass


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=120), st.binary(max_size=40))
def test_random_keys_and_values_raise_only_ledger_errors(
    driver_factory: Any, value: bytes, suffix: bytes
) -> None:
    genesis = driver_factory().genesis
    for prefix in (ACCOUNT_PREFIX, ORDER_PREFIX, LEASE_PREFIX, b"s/m/clock", b"s/m/price/", b"s/x/"):
        try:
            LedgerState.load(genesis, [(prefix + suffix, value)])
        except LedgerError:
            continue
        raise AssertionError("a state without its clock and root must not load")
