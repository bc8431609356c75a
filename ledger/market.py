"""The market: one order book per (resource class, region), cleared by a uniform-price call auction.

Theory: bids are walked once in priority order (higher max price, then earlier seq); each takes, in offer
priority order (lower min price, then earlier seq), the compatible offers it crosses until it is filled or
none is left. The fills share one price per round: a round holds consecutive bids while every bid of it can
pay the highest min price its offers asked; the bid that cannot opens the next round. Offers only shrink
during the walk, so a bid that found nothing never finds anything later: when the walk ends no compatible
crossed pair remains, and the walk ends because every step fills a unit or moves past a bid. The work per
call is bounded in matches and in steps (bid visits and offer lookups), counted on the orders themselves so
that every member stops at the same point. docs/market.md states the rules with worked examples.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from heapq import heapify, heappop, heappush

from ledger.orderbook import (
    MAX_LEASE_SECONDS,
    MAX_ORDER_QUANTITY,
    MAX_UNIT_PRICE,
    Bid,
    Book,
    BookClearing,
    ClearingRound,
    Fill,
    Offer,
    Order,
    OrderKey,
    Quote,
    bid_key,
    lease_cost,
    offer_key,
)

__all__ = [
    "MAX_LEASE_SECONDS",
    "MAX_ORDER_QUANTITY",
    "MAX_UNIT_PRICE",
    "Bid",
    "BookClearing",
    "ClearingRound",
    "Fill",
    "Market",
    "Offer",
    "Order",
    "Quote",
    "lease_cost",
]

ORDER_ID_BYTES = 32
_STALE_SLACK = 64  # the expiry heap is rebuilt when it holds more than twice the live orders plus this


@dataclass(slots=True)
class _Entry:
    """An order with the index positions it was filed under (kept, since the caller owns the object)."""

    order: Order
    book: Book
    key: OrderKey
    expiry: tuple[int, bytes]
    available_from: int
    available_until: int
    duration: int


class _Stop(Exception):
    """The work budget ran out in the middle of a book."""


@dataclass(slots=True)
class _Budget:
    """The work one `clear` call may still do, across all its books."""

    matches: int
    steps: int

    def spend_step(self) -> None:
        if self.steps <= 0:
            raise _Stop
        self.steps -= 1

    def spend_match(self) -> None:
        if self.matches <= 0:
            raise _Stop
        self.matches -= 1


class _Walk:
    """The rounds of one book's clearing: matches of the open round, and the rounds already priced."""

    __slots__ = ("ceiling", "floor", "matched", "name", "rounds")

    def __init__(self, name: tuple[str, str]) -> None:
        self.name = name
        self.rounds: list[ClearingRound] = []
        self.matched: list[tuple[Bid, Offer, int]] = []
        self.floor = 0
        self.ceiling = 0

    def record(self, bid: Bid, offer: Offer, quantity: int) -> None:
        """Add a match; a bid that cannot pay the round's highest min price first closes the round."""
        if self.matched and bid.max_price < self.floor:
            self.close_round()
        if not self.matched:
            self.floor, self.ceiling = offer.min_price, bid.max_price
        self.floor = max(self.floor, offer.min_price)
        self.ceiling = min(self.ceiling, bid.max_price)
        self.matched.append((bid, offer, quantity))

    def close_round(self) -> None:
        """Price the open round at the midpoint of [highest min price, lowest max price], rounded down."""
        if not self.matched:
            return
        price = (self.floor + self.ceiling) // 2
        index = len(self.rounds)
        resource_class, region = self.name
        fills = tuple(
            Fill(
                bid.order_id,
                offer.order_id,
                bid.owner,
                offer.owner,
                resource_class,
                region,
                quantity,
                price,
                bid.duration,
                index,
            )
            for bid, offer, quantity in self.matched
        )
        self.rounds.append(ClearingRound(price, fills))
        self.matched.clear()


def _check_order(order: object) -> Order:
    numbers: tuple[int, ...]
    positive: tuple[int, ...]
    if isinstance(order, Offer):
        numbers = (order.quantity, order.min_price, order.seq, order.available_from, order.available_until)
        positive = (order.quantity, order.min_price)
    elif isinstance(order, Bid):
        numbers = (order.quantity, order.max_price, order.seq, order.duration, order.expires_at)
        positive = (order.quantity, order.max_price, order.duration)
    else:
        raise ValueError(f"not an order: {type(order).__name__}")
    if type(order.order_id) is not bytes or len(order.order_id) != ORDER_ID_BYTES:
        raise ValueError("order_id must be 32 bytes")
    for value in numbers:
        if type(value) is not int:
            raise ValueError(f"order fields must be integers: {order!r}")
    for value in positive:
        if value < 1:
            raise ValueError(f"quantity, price and duration must be at least 1: {order!r}")
    return order


