"""Market benchmark: clearing one book of 100k resting orders after a block touched it with one new order.

Prints medians of 5 runs. The book is made heterogeneous on purpose: offers with short and long windows,
bids of short and long durations, and a price band where bids and offers cross in price but not in window,
so that the clearing has to skip incompatible offers. Run: .venv/bin/python bench/market_bench.py
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from ledger.market import Bid, Market, Offer

NOW = 1_000_000
HOUR = 3600


def order_id(number: int) -> bytes:
    return number.to_bytes(32, "big")


def build_orders(size: int, rng: random.Random) -> list[Offer | Bid]:
    orders: list[Offer | Bid] = []
    for seq in range(size):
        owner = order_id(rng.randrange(1000))
        if seq % 2:
            window = rng.choice((HOUR, 4 * HOUR, 48 * HOUR))
            start = NOW - HOUR if rng.random() < 0.9 else NOW + rng.randrange(1, 10 * HOUR)
            price = rng.randrange(900, 2000) if window > HOUR else rng.randrange(500, 1000)
            orders.append(
                Offer(
                    order_id(seq), owner, "cpu", "eu", rng.randrange(1, 50), price, start, start + window, seq
                )
            )
        else:
            duration = rng.choice((HOUR // 2, 2 * HOUR, 24 * HOUR))
            price = rng.randrange(100, 900) if duration < 24 * HOUR else rng.randrange(700, 950)
            expires = NOW + rng.randrange(HOUR, 100 * HOUR)
            orders.append(
                Bid(order_id(seq), owner, "cpu", "eu", rng.randrange(1, 50), price, duration, expires, seq)
            )
    return orders


def settled_market(orders: list[Offer | Bid]) -> tuple[Market, float]:
    market = Market(["cpu"], ["eu"])
    started = time.perf_counter()
    for order in orders:
        market.add(order)
    elapsed = time.perf_counter() - started
    while not market.clear([("cpu", "eu")], NOW, 1_000_000, 10_000_000)[0].complete:
        pass
    return market, elapsed


def adversarial(size: int, runs: int) -> None:
    """Worst case for the walk: bids of distinct long durations priced above cheap short-window offers, so
    that every bid is a duration group of its own that must be looked at; the step bound caps the work."""
    market = Market(["cpu"], ["eu"])
    for seq in range(size):
        if seq % 2:
            market.add(Offer(order_id(seq), order_id(1), "cpu", "eu", 1, 100 + seq % 50, 0, NOW + 60, seq))
        else:
            market.add(Bid(order_id(seq), order_id(2), "cpu", "eu", 1, 500, HOUR + seq, NOW + HOUR, seq))
    for max_steps in (1_000, 10_000):
        wall: list[float] = []
        for _ in range(runs):
            started = time.perf_counter()
            (result,) = market.clear([("cpu", "eu")], NOW, 10_000, max_steps)
            wall.append(time.perf_counter() - started)
            assert not result.complete and not result.rounds
        print(
            f"adversarial book of {size} (every bid its own duration group), max_steps={max_steps}: "
            f"median {statistics.median(wall) * 1e3:.1f} ms, complete=False"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5, help="median of this many runs")
    args = parser.parse_args()
    rng = random.Random(7)
    orders = build_orders(args.orders, rng)
    market, add_seconds = settled_market(orders)
    print(f"book: {len(market)} resting orders after settling ({args.orders} placed)")
    print(
        f"rebuild: {add_seconds * 1e3:.0f} ms to add {args.orders} orders "
        f"({add_seconds / args.orders * 1e6:.1f} us each)"
    )
    figures: dict[str, list[float]] = {}
    seq = args.orders
    for _ in range(args.runs):
        cases = {
            "no-cross bid": Bid(order_id(seq), order_id(1), "cpu", "eu", 5, 100, HOUR, NOW + HOUR, seq),
            "crossing bid": Bid(
                order_id(seq + 1), order_id(2), "cpu", "eu", 400, 5000, 2 * HOUR, NOW + HOUR, seq + 1
            ),
            "crossing offer": Offer(
                order_id(seq + 2), order_id(3), "cpu", "eu", 100, 1, NOW - 1, NOW + 100 * HOUR, seq + 2
            ),
        }
        seq += 3
        for name, order in cases.items():
            market.add(order)
            started, started_cpu = time.perf_counter(), time.process_time()
            result = market.clear([("cpu", "eu")], NOW, 10_000, 100_000)
            figures.setdefault(name, []).append(time.perf_counter() - started)
            figures.setdefault(name + " cpu", []).append(time.process_time() - started_cpu)
            assert result[0].complete
            if name.startswith("crossing bid"):
                figures.setdefault("fills per crossing bid", []).append(len(result[0].fills))
    for name, values in figures.items():
        if name.startswith("fills"):
            print(f"{name}: median {statistics.median(values):.0f}")
        elif not name.endswith(" cpu"):
            wall, cpu = statistics.median(values), statistics.median(figures[name + " cpu"])
            print(
                f"clear after {name}: median {wall * 1e3:.2f} ms wall, {cpu * 1e3:.2f} ms cpu (goal <= 20 ms)"
            )
    adversarial(args.orders // 2, args.runs)
    started = time.perf_counter()
    depth = market.depth("cpu", "eu")
    print(f"depth: {(time.perf_counter() - started) * 1e3:.1f} ms for {len(depth[0]) + len(depth[1])} levels")
    started = time.perf_counter()
    quote = market.quote("cpu", "eu", 100, 2 * HOUR, NOW)
    print(f"quote: {(time.perf_counter() - started) * 1e3:.2f} ms -> {quote}")


if __name__ == "__main__":
    main()
