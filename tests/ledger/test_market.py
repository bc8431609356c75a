"""The worked examples of docs/market.md, and the Market's bookkeeping (add, put, remove, expiry, queries)."""

from __future__ import annotations

import pytest

from ledger.market import Bid, BookClearing, Market, Offer, Quote, lease_cost

NOW = 10_000
HOUR = 3600
BOOK = ("cpu", "eu")
PROVIDER = b"P" * 32
BUYER = b"B" * 32


def oid(name: str) -> bytes:
    return name.encode().ljust(32, b".")


def offer(
    name: str, seq: int, quantity: int, min_price: int, until: int = NOW + 10 * HOUR, start: int = 0
) -> Offer:
    return Offer(oid(name), PROVIDER, "cpu", "eu", quantity, min_price, start, until, seq)


def bid(
    name: str, seq: int, quantity: int, max_price: int, duration: int = HOUR, expires: int = NOW + HOUR
) -> Bid:
    return Bid(oid(name), BUYER, "cpu", "eu", quantity, max_price, duration, expires, seq)


def market_with(*orders: Offer | Bid) -> Market:
    market = Market(["cpu", "gpu"], ["eu", "us"])
    for order in orders:
        market.add(order)
    return market


def summary(clearing: BookClearing) -> list[tuple[int, list[tuple[str, str, int]]]]:
    """Each round as (price, [(bid, offer, quantity)]) with the names of the ids."""
    return [
        (
            clearing_round.price,
            [
                (f.bid_id.rstrip(b".").decode(), f.offer_id.rstrip(b".").decode(), f.quantity)
                for f in clearing_round.fills
            ],
        )
        for clearing_round in clearing.rounds
    ]


def clear_once(market: Market, max_matches: int = 1000, max_steps: int = 1000) -> BookClearing:
    (clearing,) = market.clear([BOOK], NOW, max_matches, max_steps)
    return clearing


def test_example_1_simple_cross() -> None:
    market = market_with(offer("A", 1, 10, 100), bid("X", 2, 4, 140))
    clearing = clear_once(market)
    assert clearing.complete
    assert summary(clearing) == [(120, [("X", "A", 4)])]
    fill = clearing.fills[0]
    assert (fill.buyer, fill.provider, fill.duration, fill.round) == (BUYER, PROVIDER, HOUR, 0)
    remaining = market.get(oid("A"))
    assert remaining is not None and remaining.quantity == 6
    assert market.get(oid("X")) is None


def test_example_2_partial_fills_share_one_price() -> None:
    market = market_with(
        offer("A", 1, 3, 100), offer("B", 2, 5, 110), bid("X", 3, 4, 150), bid("Y", 4, 6, 130)
    )
    clearing = clear_once(market)
    assert summary(clearing) == [(120, [("X", "A", 3), ("X", "B", 1), ("Y", "B", 4)])]
    left = market.get(oid("Y"))
    assert left is not None and left.quantity == 2
    assert [o.order_id for o in market.orders()] == [oid("Y")]


def test_example_3_no_cross_leaves_the_book_alone() -> None:
    market = market_with(offer("A", 1, 5, 200), bid("X", 2, 5, 150))
    clearing = clear_once(market)
    assert clearing.complete and clearing.rounds == ()
    assert market.depth("cpu", "eu") == ([(150, 5)], [(200, 5)])


