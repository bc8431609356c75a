"""Settlement: fills become leases, escrow moves, leases and orders expire at block time.

Theory: every credit movement here moves an amount between one account's escrow and a balance (its own or the
provider's), so sum(balances) + sum(escrow) never changes. A bid holds exactly cost(remaining) =
lease_cost(remaining, max_price, duration) in escrow; a fill of `q` units releases
cost(remaining) - cost(remaining - q), which telescopes: the releases of all fills of a bid plus the final
refund (on expiry or cancel) sum to what was escrowed. Automatic work (lease timers, order expiries) is done
in a fixed order (time, then id) and at most `max_expiries_per_block` items per block; the rest waits for the
next block, and a transaction that arrives in between sees the same rule (a grant after its deadline is
refused).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from ledger.leases import Lease, LeaseStatus, close_split, lease_id
from ledger.market import Bid, Fill, lease_cost
from ledger.receipts import Event, EventKind
from ledger.records import BidRecord, OfferRecord
from ledger.state_meta import PRICE_HISTORY, BookKey, PricePoint

if TYPE_CHECKING:
    from ledger.state import LedgerState


def refund_bid(state: LedgerState, record: BidRecord) -> None:
    """Return a closed bid's remaining escrow to its owner."""
    if record.escrow:
        owner = state.touch_account(record.owner)
        owner.escrow -= record.escrow
        owner.balance += record.escrow
        state.events.append(Event(EventKind.REFUND, record.order_id, (record.owner, record.escrow)))


def close_lease(state: LedgerState, lease: Lease, closed_by: bytes, reason: str, now: int) -> None:
    """Settle a live lease early. Before any grant nothing is owed (buyer refunded in full); after it, pro
    rata to the time used, the provider's share rounded down."""
    if lease.status == LeaseStatus.AWAITING_GRANT:
        provider_share, buyer_share = 0, lease.escrow
    else:
        provider_share, buyer_share = close_split(lease.escrow, lease.start, lease.end, now)
    _pay_out(state, lease, provider_share, buyer_share)
    state.set_lease(
        replace(
            lease,
            status=LeaseStatus.CLOSED,
            settled_at=now,
            provider_paid=provider_share,
            buyer_refunded=buyer_share,
            close_reason=reason,
        )
    )
    state.events.append(
        Event(EventKind.LEASE_CLOSED, lease.lease_id, (closed_by, reason, provider_share, buyer_share))
    )
    if lease.status == LeaseStatus.ACTIVE:
        state.events.append(Event(EventKind.GRANT_REVOKED, lease.lease_id, (lease.provider, lease.buyer)))


def _pay_out(state: LedgerState, lease: Lease, provider_share: int, buyer_share: int) -> None:
    buyer = state.touch_account(lease.buyer)
    buyer.escrow -= provider_share + buyer_share
    buyer.balance += buyer_share
    if provider_share:
        state.touch_account(lease.provider).balance += provider_share


def _fire_timer(state: LedgerState, lease: Lease, now: int) -> None:
    if lease.status == LeaseStatus.AWAITING_GRANT:
        _pay_out(state, lease, 0, lease.escrow)
        state.set_lease(
            replace(lease, status=LeaseStatus.CANCELLED, settled_at=now, buyer_refunded=lease.escrow)
        )
        state.events.append(Event(EventKind.LEASE_CANCELLED, lease.lease_id, (lease.buyer, lease.escrow)))
        return
    _pay_out(state, lease, lease.escrow, 0)
    state.set_lease(replace(lease, status=LeaseStatus.ENDED, settled_at=now, provider_paid=lease.escrow))
    state.events.append(Event(EventKind.LEASE_ENDED, lease.lease_id, (lease.provider, lease.escrow)))
    state.events.append(Event(EventKind.GRANT_REVOKED, lease.lease_id, (lease.provider, lease.buyer)))


