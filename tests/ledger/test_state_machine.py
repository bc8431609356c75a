"""Random blocks of valid and invalid transactions against the ledger's invariants (hypothesis stateful)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from ledger.keys import PrivateKey
from ledger.leases import LeaseStatus
from ledger.market import lease_cost
from ledger.receipts import EventKind, ReceiptCode
from ledger.records import BidRecord, OfferRecord
from ledger.state import BlockContext, LedgerState
from ledger.tx import BidBody, Body, Cancel, Close, Grant, OfferBody, Transaction, Transfer, sign_transaction

CHAIN_ID = "fedmarket-test"
PROPOSER = b"\x01" * 32
PAUPER = PrivateKey(b"\x44" * 32)

classes = st.sampled_from(["cpu.small", "cpu.small", "cpu.small", "gpu.a100", "tpu"])
regions = st.sampled_from(["eu-west", "eu-west", "eu-west", "us-east", "mars"])
quantities = st.integers(1, 12)
offer_prices = st.integers(1, 300)
bid_prices = st.integers(100, 400)
defects = st.sampled_from(["none"] * 6 + ["quantity", "price", "time"])  # one field out of range, sometimes
advances = st.sampled_from([1, 400, 1_000, 2_500, 9_000, 45_000, 200_000, 3_700_000])


def machine_for(driver_factory: Callable[..., Any], users: list[PrivateKey], **market: int) -> type:
    keys = [*users, PAUPER]

    class LedgerMachine(RuleBasedStateMachine):
        @initialize()
        def start(self) -> None:
            driver = driver_factory(**market)
            self.genesis = driver.genesis
            self.state: LedgerState = driver.state
            self.replica, _ = LedgerState.from_genesis(self.genesis)
            self.stored: dict[bytes, bytes] = dict(driver.stored)
            self.supply = self.genesis.total_supply
            self.time_ms = self.genesis.genesis_time_ms
            self.nonces: dict[bytes, int] = defaultdict(int)
            self.pending: list[Transaction] = []
            self.applied: list[Transaction] = []
            self.order_ids: list[bytes] = []
            self.lease_ids: list[bytes] = []
            self.offers: dict[bytes, OfferBody] = {}
            self.bids: dict[bytes, BidBody] = {}
            self.cleared = False

        @property
        def now(self) -> int:
            return self.time_ms // 1000

        def sign(self, key_index: int, body: Body, nonce_shift: int = 0) -> None:
            key = keys[key_index]
            nonce = self.nonces[key.public.raw] + nonce_shift
            if nonce_shift == 0:
                self.nonces[key.public.raw] += 1
            self.pending.append(sign_transaction(key, CHAIN_ID, nonce, body))

        @rule(sender=st.integers(0, 4), to=st.integers(0, 4), amount=st.integers(0, 10**12 + 5))
        def transfer(self, sender: int, to: int, amount: int) -> None:
            self.sign(sender, Transfer(keys[to].public.raw, amount))

        @rule(
            sender=st.integers(0, 4),
            rc=classes,
            region=regions,
            quantity=quantities,
            price=offer_prices,
            start=st.sampled_from([-100, -1, 0, 5, 90]),
            length=st.sampled_from([1, 700, 7_300, 20_000]),
            defect=defects,
        )
        def offer(
            self,
            sender: int,
            rc: str,
            region: str,
            quantity: int,
            price: int,
            start: int,
            length: int,
            defect: str,
        ) -> None:
            quantity, price = (0 if defect == "quantity" else quantity), (0 if defect == "price" else price)
            length = -length if defect == "time" else length
            self.sign(
                sender,
                OfferBody(
                    rc, region, quantity, price, max(self.now + start, 0), max(self.now + start + length, 0)
                ),
            )

        @rule(
            sender=st.integers(0, 4),
            rc=classes,
            region=regions,
            quantity=quantities,
            price=bid_prices,
            duration=st.sampled_from([1, 60, 600, 3_600, 7_200]),
            expires=st.sampled_from([1, 30, 600]),
            defect=defects,
        )
        def bid(
            self,
            sender: int,
            rc: str,
            region: str,
            quantity: int,
            price: int,
            duration: int,
            expires: int,
            defect: str,
        ) -> None:
            quantity, price = (0 if defect == "quantity" else quantity), (0 if defect == "price" else price)
            expires_at = self.now - expires if defect == "time" else self.now + expires
            key = keys[sender].public.x25519()
            self.sign(sender, BidBody(rc, region, quantity, price, duration, max(expires_at, 0), key))

        @rule(
            provider=st.integers(0, 3),
            buyer=st.integers(0, 3),
            book=st.sampled_from([("cpu.small", "eu-west"), ("gpu.a100", "us-east")]),
            offered=st.integers(1, 9),
            wanted=st.integers(1, 9),
            low=st.integers(1, 200),
            spread=st.integers(0, 200),
            duration=st.sampled_from([1, 45, 600, 3_600]),
        )
        def crossing_pair(
            self,
            provider: int,
            buyer: int,
            book: tuple[str, str],
            offered: int,
            wanted: int,
            low: int,
            spread: int,
            duration: int,
        ) -> None:
            self.sign(provider, OfferBody(book[0], book[1], offered, low, self.now - 5, self.now + 8_000))
            key = keys[buyer].public.x25519()
            self.sign(buyer, BidBody(book[0], book[1], wanted, low + spread, duration, self.now + 900, key))

        @rule(sender=st.integers(0, 4), pick=st.integers(0, 1_000), owner=st.booleans())
        def cancel(self, sender: int, pick: int, owner: bool) -> None:
            order_id = self.order_ids[pick % len(self.order_ids)] if self.order_ids else b"\x07" * 32
            order = self.state.order(order_id)
            if owner and order is not None:
                sender = next(i for i, k in enumerate(keys) if k.public.raw == order.owner)
            self.sign(sender, Cancel(order_id))

        def party(self, address: bytes) -> int:
            return next(i for i, k in enumerate(keys) if k.public.raw == address)

        @precondition(lambda self: self.lease_ids)
        @rule(pick=st.integers(0, 1_000), outsider=st.sampled_from([False, False, False, True]))
        def grant(self, pick: int, outsider: bool) -> None:
            lease = self.state.lease(self.lease_ids[pick % len(self.lease_ids)])
            assert lease is not None
            sender = 4 if outsider else self.party(lease.provider)
            self.sign(sender, Grant(lease.lease_id, b"sealed"))

        @precondition(lambda self: self.lease_ids)
        @rule(pick=st.integers(0, 1_000), by_buyer=st.booleans(), reason=st.text(max_size=8))
        def close(self, pick: int, by_buyer: bool, reason: str) -> None:
            lease = self.state.lease(self.lease_ids[-1 - pick % len(self.lease_ids)])
            assert lease is not None
            self.sign(self.party(lease.buyer if by_buyer else lease.provider), Close(lease.lease_id, reason))

        @rule(sender=st.integers(0, 4), shift=st.sampled_from([-1, 1, 3]))
        def wrong_nonce(self, sender: int, shift: int) -> None:
            if self.nonces[keys[sender].public.raw] + shift >= 0:
                self.sign(sender, Transfer(keys[0].public.raw, 1), nonce_shift=shift)

        @rule(pick=st.integers(0, 1_000))
        def replay(self, pick: int) -> None:
            if self.applied:
                self.pending.append(self.applied[pick % len(self.applied)])

        @rule(advance=advances)
        def abandoned_proposal(self, advance: int) -> None:
            before = self.snapshot(self.state)
            ctx = BlockContext(self.state.height + 1, self.time_ms + advance, PROPOSER)
            execution = self.state.execute(ctx, self.pending)
            self.state.rollback(execution)
            assert self.snapshot(self.state) == before

        @rule(advance=advances)
        def commit(self, advance: int) -> None:
            self.time_ms += advance
            ctx = BlockContext(self.state.height + 1, self.time_ms, PROPOSER)
            execution = self.state.execute(ctx, self.pending)
            again = self.replica.execute(ctx, self.pending)
            assert again.state_root == execution.state_root and again.receipts == execution.receipts
            assert again.events == execution.events and again.writes == execution.writes
            for tx, receipt in zip(self.pending, execution.receipts, strict=True):
                if tx in self.applied:
                    assert receipt.code == ReceiptCode.BAD_NONCE
                if receipt.code == ReceiptCode.OK and isinstance(tx.body, OfferBody):
                    self.offers[tx.hash] = tx.body
                    self.order_ids.append(tx.hash)
                elif receipt.code == ReceiptCode.OK and isinstance(tx.body, BidBody):
                    self.bids[tx.hash] = tx.body
                    self.order_ids.append(tx.hash)
            self.lease_ids.extend(e.subject for e in execution.events if e.kind == EventKind.LEASE_CREATED)
            self.applied.extend(
                tx
                for tx, r in zip(self.pending, execution.receipts, strict=True)
                if r.code != ReceiptCode.BAD_NONCE
            )
            self.pending = []
            for key, value in execution.writes.items():
                if value is None:
                    self.stored.pop(key, None)
                else:
                    self.stored[key] = value
            self.cleared = ctx.height % self.genesis.market_params.auction_period_blocks == 0

        @rule()
        def reopen(self) -> None:
            self.replica = LedgerState.load(self.genesis, sorted(self.stored.items()))
            assert self.snapshot(self.replica) == self.snapshot(self.state)

        @staticmethod
        def snapshot(state: LedgerState) -> tuple[Any, ...]:
            return (
                state.state_root,
                state.height,
                list(state.accounts()),
                list(state.orders()),
                list(state.leases()),
            )

        @invariant()
        def credits_are_conserved_and_covered(self) -> None:
            if not hasattr(self, "state"):
                return
            state = self.state
            owed: dict[bytes, int] = defaultdict(int)
            for order in state.orders():
                if isinstance(order, BidRecord):
                    assert order.escrow == lease_cost(order.quantity, order.max_price, order.duration)
                    owed[order.owner] += order.escrow
            for lease in state.leases():
                if lease.status in (LeaseStatus.AWAITING_GRANT, LeaseStatus.ACTIVE):
                    owed[lease.buyer] += lease.escrow
                else:
                    assert lease.provider_paid + lease.buyer_refunded == lease.escrow
            total = 0
            for address, account in state.accounts():
                assert account.balance >= 0 and account.escrow >= 0
                assert account.escrow == owed.pop(address, 0)
                total += account.balance + account.escrow
            assert not owed and total == self.supply

        @invariant()
        def trades_respect_orders(self) -> None:
            if not hasattr(self, "state"):
                return
            sold: dict[bytes, int] = defaultdict(int)
            for lease in self.state.leases():
                sold[lease.offer_id] += lease.quantity
                assert (
                    self.offers[lease.offer_id].min_price <= lease.price <= self.bids[lease.bid_id].max_price
                )
            for offer_id, quantity in sold.items():
                assert quantity <= self.offers[offer_id].quantity
                still = self.state.order(offer_id)
                assert still is None or still.quantity + quantity == self.offers[offer_id].quantity

        @invariant()
        def market_mirrors_the_records_and_no_book_is_left_crossed(self) -> None:
            if not hasattr(self, "state"):
                return
            state = self.state
            assert len(state.market) == len(list(state.orders()))
            for order in state.orders():
                entry = state.market.get(order.order_id)
                assert entry is not None and entry.quantity == order.quantity
            if not self.cleared:
                return
            now = state.last_timestamp_ms // 1000
            open_bids = [o for o in state.orders() if isinstance(o, BidRecord) and o.expires_at > now]
            for offer in state.orders():
                if not isinstance(offer, OfferRecord) or offer.available_from > now:
                    continue
                if (offer.resource_class, offer.region) in state.pending_books():
                    continue
                for bid in open_bids:
                    crossed = (
                        (bid.resource_class, bid.region) == (offer.resource_class, offer.region)
                        and bid.max_price >= offer.min_price
                        and offer.available_until >= now + bid.duration
                    )
                    assert not crossed, (offer, bid)

    return LedgerMachine


def test_random_blocks_keep_every_invariant(
    driver_factory: Callable[..., Any], users: list[PrivateKey]
) -> None:
    machine = machine_for(driver_factory, users, grant_deadline_s=120)
    run_state_machine_as_test(
        machine, settings=settings(max_examples=60, stateful_step_count=40, deadline=None)
    )


def test_random_blocks_with_tight_work_bounds(
    driver_factory: Callable[..., Any], users: list[PrivateKey]
) -> None:
    machine = machine_for(
        driver_factory,
        users,
        grant_deadline_s=20,
        auction_period_blocks=2,
        max_matches_per_block=2,
        max_clearing_steps=12,
        max_expiries_per_block=2,
    )
    run_state_machine_as_test(
        machine, settings=settings(max_examples=60, stateful_step_count=40, deadline=None)
    )
