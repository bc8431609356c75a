"""Property tests of the market over random books: the auction's invariants, a plain reference clearing,
bounded clearing that completes when repeated, determinism, rebuild and rollback."""

from __future__ import annotations

import random
from copy import copy
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.market import (
    MAX_LEASE_SECONDS,
    MAX_ORDER_QUANTITY,
    MAX_UNIT_PRICE,
    Bid,
    BookClearing,
    Market,
    Offer,
    lease_cost,
)
from ledger.orderbook import WindowIndex

NOW = 100
BOOKS = [("cpu", "eu"), ("cpu", "us"), ("gpu", "eu")]
CLASSES, REGIONS = ["cpu", "gpu"], ["eu", "us"]
PLENTY = 10**6
EXAMPLES = settings(max_examples=40, deadline=None)

Order = Offer | Bid


@st.composite
def books(draw: st.DrawFn, max_orders: int = 30) -> list[Order]:
    """Orders with unique seqs and ids over a few books, prices and windows chosen to cross often."""
    count = draw(st.integers(0, max_orders))
    orders: list[Order] = []
    for seq in range(count):
        resource_class, region = draw(st.sampled_from(BOOKS))
        order_id = seq.to_bytes(2, "big") * 16
        owner = draw(st.sampled_from([b"a" * 32, b"b" * 32, b"c" * 32]))
        quantity = draw(st.integers(1, 5))
        price = draw(st.integers(1, 20))
        if draw(st.booleans()):
            start = draw(st.integers(NOW - 10, NOW + 3))
            until = draw(st.integers(NOW - 2, NOW + 25))
            orders.append(Offer(order_id, owner, resource_class, region, quantity, price, start, until, seq))
        else:
            duration = draw(st.sampled_from([1, 2, 5, 10, 20]))
            expires = draw(st.integers(NOW - 1, NOW + 5))
            orders.append(
                Bid(order_id, owner, resource_class, region, quantity, price, duration, expires, seq)
            )
    return orders


def market_of(orders: list[Order]) -> Market:
    market = Market(CLASSES, REGIONS)
    for order in orders:
        market.add(copy(order))
    return market


def compatible(offer: Offer, bid: Bid, now: int) -> bool:
    return (
        (offer.resource_class, offer.region) == (bid.resource_class, bid.region)
        and offer.available_from <= now
        and now + bid.duration <= offer.available_until
        and bid.expires_at > now
    )


def crossed_pairs(market: Market, now: int) -> list[tuple[Offer, Bid]]:
    orders = list(market.orders())
    offers = [o for o in orders if isinstance(o, Offer)]
    bids = [o for o in orders if isinstance(o, Bid)]
    return [(o, b) for o in offers for b in bids if compatible(o, b, now) and b.max_price >= o.min_price]


def state(market: Market) -> list[tuple[object, ...]]:
    return sorted((type(o).__name__, o.order_id, o.quantity, o.seq) for o in market.orders())


def check_clearings(originals: dict[bytes, Order], clearings: list[BookClearing], now: int) -> None:
    for clearing in clearings:
        for index, clearing_round in enumerate(clearing.rounds):
            assert clearing_round.fills, "a round has fills"
            for fill in clearing_round.fills:
                offer, bid = originals[fill.offer_id], originals[fill.bid_id]
                assert isinstance(offer, Offer) and isinstance(bid, Bid)
                assert offer.min_price <= fill.price <= bid.max_price
                assert fill.price == clearing_round.price and fill.round == index
                assert compatible(offer, bid, now) and fill.quantity >= 1
                assert (fill.resource_class, fill.region) == (clearing.resource_class, clearing.region)
                assert (fill.buyer, fill.provider, fill.duration) == (bid.owner, offer.owner, bid.duration)


def check_conservation(originals: dict[bytes, Order], market: Market, clearings: list[BookClearing]) -> None:
    filled = dict.fromkeys(originals, 0)
    for clearing in clearings:
        for fill in clearing.fills:
            filled[fill.bid_id] += fill.quantity
            filled[fill.offer_id] += fill.quantity
    for order_id, original in originals.items():
        resting = market.get(order_id)
        assert filled[order_id] + (resting.quantity if resting else 0) == original.quantity
        assert (resting is None) == (filled[order_id] == original.quantity)


def reference_clearing(
    orders: list[Order], book: tuple[str, str], now: int
) -> list[tuple[int, list[object]]]:
    """The rules of docs/market.md written as plainly as possible: every bid scans every offer."""
    mine = [copy(o) for o in orders if (o.resource_class, o.region) == book]
    bids = sorted((o for o in mine if isinstance(o, Bid)), key=lambda b: (-b.max_price, b.seq))
    offers = sorted((o for o in mine if isinstance(o, Offer)), key=lambda o: (o.min_price, o.seq))
    rounds: list[tuple[int, list[object]]] = []
    matched: list[tuple[Bid, Offer, int]] = []

    def close() -> None:
        if matched:
            price = (max(o.min_price for _, o, _ in matched) + min(b.max_price for b, _, _ in matched)) // 2
            rounds.append((price, [(b.order_id, o.order_id, q) for b, o, q in matched]))
            matched.clear()

    for bid in bids:
        for offer in offers:
            if (
                bid.quantity
                and offer.quantity
                and offer.min_price <= bid.max_price
                and compatible(offer, bid, now)
            ):
                if matched and bid.max_price < max(o.min_price for _, o, _ in matched):
                    close()
                quantity = min(bid.quantity, offer.quantity)
                matched.append((bid, offer, quantity))
                bid.quantity -= quantity
                offer.quantity -= quantity
    close()
    return rounds