def run_expiries(state: LedgerState, now: int) -> None:
    """Lease timers due by `now` (time, then lease id), then orders due (time, then order id), bounded."""
    budget = state.params.max_expiries_per_block
    timers = state.lease_timers
    while budget and timers and timers[0][0] <= now:
        _fire_timer(state, state.leases_by_id[timers[0][1]], now)
        budget -= 1
    if not budget:
        return
    for order in state.market.expired(now, budget):
        record = state.orders_by_id[order.order_id]
        state.drop_order(order.order_id)
        state.events.append(Event(EventKind.ORDER_EXPIRED, order.order_id, (record.owner,)))
        if isinstance(order, Bid):
            assert isinstance(record, BidRecord)
            refund_bid(state, record)


def clear_books(state: LedgerState, books: set[BookKey], now: int, height: int) -> None:
    """Clear the pending books within the block's work bound; books cleared completely leave `books`."""
    params = state.params
    clearings = state.market.clear(
        sorted(books), now, params.max_matches_per_block, params.max_clearing_steps
    )
    fill_index = 0
    for clearing in clearings:
        book = (clearing.resource_class, clearing.region)
        for round_index, clearing_round in enumerate(clearing.rounds):
            quantity = 0
            for fill in clearing_round.fills:
                apply_fill(state, fill, height, fill_index, now)
                fill_index += 1
                quantity += fill.quantity
            state.record_price(book, PricePoint(height, clearing_round.price, quantity), PRICE_HISTORY)
            state.events.append(
                Event(
                    EventKind.BOOK_CLEARED,
                    b"",
                    (book[0], book[1], round_index, clearing_round.price, quantity, clearing.complete),
                )
            )
        if clearing.complete:
            books.discard(book)


def apply_fill(state: LedgerState, fill: Fill, height: int, fill_index: int, now: int) -> None:
    """Turn one fill into a lease: cut the bid's escrow to the clearing price, refund the difference.

    With cost(x) = floor(x * max_price * d / 3600) and `q` units filled out of `r` remaining, the bid releases
    cost(r) - cost(r - q). The lease needs floor(q * price * d / 3600) <= floor(q * max_price * d / 3600)
    (price <= max_price), and floor(a + b) >= floor(a) + floor(b) with a = (r - q) * max_price * d / 3600,
    b = q * max_price * d / 3600 gives cost(r) >= cost(r - q) + floor(b): the release always covers the lease,
    and the difference (>= 0) goes back to the buyer's balance at the match.
    """
    bid = state.orders_by_id[fill.bid_id]
    offer = state.orders_by_id[fill.offer_id]
    assert isinstance(bid, BidRecord) and isinstance(offer, OfferRecord)
    remaining = bid.quantity - fill.quantity
    escrow_left = lease_cost(remaining, bid.max_price, bid.duration)
    released = bid.escrow - escrow_left
    lease_escrow = lease_cost(fill.quantity, fill.price, bid.duration)
    refund = released - lease_escrow
    assert refund >= 0 and offer.min_price <= fill.price <= bid.max_price
    buyer = state.touch_account(bid.owner)
    buyer.escrow -= refund
    buyer.balance += refund
    if remaining:
        state.set_order(bid.with_quantity(remaining, escrow_left))
    else:
        state.drop_order(bid.order_id)
    if offer.quantity > fill.quantity:
        state.set_order(offer.with_quantity(offer.quantity - fill.quantity))
    else:
        state.drop_order(offer.order_id)
    new_lease = Lease(
        lease_id=lease_id(bid.order_id, offer.order_id, height, fill_index),
        bid_id=bid.order_id,
        offer_id=offer.order_id,
        buyer=bid.owner,
        provider=offer.owner,
        resource_class=fill.resource_class,
        region=fill.region,
        quantity=fill.quantity,
        price=fill.price,
        start=now,
        end=now + bid.duration,
        escrow=lease_escrow,
        access_key=bid.access_key,
        grant_deadline=now + state.params.grant_deadline_s,
    )
    state.set_lease(new_lease)
    state.events.append(
        Event(
            EventKind.LEASE_CREATED,
            new_lease.lease_id,
            (
                bid.order_id,
                offer.order_id,
                bid.owner,
                offer.owner,
                fill.resource_class,
                fill.region,
                fill.quantity,
                fill.price,
                new_lease.start,
                new_lease.end,
                lease_escrow,
                refund,
            ),
        )
    )
