"""The ledger state machine on worked scenarios: receipts, escrow, leases, expiries, rollback and reload."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.errors import LedgerError
from ledger.keys import PrivateKey
from ledger.leases import LeaseStatus
from ledger.market import lease_cost
from ledger.receipts import EventKind, ReceiptCode, TxRejected
from ledger.state import BlockContext, Execution, LedgerState
from ledger.tx import BidBody, Cancel, Close, Grant, OfferBody, Transfer, sign_transaction

START = 10**12
Factory = Callable[..., Any]


def offer(
    driver: Any, key: PrivateKey, quantity: int = 50, price: int = 100, until: int = 10**6
) -> OfferBody:
    return OfferBody("cpu.small", "eu-west", quantity, price, driver.now - 10, driver.now + until, None)


def bid(driver: Any, key: PrivateKey, quantity: int = 4, price: int = 200, duration: int = 3600) -> BidBody:
    return BidBody("cpu.small", "eu-west", quantity, price, duration, driver.now + 500, key.public.x25519())


def matched(driver: Any, provider: PrivateKey, buyer: PrivateKey, **bid_args: int) -> bytes:
    execution = driver.block(
        [driver.tx(provider, offer(driver, provider)), driver.tx(buyer, bid(driver, buyer, **bid_args))]
    )
    created = [e for e in execution.events if e.kind == EventKind.LEASE_CREATED]
    assert len(created) == 1
    return created[0].subject


def total_credits(state: LedgerState) -> int:
    return sum(a.balance + a.escrow for _, a in state.accounts())


def test_transfer_then_replay_is_rejected_without_change(driver: Any, users: list[PrivateKey]) -> None:
    alice, bob = users[0].public.raw, users[1].public.raw
    tx = driver.tx(users[0], Transfer(bob, 250))
    assert driver.block([tx]).receipts[0].code == ReceiptCode.OK
    before = (driver.state.account(alice), driver.state.account(bob))
    replay = driver.block([tx])
    assert replay.receipts[0].code == ReceiptCode.BAD_NONCE
    assert (driver.state.account(alice), driver.state.account(bob)) == before
    assert before[0] == (START - 250, 0, 1) and before[1].balance == START + 250
    with pytest.raises(TxRejected) as rejected:
        driver.state.check(tx)
    assert rejected.value.code == ReceiptCode.BAD_NONCE


def test_a_failed_transaction_consumes_the_nonce(driver: Any, users: list[PrivateKey]) -> None:
    execution = driver.block([driver.tx(users[0], Transfer(users[1].public.raw, START + 1))])
    assert execution.receipts[0].code == ReceiptCode.INSUFFICIENT_FUNDS
    assert driver.state.account(users[0].public.raw) == (START, 0, 1)


def test_check_admits_future_nonces_and_refuses_what_would_fail(driver: Any, users: list[PrivateKey]) -> None:
    driver.state.check(sign_transaction(users[0], "fedmarket-test", 5, Transfer(users[1].public.raw, 1)))
    poor = PrivateKey(b"\x33" * 32)
    cases = [
        (
            sign_transaction(users[0], "other-chain", 0, Transfer(users[1].public.raw, 1)),
            ReceiptCode.WRONG_CHAIN,
        ),
        (sign_transaction(poor, "fedmarket-test", 0, bid(driver, poor)), ReceiptCode.INSUFFICIENT_FUNDS),
        (
            sign_transaction(users[0], "fedmarket-test", 0, Transfer(users[1].public.raw, 0)),
            ReceiptCode.BAD_AMOUNT,
        ),
    ]
    for tx, code in cases:
        with pytest.raises(TxRejected) as rejected:
            driver.state.check(tx)
        assert rejected.value.code == code


def failing_cases(driver: Any, users: list[PrivateKey]) -> list[tuple[Any, ReceiptCode]]:
    a, b = users[0], users[1]
    lease_id = matched(driver, a, b)
    now = driver.now
    key = b.public.x25519()
    return [
        (OfferBody("tpu", "eu-west", 1, 1, 0, now + 99, None), ReceiptCode.UNKNOWN_CLASS),
        (OfferBody("cpu.small", "mars", 1, 1, 0, now + 99, None), ReceiptCode.UNKNOWN_REGION),
        (OfferBody("cpu.small", "eu-west", 0, 1, 0, now + 99, None), ReceiptCode.BAD_AMOUNT),
        (OfferBody("cpu.small", "eu-west", 1, 1, now + 99, now + 99, None), ReceiptCode.BAD_WINDOW),
        (OfferBody("cpu.small", "eu-west", 1, 1, 0, now - 5, None), ReceiptCode.BAD_WINDOW),
        (BidBody("cpu.small", "eu-west", 1, 1, 0, now + 99, key), ReceiptCode.BAD_AMOUNT),
        (BidBody("cpu.small", "eu-west", 1, 1, 60, now - 1, key), ReceiptCode.BAD_EXPIRY),
        (BidBody("cpu.small", "eu-west", 2**20, 2**32, 2**23, now + 99, key), ReceiptCode.INSUFFICIENT_FUNDS),
        (Transfer(a.public.raw, START * 2), ReceiptCode.INSUFFICIENT_FUNDS),
        (Cancel(b"\x01" * 32), ReceiptCode.UNKNOWN_ORDER),
        (Grant(b"\x01" * 32, b"x"), ReceiptCode.UNKNOWN_LEASE),
        (Grant(lease_id, b"x"), ReceiptCode.NOT_PARTY),
        (Close(lease_id, "no reason"), ReceiptCode.NOT_PARTY),
    ]


def test_every_failure_receipt_is_reachable_and_changes_only_the_nonce(
    driver: Any, users: list[PrivateKey]
) -> None:
    outsider = users[2]
    for body, code in failing_cases(driver, users):
        before = driver.state.account(outsider.public.raw)
        receipt = driver.block([driver.tx(outsider, body)]).receipts[0]
        assert receipt.code == code, (body, receipt)
        after = driver.state.account(outsider.public.raw)
        assert (after.balance, after.escrow, after.next_nonce) == (
            before.balance,
            before.escrow,
            before.next_nonce + 1,
        )


def test_cancel_rules_and_refund(driver: Any, users: list[PrivateKey]) -> None:
    buyer = users[1]
    placed = driver.block([driver.tx(buyer, bid(driver, buyer, price=50))])  # no offer: rests
    order_id = placed.receipts[0].ids[0]
    assert driver.state.account(buyer.public.raw).escrow == lease_cost(4, 50, 3600)
    refused = driver.block([driver.tx(users[0], Cancel(order_id))]).receipts[0]
    assert refused.code == ReceiptCode.NOT_OWNER
    assert driver.block([driver.tx(buyer, Cancel(order_id))]).receipts[0].code == ReceiptCode.OK
    assert driver.state.account(buyer.public.raw) == (START, 0, 2)
    again = driver.block([driver.tx(buyer, Cancel(order_id))]).receipts[0]
    assert again.code == ReceiptCode.UNKNOWN_ORDER


def test_match_grant_and_end_pay_the_provider(driver: Any, users: list[PrivateKey]) -> None:
    provider, buyer = users[0], users[1]
    lease_id = matched(driver, provider, buyer)
    lease = driver.state.lease(lease_id)
    assert lease is not None and lease.status == LeaseStatus.AWAITING_GRANT
    assert lease.price == 150 and lease.escrow == lease_cost(4, 150, 3600)
    assert driver.state.account(buyer.public.raw) == (START - lease.escrow, lease.escrow, 1)
    granted = driver.block([driver.tx(provider, Grant(lease_id, b"sealed"))]).receipts[0]
    assert granted.code == ReceiptCode.OK
    assert (
        driver.block([driver.tx(provider, Grant(lease_id, b"again"))]).receipts[0].code
        == ReceiptCode.ALREADY_GRANTED
    )
    ended = driver.block(advance_ms=3_600_000)
    kinds = [e.kind for e in ended.events]
    assert kinds == [EventKind.LEASE_ENDED, EventKind.GRANT_REVOKED]
    final = driver.state.lease(lease_id)
    assert final is not None and final.status == LeaseStatus.ENDED and final.provider_paid == lease.escrow
    assert driver.state.account(provider.public.raw).balance == START + lease.escrow
    assert driver.state.account(buyer.public.raw) == (START - lease.escrow, 0, 1)
    late = driver.block([driver.tx(buyer, Close(lease_id, "late"))]).receipts[0]
    assert late.code == ReceiptCode.LEASE_NOT_ACTIVE


def test_no_grant_by_the_deadline_refunds_the_buyer_in_full(driver: Any, users: list[PrivateKey]) -> None:
    provider, buyer = users[0], users[1]
    lease_id = matched(driver, provider, buyer)
    cancelled = driver.block(advance_ms=61_000)
    assert [e.kind for e in cancelled.events] == [EventKind.LEASE_CANCELLED]
    lease = driver.state.lease(lease_id)
    assert (
        lease is not None and lease.status == LeaseStatus.CANCELLED and lease.buyer_refunded == lease.escrow
    )
    assert driver.state.account(buyer.public.raw) == (START, 0, 1)
    assert driver.state.account(provider.public.raw).balance == START
    late = driver.block([driver.tx(provider, Grant(lease_id, b"late"))]).receipts[0]
    assert late.code == ReceiptCode.LEASE_NOT_ACTIVE


def test_grant_after_the_deadline_is_refused_even_before_the_timer_runs(
    driver_factory: Factory, users: list[PrivateKey]
) -> None:
    driver = driver_factory(max_expiries_per_block=1)
    lease_id = matched(driver, users[0], users[1])
    receipt = driver.block([driver.tx(users[0], Grant(lease_id, b"x"))], advance_ms=70_000).receipts[0]
    assert receipt.code == ReceiptCode.LEASE_NOT_ACTIVE


@settings(max_examples=40, deadline=None)
@given(
    quantity=st.integers(1, 50),
    price=st.integers(1, 10_000),
    duration=st.integers(1, 10 * 3600),
    closer=st.sampled_from(["buyer", "provider"]),
    granted=st.booleans(),
    after_ms=st.integers(1, 12 * 3_600_000),
)
def test_early_close_splits_the_escrow_exactly(
    driver_factory: Factory,
    users: list[PrivateKey],
    quantity: int,
    price: int,
    duration: int,
    closer: str,
    granted: bool,
    after_ms: int,
) -> None:
    driver = driver_factory(grant_deadline_s=10**6)
    provider, buyer = users[0], users[1]
    lease_id = matched(driver, provider, buyer, quantity=quantity, price=price + 100, duration=duration)
    lease = driver.state.lease(lease_id)
    assert lease is not None
    if granted:
        driver.block([driver.tx(provider, Grant(lease_id, b"creds"))], advance_ms=1)
    who = buyer if closer == "buyer" else provider
    execution = driver.block([driver.tx(who, Close(lease_id, "done"))], advance_ms=after_ms)
    closed = driver.state.lease(lease_id)
    assert closed is not None
    if closed.status == LeaseStatus.CLOSED:
        assert execution.receipts[0].code == ReceiptCode.OK
        assert closed.provider_paid + closed.buyer_refunded == lease.escrow
        if granted:
            elapsed = min(driver.now, lease.end) - lease.start
            assert closed.provider_paid == lease.escrow * elapsed // (lease.end - lease.start)
        else:
            assert closed.provider_paid == 0
    else:  # the lease ended (or was cancelled) before the close arrived
        assert execution.receipts[0].code == ReceiptCode.LEASE_NOT_ACTIVE
        assert closed.provider_paid + closed.buyer_refunded == lease.escrow
    assert driver.state.account(provider.public.raw).balance == START + closed.provider_paid
    assert driver.state.account(buyer.public.raw).escrow == 0
    assert total_credits(driver.state) == 4 * START


@settings(max_examples=30, deadline=None)
@given(quantities=st.lists(st.integers(1, 20), min_size=1, max_size=4), want=st.integers(1, 60))
def test_partial_fills_then_expiry_return_exactly_the_escrow(
    driver_factory: Factory, users: list[PrivateKey], quantities: list[int], want: int
) -> None:
    driver = driver_factory()
    provider, buyer = users[0], users[1]
    offers = [
        driver.tx(provider, offer(driver, provider, quantity=q, price=100 + i))
        for i, q in enumerate(quantities)
    ]
    placed = driver.block(
        [*offers, driver.tx(buyer, bid(driver, buyer, quantity=want, price=997, duration=1234))]
    )
    leases = list(driver.state.leases())
    assert sum(lease.quantity for lease in leases) == min(want, sum(quantities))
    assert all(lease.price <= 997 for lease in leases)
    account = driver.state.account(buyer.public.raw)
    order = driver.state.order(placed.receipts[-1].ids[0])
    resting = 0 if order is None else lease_cost(order.quantity, 997, 1234)
    assert account.escrow == sum(lease.escrow for lease in leases) + resting
    expired = driver.block(advance_ms=600_000)  # the bid expires; the leases get no grant
    refunds = sum(e.data[1] for e in expired.events if e.kind == EventKind.REFUND)
    assert refunds == resting
    assert driver.state.account(buyer.public.raw) == (START, 0, 1)


def test_expiries_are_bounded_per_block_and_carried_over(
    driver_factory: Factory, users: list[PrivateKey]
) -> None:
    driver = driver_factory(max_expiries_per_block=2)
    buyer = users[1]
    driver.block([driver.tx(buyer, bid(driver, buyer, price=5)) for _ in range(5)])
    counts = []
    for _ in range(4):
        execution = driver.block(advance_ms=600_000)
        counts.append(sum(1 for e in execution.events if e.kind == EventKind.ORDER_EXPIRED))
    assert counts == [2, 2, 1, 0]
    assert driver.state.account(buyer.public.raw) == (START, 0, 5)


def test_books_clear_only_every_k_blocks(driver_factory: Factory, users: list[PrivateKey]) -> None:
    driver = driver_factory(auction_period_blocks=3)
    driver.block([driver.tx(users[0], offer(driver, users[0])), driver.tx(users[1], bid(driver, users[1]))])
    assert driver.state.pending_books() == {("cpu.small", "eu-west")}
    assert not list(driver.state.leases())
    driver.block()
    third = driver.block()
    assert driver.state.height == 3 and len(list(driver.state.leases())) == 1
    assert driver.state.pending_books() == frozenset()
    assert driver.state.last_price("cpu.small", "eu-west") == 150
    assert any(e.kind == EventKind.BOOK_CLEARED for e in third.events)


def test_an_offer_whose_window_opens_later_is_cleared_then(driver: Any, users: list[PrivateKey]) -> None:
    opens = driver.now + 30
    later = OfferBody("cpu.small", "eu-west", 5, 100, opens, opens + 10**6, None)
    driver.block([driver.tx(users[0], later), driver.tx(users[1], bid(driver, users[1]))])
    assert not list(driver.state.leases()) and driver.state.pending_books() == frozenset()
    driver.block(advance_ms=40_000)
    assert len(list(driver.state.leases())) == 1


def test_rollback_restores_everything_and_reload_matches(driver: Any, users: list[PrivateKey]) -> None:
    lease_id = matched(driver, users[0], users[1])
    snapshot = (driver.state.state_root, list(driver.state.accounts()), list(driver.state.orders()))
    stored = dict(driver.stored)
    execution = driver.state.execute(
        BlockContext(driver.state.height + 1, driver.time_ms + 100_000, b"\x00" * 32),
        [
            driver.tx(users[0], Grant(lease_id, b"x")),
            driver.tx(users[2], offer(driver, users[2])),
            driver.tx(users[3], bid(driver, users[3], quantity=30)),
        ],
    )
    assert execution.state_root != snapshot[0]
    driver.state.rollback(execution)
    assert (driver.state.state_root, list(driver.state.accounts()), list(driver.state.orders())) == snapshot
    with pytest.raises(LedgerError):
        driver.state.rollback(execution)
    reloaded = LedgerState.load(driver.genesis, stored.items())
    assert reloaded.state_root == driver.state.state_root
    assert list(reloaded.accounts()) == list(driver.state.accounts())
    assert list(reloaded.leases()) == list(driver.state.leases())


def test_execute_refuses_a_block_out_of_order(driver: Any) -> None:
    with pytest.raises(LedgerError):
        driver.state.execute(BlockContext(5, driver.time_ms + 1, b"\x00" * 32), [])
    with pytest.raises(LedgerError):
        driver.state.execute(BlockContext(1, driver.time_ms, b"\x00" * 32), [])


def test_results_round_trip(driver: Any, users: list[PrivateKey]) -> None:
    matched(driver, users[0], users[1])
    execution = driver.block([driver.tx(users[2], Transfer(users[3].public.raw, 0))], advance_ms=61_000)
    receipts, events = Execution.decode_results(execution.encode_results())
    assert receipts == execution.receipts and events == execution.events and events