@EXAMPLES
@given(books(), st.integers(NOW - 3, NOW + 3))
def test_complete_clearing_keeps_every_rule_and_matches_the_reference(orders: list[Order], now: int) -> None:
    market = market_of(orders)
    originals = {o.order_id: o for o in orders}
    clearings = market.clear(BOOKS, now, PLENTY, PLENTY)
    assert all(c.complete for c in clearings)
    check_clearings(originals, clearings, now)
    check_conservation(originals, market, clearings)
    assert crossed_pairs(market, now) == []
    for clearing in clearings:
        book = (clearing.resource_class, clearing.region)
        got = [(r.price, [(f.bid_id, f.offer_id, f.quantity) for f in r.fills]) for r in clearing.rounds]
        assert got == reference_clearing(orders, book, now)


@settings(max_examples=4, deadline=None)
@given(st.integers(0, 2**32))
def test_big_books_span_many_index_blocks_and_still_match_the_reference(seed: int) -> None:
    rng = random.Random(seed)
    orders: list[Order] = []
    for seq in range(1200):
        order_id, owner, quantity, price = (
            seq.to_bytes(32, "big"),
            b"o" * 32,
            rng.randint(1, 4),
            rng.randint(1, 60),
        )
        if seq % 2:
            start, until = rng.randint(NOW - 5, NOW + 2), rng.randint(NOW, NOW + 40)
            orders.append(Offer(order_id, owner, "cpu", "eu", quantity, price, start, until, seq))
        else:
            duration, expires = rng.choice([1, 3, 10, 30]), rng.randint(NOW, NOW + 9)
            orders.append(Bid(order_id, owner, "cpu", "eu", quantity, price, duration, expires, seq))
    market = market_of(orders)
    (clearing,) = market.clear([("cpu", "eu")], NOW, PLENTY, PLENTY)
    got = [(r.price, [(f.bid_id, f.offer_id, f.quantity) for f in r.fills]) for r in clearing.rounds]
    assert got == reference_clearing(orders, ("cpu", "eu"), NOW)
    assert crossed_pairs(market, NOW) == []


@EXAMPLES
@given(books(), st.integers(0, 4), st.integers(0, 12))
def test_bounded_clearing_is_valid_and_repeating_it_completes(
    orders: list[Order], max_matches: int, extra_steps: int
) -> None:
    market = market_of(orders)
    originals = {o.order_id: o for o in orders}
    bids = sum(isinstance(o, Bid) for o in orders)
    max_steps = bids + 1 + extra_steps
    history: list[BookClearing] = []
    for _ in range(sum(o.quantity for o in orders) + 2):
        clearings = market.clear(BOOKS, NOW, max(max_matches, 1), max_steps)
        check_clearings(originals, clearings, NOW)
        history.extend(clearings)
        if all(c.complete for c in clearings):
            break
        assert any(c.rounds for c in clearings), "a call stopped by the bound makes progress"
    else:
        raise AssertionError("repeated clearing did not complete")
    check_conservation(originals, market, history)
    assert crossed_pairs(market, NOW) == []


@EXAMPLES
@given(books(), st.integers(0, 6), st.integers(0, 6))
def test_any_budget_keeps_the_rules(orders: list[Order], max_matches: int, max_steps: int) -> None:
    market = market_of(orders)
    originals = {o.order_id: o for o in orders}
    clearings = market.clear(BOOKS, NOW, max_matches, max_steps)
    assert sum(len(c.fills) for c in clearings) <= max_matches
    check_clearings(originals, clearings, NOW)
    check_conservation(originals, market, clearings)
    if all(c.complete for c in clearings):
        assert crossed_pairs(market, NOW) == []


@EXAMPLES
@given(books(), st.randoms(use_true_random=False), st.integers(0, 8), st.integers(0, 40))
def test_insertion_order_does_not_matter(
    orders: list[Order], rng: object, max_matches: int, max_steps: int
) -> None:
    shuffled = list(orders)
    rng.shuffle(shuffled)
    first, second = market_of(orders), market_of(shuffled)
    assert first.clear(BOOKS, NOW, max_matches, max_steps) == second.clear(BOOKS, NOW, max_matches, max_steps)
    assert state(first) == state(second)
    assert first.depth("cpu", "eu") == second.depth("cpu", "eu")


