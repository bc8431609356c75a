"""Orders, fills and the order book of one (resource class, region) pair.

Theory: an offer suits a bid when it is active (`available_from <= now`) and its window reaches the lease's
end (`available_until >= now + duration`). Among active offers, compatibility with a bid is therefore a single
threshold on `available_until`, so the active offers of a book sit in priority order in blocks that each
remember their latest `available_until`: the best compatible offer under a price cap is found by skipping
whole blocks whose windows end too early instead of looking at each short-window offer. Every answer is
defined by the set of orders alone, never by where the blocks happen to be cut, so two books holding the same
orders answer alike whatever their history.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from heapq import merge
from itertools import accumulate

from sortedcontainers import SortedList  # type: ignore[import-untyped]

SECONDS_PER_HOUR = 3600

# Bounds under which `lease_cost` stays below 2**64 (the canonical encoding's integer range):
# 2**20 * 2**32 * 2**23 = 2**75, and 2**75 // 3600 < 2**64. The ledger checks them when an order is placed.
MAX_ORDER_QUANTITY = 2**20
MAX_UNIT_PRICE = 2**32
MAX_LEASE_SECONDS = 2**23

OrderKey = tuple[int, int, bytes]
"""Priority key, smallest first: offers (min_price, seq, order_id), bids (-max_price, seq, order_id)."""


@dataclass(slots=True)
class Offer:
    """A provider's resting sell order; `quantity` is what is still unsold."""

    order_id: bytes
    owner: bytes
    resource_class: str
    region: str
    quantity: int
    min_price: int
    available_from: int
    available_until: int
    seq: int


@dataclass(slots=True)
class Bid:
    """A consumer's resting buy order; `quantity` is what is still wanted."""

    order_id: bytes
    owner: bytes
    resource_class: str
    region: str
    quantity: int
    max_price: int
    duration: int
    expires_at: int
    seq: int


Order = Offer | Bid


@dataclass(frozen=True, slots=True)
class Fill:
    """One match of a bid with an offer; it becomes one lease running [now, now + duration)."""

    bid_id: bytes
    offer_id: bytes
    buyer: bytes
    provider: bytes
    resource_class: str
    region: str
    quantity: int
    price: int
    duration: int
    round: int


@dataclass(frozen=True, slots=True)
class ClearingRound:
    """The fills of one round, all at the round's uniform price."""

    price: int
    fills: tuple[Fill, ...]


@dataclass(frozen=True, slots=True)
class BookClearing:
    """What clearing one book did; `complete` is False when the work bound stopped it early."""

    resource_class: str
    region: str
    rounds: tuple[ClearingRound, ...]
    complete: bool

    @property
    def fills(self) -> tuple[Fill, ...]:
        return tuple(fill for clearing_round in self.rounds for fill in clearing_round.fills)


@dataclass(frozen=True, slots=True)
class Quote:
    """What a new bid would get now: `quantity` units, clearing at `price` if `price` is its max price."""

    quantity: int
    price: int
    cost: int


def lease_cost(quantity: int, price: int, duration: int) -> int:
    """Cost of `quantity` units for `duration` seconds at `price` per unit-hour, rounded down (floor).

    Exact for all non-negative integers (no overflow in Python); below 2**64 within the MAX_* bounds.
    """
    if type(quantity) is not int or type(price) is not int or type(duration) is not int:
        raise ValueError(f"quantity, price, duration must be integers: {quantity!r}, {price!r}, {duration!r}")
    if quantity < 0 or price < 0 or duration < 0:
        raise ValueError(f"quantity, price, duration must be non-negative: {quantity}, {price}, {duration}")
    return quantity * price * duration // SECONDS_PER_HOUR


def offer_key(offer: Offer) -> OrderKey:
    return (offer.min_price, offer.seq, offer.order_id)


def bid_key(bid: Bid) -> OrderKey:
    return (-bid.max_price, bid.seq, bid.order_id)