class Market:
    """Every book of the market, the order index and the expiry schedule. Orders are kept by reference:
    clearing lowers `quantity` on the very objects that were added."""

    def __init__(self, resource_classes: Sequence[str], regions: Sequence[str]) -> None:
        self._books = {(c, r): Book() for c in resource_classes for r in regions}
        self._entries: dict[bytes, _Entry] = {}
        # A heap of (expiry time, order id) with lazy deletion: a removed order's item stays until it reaches
        # the top (or the heap is rebuilt when most of it is stale); `expired` skips items of no live order.
        self._expiries: list[tuple[int, bytes]] = []

    # -- orders ------------------------------------------------------------------------------------------

    def add(self, order: Offer | Bid) -> None:
        """File a new order; unknown class or region, duplicate id or malformed order: ValueError."""
        book = self._book_for(_check_order(order))
        if order.order_id in self._entries:
            raise ValueError(f"duplicate order id {order.order_id.hex()}")
        self._insert(order, book)

    def put(self, order: Offer | Bid) -> None:
        """File `order`, replacing any order of the same id (rollback restores snapshots this way)."""
        book = self._book_for(_check_order(order))
        self.remove(order.order_id)
        self._insert(order, book)

    def remove(self, order_id: bytes) -> Offer | Bid | None:
        entry = self._entries.pop(order_id, None)
        if entry is None:
            return None
        if isinstance(entry.order, Offer):
            entry.book.remove_offer(entry.key, entry.available_from, entry.available_until)
        else:
            entry.book.remove_bid(entry.key, entry.duration)
        if len(self._expiries) > 2 * len(self._entries) + _STALE_SLACK:
            self._expiries = [live.expiry for live in self._entries.values()]
            heapify(self._expiries)
        return entry.order

    def get(self, order_id: bytes) -> Offer | Bid | None:
        entry = self._entries.get(order_id)
        return None if entry is None else entry.order

    def __len__(self) -> int:
        return len(self._entries)

    def _book_for(self, order: Order) -> Book:
        book = self._books.get((order.resource_class, order.region))
        if book is None:
            raise ValueError(f"unknown resource class or region: {order.resource_class!r}, {order.region!r}")
        return book

    def _insert(self, order: Order, book: Book) -> None:
        if isinstance(order, Offer):
            key = offer_key(order)
            start, end, duration = order.available_from, order.available_until, 0
            book.add_offer(key, start, end)
            expiry = (end, order.order_id)
        else:
            key = bid_key(order)
            start, end, duration = 0, 0, order.duration
            book.add_bid(key, duration)
            expiry = (order.expires_at, order.order_id)
        heappush(self._expiries, expiry)
        self._entries[order.order_id] = _Entry(order, book, key, expiry, start, end, duration)

    # -- clearing ----------------------------------------------------------------------------------------

    def clear(
        self, books: Iterable[tuple[str, str]], now: int, max_matches: int, max_steps: int
    ) -> list[BookClearing]:
        """Clear the named books in sorted (class, region) order, within one shared work budget.

        Fills lower the orders' quantities and filled orders leave the book. A book that the budget stopped
        reports `complete=False`; clearing it again continues where the rules say, not where this call was.
        """
        names = sorted(set(books))
        for name in names:
            if name not in self._books:
                raise ValueError(f"unknown book {name!r}")
        budget = _Budget(max(max_matches, 0), max(max_steps, 0))
        return [self._clear_book(name, now, budget) for name in names]

    def _clear_book(self, name: tuple[str, str], now: int, budget: _Budget) -> BookClearing:
        book = self._books[name]
        book.sync(now)
        walk = _Walk(name)
        complete = True
        try:
            self._walk_bids(book, now, budget, walk)
        except _Stop:
            complete = False
        walk.close_round()
        return BookClearing(name[0], name[1], tuple(walk.rounds), complete)

    def _walk_bids(self, book: Book, now: int, budget: _Budget, walk: _Walk) -> None:
        """Visit, in priority order, the bids that may still trade: each duration group from its first bid
        on, as long as the previous bid of the group was filled or expired (see the module docstring)."""
        entered: set[int] = set()
        following: list[tuple[OrderKey, int]] = []
        cursor: tuple[OrderKey, int] | tuple[()] = ()
        tops = book.tops
        while True:
            lowest = book.active.lowest()
            if lowest is None:
                return
            fresh: tuple[OrderKey, int] | None = None
            position = tops.bisect_right(cursor)
            while position < len(tops):
                candidate = tops[position]
                if candidate[1] not in entered:
                    fresh = candidate
                    break
                cursor = candidate
                position += 1
            if following and (fresh is None or following[0] < fresh):
                key, duration = heappop(following)
            elif fresh is not None:
                key, duration = cursor = fresh
                entered.add(duration)
            else:
                return
            if -key[0] < lowest[0]:
                return
            budget.spend_step()
            bid = self._entries[key[2]].order
            assert isinstance(bid, Bid)
            if bid.expires_at <= now or self._fill_bid(book, bid, now, budget, walk):
                after = book.next_in_group(duration, key)
                if after is not None:
                    heappush(following, (after, duration))

    def _fill_bid(self, book: Book, bid: Bid, now: int, budget: _Budget, walk: _Walk) -> bool:
        """Match `bid` with the compatible offers it crosses; True when it was filled and left the book.
        The first lookup is paid by the visit, each further one is a step."""
        need = now + bid.duration
        found = book.active.best_fitting(need, bid.max_price)
        while found is not None:
            budget.spend_match()
            offer = self._entries[found[2]].order
            assert isinstance(offer, Offer)
            quantity = min(bid.quantity, offer.quantity)
            walk.record(bid, offer, quantity)
            bid.quantity -= quantity
            offer.quantity -= quantity
            if offer.quantity <= 0:
                self.remove(offer.order_id)
            if bid.quantity <= 0:
                self.remove(bid.order_id)
                return True
            budget.spend_step()
            found = book.active.best_fitting(need, bid.max_price)
        return False

    # -- schedule ----------------------------------------------------------------------------------------

    def expired(self, now: int, limit: int) -> list[Offer | Bid]:
        """Orders that must leave at `now` (bid: expires_at <= now, offer: available_until <= now), ordered by
        (that time, order_id), at most `limit`; they stay in the market until removed."""
        heap, entries = self._expiries, self._entries
        found: list[Order] = []
        live: list[tuple[int, bytes]] = []
        while heap and heap[0][0] <= now and len(found) < limit:
            item = heappop(heap)
            entry = entries.get(item[1])
            if entry is not None and entry.expiry == item and (not live or live[-1] != item):
                live.append(item)  # equal live items (an order removed and put back) are kept once
                found.append(entry.order)
        for item in live:
            heappush(heap, item)
        return found

    def opened(self, after: int, now: int) -> list[tuple[str, str]]:
        """Books holding an offer whose window opens in (after, now]: time alone may have crossed them, so
        the ledger clears them too. Sorted, without repeats."""
        return [name for name in sorted(self._books) if self._books[name].opens_within(after, now)]

    # -- queries -----------------------------------------------------------------------------------------

    def orders(
        self, resource_class: str | None = None, region: str | None = None, owner: bytes | None = None
    ) -> Iterator[Offer | Bid]:
        """Resting orders, book by book in sorted order, offers then bids, each in priority order."""
        for book_class, book_region in sorted(self._books):
            book = self._books[book_class, book_region]
            if resource_class not in (None, book_class) or region not in (None, book_region):
                continue
            for keys in (book.offer_keys(), book.bid_keys()):
                for key in keys:
                    order = self._entries[key[2]].order
                    if owner is None or order.owner == owner:
                        yield order

    def depth(
        self, resource_class: str, region: str, levels: int | None = None
    ) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """Aggregated (price, quantity): bids by price descending, offers by price ascending."""
        book = self._books.get((resource_class, region))
        if book is None:
            raise ValueError(f"unknown book {(resource_class, region)!r}")
        sides: list[list[tuple[int, int]]] = []
        for keys, sign in ((book.bid_keys(), -1), (book.offer_keys(), 1)):
            side: list[tuple[int, int]] = []
            for key in keys:
                price, quantity = sign * key[0], self._entries[key[2]].order.quantity
                if side and side[-1][0] == price:
                    side[-1] = (price, side[-1][1] + quantity)
                elif levels is not None and len(side) >= levels:
                    break
                else:
                    side.append((price, quantity))
            sides.append(side)
        return sides[0], sides[1]

    def quote(self, resource_class: str, region: str, quantity: int, duration: int, now: int) -> Quote | None:
        """What a bid for `quantity` units and `duration` seconds would get if the book cleared now.

        The bid takes compatible offers in priority order; `price` is the highest min price among them, the
        lowest max price that fills `quantity` (or all there is). In a completely cleared book no resting bid
        competes for those offers, so a bid at that max price clears alone at exactly `price`.
        """
        book = self._books.get((resource_class, region))
        if book is None or quantity < 1 or duration < 1:
            return None
        book.sync(now)
        taken, price = 0, 0
        for key in book.active.fitting(now + duration):
            taken += self._entries[key[2]].order.quantity
            price = key[0]
            if taken >= quantity:
                break
        if taken == 0:
            return None
        taken = min(taken, quantity)
        return Quote(taken, price, lease_cost(taken, price, duration))