def test_example_4_cheapest_offer_whose_window_is_too_short_is_passed_over() -> None:
    market = market_with(
        offer("A", 1, 5, 50, until=NOW + HOUR // 2), offer("B", 2, 5, 90), bid("X", 3, 2, 100)
    )
    clearing = clear_once(market)
    assert summary(clearing) == [(95, [("X", "B", 2)])]
    cheap = market.get(oid("A"))
    assert cheap is not None and cheap.quantity == 5


def test_example_5_heterogeneous_windows_need_a_second_round() -> None:
    market = market_with(
        offer("L", 1, 5, 100),
        offer("S", 2, 5, 80, until=NOW + 100),
        bid("X", 3, 5, 120, duration=HOUR),
        bid("Y", 4, 3, 90, duration=50),
    )
    clearing = clear_once(market)
    assert summary(clearing) == [(110, [("X", "L", 5)]), (85, [("Y", "S", 3)])]
    assert [fill.round for fill in clearing.fills] == [0, 1]


def test_example_6_ties_go_to_the_earlier_order_and_the_midpoint_rounds_down() -> None:
    market = market_with(
        offer("A", 1, 2, 100), offer("B", 2, 2, 100), bid("X", 3, 3, 121), bid("Y", 4, 3, 121)
    )
    clearing = clear_once(market)
    assert summary(clearing) == [(110, [("X", "A", 2), ("X", "B", 1), ("Y", "B", 1)])]
    left = market.get(oid("Y"))
    assert left is not None and left.quantity == 2


def test_example_7_work_bound_reached_then_continued() -> None:
    market = market_with(
        offer("A", 1, 1, 10), offer("B", 2, 1, 20), offer("C", 3, 1, 30), bid("X", 4, 3, 100)
    )
    first = clear_once(market, max_matches=2)
    assert not first.complete
    assert summary(first) == [(60, [("X", "A", 1), ("X", "B", 1)])]
    second = clear_once(market)
    assert second.complete
    assert summary(second) == [(65, [("X", "C", 1)])]
    assert len(market) == 0


def test_steps_bound_visits_and_lookups() -> None:
    market = market_with(offer("A", 1, 1, 10), offer("B", 2, 1, 20), bid("X", 3, 2, 100))
    stopped = clear_once(market, max_steps=1)
    assert not stopped.complete and summary(stopped) == [(55, [("X", "A", 1)])]
    nothing = clear_once(market, max_steps=0)
    assert not nothing.complete and nothing.rounds == ()
    assert summary(clear_once(market)) == [(60, [("X", "B", 1)])]


def test_budget_is_shared_across_books_in_sorted_order() -> None:
    market = market_with(
        offer("A", 1, 1, 10),
        bid("X", 2, 1, 20),
        Offer(oid("G"), PROVIDER, "gpu", "eu", 1, 10, 0, NOW + HOUR * 10, 3),
        Bid(oid("Y"), BUYER, "gpu", "eu", 1, 20, HOUR, NOW + HOUR, 4),
    )
    cpu, gpu = market.clear([("gpu", "eu"), ("cpu", "eu"), ("gpu", "eu")], NOW, 1, 100)
    assert (cpu.resource_class, cpu.complete, len(cpu.fills)) == ("cpu", True, 1)
    assert (gpu.resource_class, gpu.complete, gpu.rounds) == ("gpu", False, ())
    with pytest.raises(ValueError):
        market.clear([("tpu", "eu")], NOW, 1, 1)


def test_offer_not_yet_open_and_expired_bid_do_not_trade() -> None:
    market = market_with(
        offer("A", 1, 1, 10, start=NOW + 5), bid("X", 2, 1, 20), bid("Z", 3, 1, 30, expires=NOW)
    )
    assert clear_once(market).rounds == ()
    (later,) = market.clear([BOOK], NOW + 5, 10, 10)
    assert summary(later) == [(15, [("X", "A", 1)])]


def test_clearing_at_an_earlier_time_after_a_later_one_sees_only_open_offers() -> None:
    market = market_with(offer("A", 1, 1, 10, start=NOW + 5), bid("X", 2, 1, 20, expires=NOW + 100))
    assert market.quote("cpu", "eu", 1, 10, NOW + 50) == Quote(1, 10, 0)
    assert clear_once(market).rounds == ()
    assert market.opened(NOW, NOW + 5) == [BOOK]
    assert market.opened(NOW + 5, NOW + 50) == []


def test_add_rejects_unknown_books_duplicates_and_malformed_orders() -> None:
    market = market_with(offer("A", 1, 1, 10))
    with pytest.raises(ValueError):
        market.add(offer("A", 2, 1, 10))
    with pytest.raises(ValueError):
        market.add(Offer(oid("T"), PROVIDER, "tpu", "eu", 1, 10, 0, NOW, 3))
    for broken in (
        offer("Q", 4, 0, 10),
        bid("R", 5, 1, 0),
        bid("S", 6, 1, 10, duration=0),
        offer("U", 7, 1, True),
    ):
        with pytest.raises(ValueError):
            market.add(broken)
    with pytest.raises(ValueError):
        market.add(Offer(b"short", PROVIDER, "cpu", "eu", 1, 10, 0, NOW, 8))
    assert len(market) == 1


def test_put_replaces_and_remove_returns_the_order() -> None:
    market = market_with(offer("A", 1, 1, 10), bid("X", 2, 1, 5))
    market.put(offer("A", 1, 7, 4))
    market.put(bid("Y", 3, 2, 6))
    assert market.depth("cpu", "eu") == ([(6, 2), (5, 1)], [(4, 7)])
    removed = market.remove(oid("X"))
    assert isinstance(removed, Bid) and removed.max_price == 5
    assert market.remove(oid("X")) is None
    assert market.get(oid("X")) is None and len(market) == 2


def test_expired_lists_by_time_then_id_without_removing() -> None:
    market = market_with(
        bid("X", 1, 1, 5, expires=NOW),
        offer("A", 2, 1, 50, until=NOW - 1),
        bid("W", 3, 1, 5, expires=NOW),
        bid("V", 4, 1, 5, expires=NOW + 1),
    )
    assert [o.order_id for o in market.expired(NOW, 10)] == [oid("A"), oid("W"), oid("X")]
    assert [o.order_id for o in market.expired(NOW, 2)] == [oid("A"), oid("W")]
    assert len(market) == 4


def test_orders_filter_by_book_and_owner() -> None:
    market = market_with(offer("A", 1, 1, 50), bid("X", 2, 1, 5))
    market.add(Offer(oid("G"), BUYER, "gpu", "us", 1, 10, 0, NOW, 3))
    assert [o.order_id for o in market.orders()] == [oid("A"), oid("X"), oid("G")]
    assert [o.order_id for o in market.orders(owner=BUYER)] == [oid("X"), oid("G")]
    assert [o.order_id for o in market.orders(resource_class="gpu")] == [oid("G")]
    assert [o.order_id for o in market.orders(region="eu", owner=PROVIDER)] == [oid("A")]


def test_depth_aggregates_levels() -> None:
    market = market_with(
        bid("X", 1, 1, 5), bid("Y", 2, 2, 5), bid("Z", 3, 4, 3), offer("A", 4, 3, 9), offer("B", 5, 1, 8)
    )
    assert market.depth("cpu", "eu") == ([(5, 3), (3, 4)], [(8, 1), (9, 3)])
    assert market.depth("cpu", "eu", levels=1) == ([(5, 3)], [(8, 1)])
    with pytest.raises(ValueError):
        market.depth("tpu", "eu")


def test_quote_takes_compatible_offers_in_priority_order() -> None:
    market = market_with(offer("A", 1, 2, 50, until=NOW + 60), offer("B", 2, 3, 90), offer("C", 3, 3, 120))
    assert market.quote("cpu", "eu", 4, HOUR, NOW) == Quote(4, 120, lease_cost(4, 120, HOUR))
    assert market.quote("cpu", "eu", 2, 60, NOW) == Quote(2, 50, 1)
    assert market.quote("cpu", "eu", 50, HOUR, NOW) == Quote(6, 120, 720)
    assert market.quote("cpu", "eu", 1, 20 * HOUR, NOW) is None
    assert len(market) == 3


def test_quoted_price_is_what_a_bid_at_that_price_pays() -> None:
    market = market_with(offer("A", 1, 2, 50), offer("B", 2, 3, 90), bid("Z", 3, 1, 40))
    quote = market.quote("cpu", "eu", 4, HOUR, NOW)
    assert quote == Quote(4, 90, 360)
    market.add(bid("X", 4, 4, quote.price))
    assert {fill.price for fill in clear_once(market).fills} == {90}


def test_lease_cost_rounds_down() -> None:
    assert lease_cost(3, 1000, HOUR) == 3000
    assert lease_cost(1, 1, 3599) == 0
    assert lease_cost(2, 7, 1800) == 7
    assert lease_cost(1, 5, 1000) == 1
    for bad in ((-1, 1, 1), (1, -1, 1), (1, 1, -1), (1, 1.0, 1)):
        with pytest.raises(ValueError):
            lease_cost(*bad)  # type: ignore[arg-type]