@EXAMPLES
@given(books(), st.integers(0, 8), st.integers(0, 40))
def test_rebuilt_market_clears_as_the_original(orders: list[Order], max_matches: int, max_steps: int) -> None:
    market = market_of(orders)
    market.clear(BOOKS, NOW - 1, max_matches, max_steps)
    rebuilt = market_of(sorted((copy(o) for o in market.orders()), key=lambda o: o.seq))
    assert rebuilt.clear(BOOKS, NOW, max_matches, max_steps) == market.clear(
        BOOKS, NOW, max_matches, max_steps
    )
    assert state(rebuilt) == state(market)


@EXAMPLES
@given(books(), books(max_orders=8), st.integers(0, 8), st.integers(0, 40))
def test_put_and_remove_restore_a_snapshot(
    orders: list[Order], later: list[Order], max_matches: int, max_steps: int
) -> None:
    market = market_of(orders)
    market.clear(BOOKS, NOW - 2, 2, 5)
    snapshot = {o.order_id: copy(o) for o in market.orders()}
    expected = market_of(sorted(snapshot.values(), key=lambda o: o.seq)).clear(
        BOOKS, NOW, max_matches, max_steps
    )
    for order in later:
        order.order_id = b"L" + order.order_id[1:]
        market.add(order)
    market.clear(BOOKS, NOW, PLENTY, PLENTY)
    for order_id in [o.order_id for o in market.orders() if o.order_id not in snapshot]:
        market.remove(order_id)
    for order in snapshot.values():
        market.put(copy(order))
    assert state(market) == sorted(
        (type(o).__name__, o.order_id, o.quantity, o.seq) for o in snapshot.values()
    )
    assert market.clear(BOOKS, NOW, max_matches, max_steps) == expected


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 60), st.integers(0, 30)), max_size=80), st.data())
def test_window_index_answers_like_a_plain_scan(
    operations: list[tuple[bool, int, int]], data: st.DataObject
) -> None:
    index = WindowIndex(load=2)
    model: dict[tuple[int, int, bytes], int] = {}
    for number, (insert, price, until) in enumerate(operations):
        if insert or not model:
            key = (price, number, b"")
            index.add(key, until)
            model[key] = until
        else:
            key = data.draw(st.sampled_from(sorted(model)))
            index.remove(key)
            del model[key]
        need, cap = data.draw(st.integers(0, 31)), data.draw(st.integers(0, 61))
        fitting = [k for k in sorted(model) if model[k] >= need]
        assert list(index.fitting(need)) == fitting
        assert index.best_fitting(need, cap) == next((k for k in fitting if k[0] <= cap), None)
        assert index.lowest() == (min(model) if model else None)
        assert len(index) == len(model)


@settings(max_examples=100, deadline=None)
@given(
    st.integers(0, MAX_ORDER_QUANTITY),
    st.integers(0, MAX_UNIT_PRICE),
    st.integers(0, MAX_LEASE_SECONDS),
    st.integers(0, 1000),
)
def test_lease_cost_is_exact_monotone_and_bounded(
    quantity: int, price: int, duration: int, more: int
) -> None:
    cost = lease_cost(quantity, price, duration)
    assert cost == int(Fraction(quantity * price * duration, 3600))
    assert 0 <= cost < 2**64
    assert lease_cost(MAX_ORDER_QUANTITY, MAX_UNIT_PRICE, MAX_LEASE_SECONDS) < 2**64
    assert lease_cost(quantity + more, price, duration) >= cost
    assert lease_cost(quantity, price + more, duration) >= cost
    assert lease_cost(quantity, price, duration + more) >= cost


@settings(max_examples=80, deadline=None)
@given(books(max_orders=40), st.data())
def test_expiry_schedule_answers_like_a_sorted_scan(orders: list[Order], data: st.DataObject) -> None:
    """Adds, removals, puts of the same order and repeated `expired` queries (which must not consume the
    schedule) give what a sorted scan of the live orders gives; the lazily cleaned heap stays bounded."""
    market = Market(CLASSES, REGIONS)
    live: dict[bytes, Order] = {}
    for order in orders:
        action = data.draw(st.sampled_from(["add", "add", "remove", "put", "query"]))
        if action == "add":
            market.add(order)
            live[order.order_id] = order
        elif action == "remove" and live:
            order_id = data.draw(st.sampled_from(sorted(live)))
            market.remove(order_id)
            del live[order_id]
        elif action == "put" and live:
            market.put(copy(live[data.draw(st.sampled_from(sorted(live)))]))
        now, limit = data.draw(st.integers(NOW - 5, NOW + 30)), data.draw(st.integers(0, 50))
        ends = sorted(
            (o.available_until if isinstance(o, Offer) else o.expires_at, o.order_id) for o in live.values()
        )
        expected = [order_id for end, order_id in ends if end <= now][:limit]
        assert [o.order_id for o in market.expired(now, limit)] == expected
        assert [o.order_id for o in market.expired(now, limit)] == expected
        assert len(market._expiries) <= 2 * len(live) + 64 + 1