class WindowIndex:
    """Offer keys in priority order, cut into blocks that each know their latest `available_until`.

    `_bound` caches the running maximum of those latest windows, block by block: removing an offer only
    lowers windows, so the cache stays an upper bound that answers "nothing fits" at once; an insertion or
    the removal of a whole block (which shifts block positions) drops it.
    """

    __slots__ = ("_blocks", "_bound", "_firsts", "_latest", "_load", "_untils")

    def __init__(self, load: int = 128) -> None:
        self._load = load
        self._blocks: list[list[OrderKey]] = []
        self._untils: list[list[int]] = []
        self._latest: list[int] = []
        self._firsts: list[OrderKey] = []
        self._bound: list[int] | None = None

    def _block_of(self, key: OrderKey) -> int:
        return max(bisect_right(self._firsts, key) - 1, 0)

    def add(self, key: OrderKey, until: int) -> None:
        self._bound = None
        if not self._blocks:
            self._blocks.append([key])
            self._untils.append([until])
            self._latest.append(until)
            self._firsts.append(key)
            return
        index = self._block_of(key)
        block, untils = self._blocks[index], self._untils[index]
        position = bisect_left(block, key)
        block.insert(position, key)
        untils.insert(position, until)
        self._latest[index] = max(self._latest[index], until)
        self._firsts[index] = block[0]
        if len(block) > 2 * self._load:
            half = len(block) // 2
            self._blocks[index + 1 : index + 1] = [block[half:]]
            self._untils[index + 1 : index + 1] = [untils[half:]]
            del block[half:], untils[half:]
            self._latest[index : index + 1] = [max(untils), max(self._untils[index + 1])]
            self._firsts.insert(index + 1, self._blocks[index + 1][0])

    def remove(self, key: OrderKey) -> None:
        index = self._block_of(key)
        block, untils = self._blocks[index], self._untils[index]
        position = bisect_left(block, key)
        if position == len(block) or block[position] != key:
            raise KeyError(key)
        del block[position]
        until = untils.pop(position)
        if not block:
            del self._blocks[index], self._untils[index], self._latest[index], self._firsts[index]
            self._bound = None
            return
        self._firsts[index] = block[0]
        if until == self._latest[index]:
            self._latest[index] = max(untils)

    def __len__(self) -> int:
        return sum(len(block) for block in self._blocks)

    def __iter__(self) -> Iterator[OrderKey]:
        for block in self._blocks:
            yield from block

    def lowest(self) -> OrderKey | None:
        return self._firsts[0] if self._firsts else None

    def fitting(self, need: int) -> Iterator[OrderKey]:
        """Keys whose `available_until >= need`, in priority order, skipping blocks that end too early."""
        for index, latest in enumerate(self._latest):
            if latest < need:
                continue
            for key, until in zip(self._blocks[index], self._untils[index], strict=True):
                if until >= need:
                    yield key

    def best_fitting(self, need: int, price_cap: int) -> OrderKey | None:
        """The first key with `available_until >= need` and a price at most `price_cap`, if any."""
        reachable = bisect_right(self._firsts, (price_cap + 1,))
        if reachable == 0:
            return None
        if self._bound is None:
            self._bound = list(accumulate(self._latest, max))
        if self._bound[reachable - 1] < need:
            return None
        for index in range(reachable):
            if self._latest[index] < need:
                continue
            for key, until in zip(self._blocks[index], self._untils[index], strict=True):
                if key[0] > price_cap:
                    return None
                if until >= need:
                    return key
        return None


class Book:
    """The resting orders of one (class, region): bids and offers in priority order.

    Bids are also grouped by duration (every bid of a group wants the same offers, so one that finds no
    crossing offer rules out the rest of its group), with `tops` holding each group's first bid. Offers whose
    window has opened by the last `sync` time sit in `active`; the others wait in `pending`.
    """

    __slots__ = ("active", "active_from", "groups", "pending", "tops", "watermark")

    def __init__(self) -> None:
        self.groups: dict[int, SortedList] = {}
        self.tops: SortedList = SortedList()
        self.active = WindowIndex()
        self.active_from: SortedList = SortedList()
        self.pending: SortedList = SortedList()
        self.watermark = 2**63

    def add_bid(self, key: OrderKey, duration: int) -> None:
        group = self.groups.get(duration)
        if group is None:
            group = self.groups[duration] = SortedList()
        elif key < group[0]:
            self.tops.remove((group[0], duration))
        else:
            group.add(key)
            return
        group.add(key)
        self.tops.add((key, duration))

    def remove_bid(self, key: OrderKey, duration: int) -> None:
        group = self.groups[duration]
        if group[0] != key:
            group.remove(key)
            return
        self.tops.remove((key, duration))
        group.remove(key)
        if group:
            self.tops.add((group[0], duration))
        else:
            del self.groups[duration]

    def next_in_group(self, duration: int, key: OrderKey) -> OrderKey | None:
        """The bid that follows `key` (resting or not) in its duration group, if any."""
        group = self.groups.get(duration)
        if group is None:
            return None
        index = group.bisect_right(key)
        return group[index] if index < len(group) else None

    def add_offer(self, key: OrderKey, available_from: int, available_until: int) -> None:
        if available_from <= self.watermark:
            self.active.add(key, available_until)
            self.active_from.add((available_from, available_until, key))
        else:
            self.pending.add((available_from, available_until, key))

    def remove_offer(self, key: OrderKey, available_from: int, available_until: int) -> None:
        entry = (available_from, available_until, key)
        if available_from <= self.watermark:
            self.active.remove(key)
            self.active_from.remove(entry)
        else:
            self.pending.remove(entry)

    def sync(self, now: int) -> None:
        """Make `active` hold exactly the offers with `available_from <= now`."""
        while self.active_from and self.active_from[-1][0] > now:
            entry = self.active_from.pop()
            self.active.remove(entry[2])
            self.pending.add(entry)
        while self.pending and self.pending[0][0] <= now:
            entry = self.pending.pop(0)
            self.active.add(entry[2], entry[1])
            self.active_from.add(entry)
        self.watermark = now

    def bid_keys(self) -> Iterator[OrderKey]:
        """Every bid's key, in priority order."""
        return merge(*self.groups.values())

    def offer_keys(self) -> Iterator[OrderKey]:
        """Every offer's key, open or not, in priority order."""
        return merge(self.active, sorted(entry[2] for entry in self.pending))

    def opens_within(self, after: int, now: int) -> bool:
        """Whether an offer's window opens in (after, now]."""
        for schedule in (self.active_from, self.pending):
            index = schedule.bisect_left((after + 1,))
            if index < len(schedule) and schedule[index][0] <= now:
                return True
        return False
