"""The ledger state machine: applies a block's transactions, clears the market, settles and expires.

Theory: the state is a deterministic function of genesis and the blocks applied, computed with integers only.
`execute` applies a block in place and records, for every record it touches, the record's value before the
block (first touch only), so `rollback` restores the last block in O(changes) and each touched record is
encoded once per block. The state root chains every block's writes:
root_h = H(tag, root_{h-1} || height || sorted writes), so two nodes whose states diverge disagree at the
first block where they differ (it proves agreement on the history of writes, not membership of one key).
Order within a block: the transactions in order; then books where an offer's window opened are marked for
clearing; then expiries (lease timers, then orders), bounded per block and carried over; then, at clearing
heights, the market clearing of the marked books (ledger.settlement).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace

import msgpack
from sortedcontainers import SortedList  # type: ignore[import-untyped]

from ledger import settlement
from ledger.errors import LedgerError
from ledger.genesis import Genesis
from ledger.leases import Lease, LeaseStatus
from ledger.market import Market, lease_cost
from ledger.receipts import Event, Receipt, ReceiptCode, TxRejected, decode_results, encode_results
from ledger.records import (
    Account,
    AccountRecord,
    BidRecord,
    OfferRecord,
    OrderRecord,
)
from ledger.schema import account_key, lease_key, order_key
from ledger.state_load import load_into
from ledger.state_meta import CLOCK_KEY, BookKey, PricePoint, StateMeta, encode_prices, price_key, root_of
from ledger.tx import BidBody, Cancel, Close, Grant, OfferBody, Transaction, Transfer


@dataclass(frozen=True, slots=True)
class BlockContext:
    height: int
    timestamp_ms: int
    proposer: bytes


@dataclass
class Undo:
    """Each record's value before the block (None: it did not exist), and the bookkeeping before it."""

    meta: StateMeta
    accounts: dict[bytes, tuple[int, int, int] | None] = field(default_factory=dict)
    orders: dict[bytes, OrderRecord | None] = field(default_factory=dict)
    leases: dict[bytes, Lease | None] = field(default_factory=dict)
    prices: dict[BookKey, tuple[PricePoint, ...]] = field(default_factory=dict)


@dataclass
class Execution:
    receipts: list[Receipt]
    events: list[Event]
    writes: dict[bytes, bytes | None]
    state_root: bytes
    height: int
    undo: Undo = field(repr=False)

    def encode_results(self) -> bytes:
        return encode_results(self.receipts, self.events)

    @staticmethod
    def decode_results(data: bytes) -> tuple[list[Receipt], list[Event]]:
        return decode_results(data)


_OK = ReceiptCode.OK  # an enum member lookup costs about 0.2 us on Python 3.11; this is once per transaction


class Refused(Exception):
    """A rule a transaction breaks; it becomes the transaction's failure receipt."""

    def __init__(self, code: ReceiptCode, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


class LedgerState:
    def __init__(self, genesis: Genesis) -> None:
        self.genesis = genesis
        self.chain_id = genesis.chain_id
        self.params = genesis.market_params
        self._classes = frozenset(genesis.resource_classes)
        self._regions = frozenset(genesis.regions)
        self.market = Market(genesis.resource_classes, genesis.regions)
        self.meta = StateMeta(0, genesis.genesis_time_ms, 0, frozenset(), genesis.hash())
        self.accounts_by_address: dict[bytes, AccountRecord] = {}
        self.orders_by_id: dict[bytes, OrderRecord] = {}
        self.leases_by_id: dict[bytes, Lease] = {}
        self.lease_timers: SortedList = SortedList()  # (time, lease id) of every live lease
        self.prices: dict[BookKey, tuple[PricePoint, ...]] = {}
        # The block being executed.
        self._undo = Undo(self.meta)
        self.events: list[Event] = []
        self._next_seq = 0
        self._books: set[BookKey] = set()
        self._last: Execution | None = None
        # Packs the records of `_writes` as `pack_record` does, without a new Packer (and its buffer) per
        # record; one per state, which is used from one thread only.
        self._pack: Callable[[object], bytes] = msgpack.Packer().pack

    @classmethod
    def from_genesis(cls, genesis: Genesis) -> tuple[LedgerState, dict[bytes, bytes]]:
        """The state before block 1 and the writes that store it."""
        state = cls(genesis)
        writes: dict[bytes, bytes | None] = {}
        for address, amount in genesis.balances:
            record = AccountRecord(amount, 0, 0)
            state.accounts_by_address[address] = record
            writes[account_key(address)] = record.encode()
        writes[CLOCK_KEY] = state.meta.encode_clock()
        state.meta = replace(state.meta, state_root=root_of(genesis.hash(), 0, writes))
        writes.update(state.meta.root_write())
        return state, {key: value for key, value in writes.items() if value is not None}

    @classmethod
    def load(cls, genesis: Genesis, items: Iterable[tuple[bytes, bytes]]) -> LedgerState:
        """Rebuild the state from every (key, value) stored under STATE_PREFIX; defects raise LedgerError."""
        state = cls(genesis)
        load_into(state, items)
        return state

    # ---- queries ------------------------------------------------------------------------------------

    @property
    def height(self) -> int:
        return self.meta.height

    @property
    def state_root(self) -> bytes:
        return self.meta.state_root

    @property
    def last_timestamp_ms(self) -> int:
        return self.meta.last_timestamp_ms

    def account(self, address: bytes) -> Account:
        record = self.accounts_by_address.get(address)
        return Account(0, 0, 0) if record is None else record.public()

    def accounts(self) -> Iterator[tuple[bytes, Account]]:
        for address in sorted(self.accounts_by_address):
            yield address, self.accounts_by_address[address].public()

    def order(self, order_id: bytes) -> OrderRecord | None:
        """An open order's record (with its escrow, access key and plan reference), None once closed."""
        return self.orders_by_id.get(order_id)

    def orders(self) -> Iterator[OrderRecord]:
        for order_id in sorted(self.orders_by_id):
            yield self.orders_by_id[order_id]

    def lease(self, lease_id: bytes) -> Lease | None:
        return self.leases_by_id.get(lease_id)

    def leases(self, owner: bytes | None = None) -> Iterator[Lease]:
        """Every lease (live or settled) in id order, or those where `owner` is the buyer or provider."""
        for key in sorted(self.leases_by_id):
            found = self.leases_by_id[key]
            if owner is None or owner in (found.buyer, found.provider):
                yield found

    def last_prices(self, resource_class: str, region: str) -> tuple[PricePoint, ...]:
        """Recent clearing rounds of a book, oldest first: the last one holds the last clearing price."""
        return self.prices.get((resource_class, region), ())

    def last_price(self, resource_class: str, region: str) -> int | None:
        history = self.prices.get((resource_class, region))
        return history[-1].price if history else None

    def pending_books(self) -> frozenset[BookKey]:
        """Books to clear at the next clearing height (touched, opened, or left incomplete)."""
        return self.meta.books

    # ---- mempool admission --------------------------------------------------------------------------

    def check(self, tx: Transaction) -> None:
        """Raise `TxRejected` if the current state would refuse `tx` (nonce used, funds short, unknown book,
        bad window). A nonce above the next one passes: a mempool may hold a sender's consecutive txs."""
        if tx.chain_id != self.chain_id:
            raise TxRejected(ReceiptCode.WRONG_CHAIN, f"transaction is for chain {tx.chain_id!r}")
        record = self.accounts_by_address.get(tx.sender)
        next_nonce = 0 if record is None else record.next_nonce
        if tx.nonce < next_nonce:
            raise TxRejected(ReceiptCode.BAD_NONCE, f"nonce {tx.nonce} already used (next is {next_nonce})")
        balance = 0 if record is None else record.balance
        now = self.meta.last_timestamp_ms // 1000
        body = tx.body
        try:
            if isinstance(body, Transfer):
                self._check_transfer(body, balance)
            elif isinstance(body, OfferBody):
                self._check_offer(body, now)
            elif isinstance(body, BidBody):
                self._check_bid(body, balance, now)
        except Refused as refused:
            raise TxRejected(refused.code, refused.detail) from None

    # ---- execution ----------------------------------------------------------------------------------

    def execute(self, ctx: BlockContext, txs: Sequence[Transaction]) -> Execution:
        """Apply a block in place (signatures are the caller's business) and return what it did."""
        meta = self.meta
        if ctx.height != meta.height + 1:
            raise LedgerError(f"block {ctx.height} does not follow height {meta.height}")
        if ctx.timestamp_ms <= meta.last_timestamp_ms:
            raise LedgerError("block timestamp is not later than the previous one")
        undo = self._undo = Undo(meta)
        events = self.events = []
        self._next_seq = meta.next_seq
        self._books = set(meta.books)
        now = ctx.timestamp_ms // 1000
        apply = self._apply
        try:
            receipts = [apply(tx, now, ctx.height) for tx in txs]
            self._books.update(self.market.opened(meta.last_timestamp_ms // 1000, now))
            settlement.run_expiries(self, now)
            if ctx.height % self.params.auction_period_blocks == 0 and self._books:
                settlement.clear_books(self, self._books, now, ctx.height)
        except BaseException:
            self._restore(undo)  # a bug must not leave a half-applied block behind
            raise
        self.meta = replace(
            meta,
            height=ctx.height,
            last_timestamp_ms=ctx.timestamp_ms,
            next_seq=self._next_seq,
            books=frozenset(self._books),
        )
        writes = self._writes(undo, meta)
        root = root_of(meta.state_root, ctx.height, writes)
        self.meta = replace(self.meta, state_root=root)
        writes.update(self.meta.root_write())
        execution = Execution(receipts, events, writes, root, ctx.height, undo)
        self._last = execution
        return execution

    def rollback(self, execution: Execution) -> None:
        """Undo the last `execute` exactly (a proposal that did not commit), in O(records it changed)."""
        if execution is not self._last:
            raise LedgerError("only the last executed block can be rolled back")
        self._restore(execution.undo)
        self._last = None

    def _restore(self, undo: Undo) -> None:
        for address, before in undo.accounts.items():
            if before is None:
                del self.accounts_by_address[address]
            else:
                record = self.accounts_by_address[address]
                record.balance, record.escrow, record.next_nonce = before
        for order_id, before_order in undo.orders.items():
            self.market.remove(order_id)
            self.orders_by_id.pop(order_id, None)
            if before_order is not None:
                self.orders_by_id[order_id] = before_order
                self.market.put(before_order.to_market())
        for lease_id, before_lease in undo.leases.items():
            current = self.leases_by_id.pop(lease_id, None)
            if current is not None:
                self._unindex_lease(current)
            if before_lease is not None:
                self._index_lease(before_lease)
        for book, before_prices in undo.prices.items():
            if before_prices:
                self.prices[book] = before_prices
            else:
                del self.prices[book]
        self.meta = undo.meta

    # ---- record changes: every change goes through these, so the undo log is complete ---------------

    def touch_account(self, address: bytes) -> AccountRecord:
        """The account's record, for changing in place (created empty if absent)."""
        record = self.accounts_by_address.get(address)
        accounts_before = self._undo.accounts
        if address not in accounts_before:
            accounts_before[address] = (
                None if record is None else (record.balance, record.escrow, record.next_nonce)
            )
        if record is None:
            record = self.accounts_by_address[address] = AccountRecord(0, 0, 0)
        return record

    def set_order(self, record: OrderRecord) -> None:
        """Insert or replace an order's record (the caller keeps the market entry in step)."""
        orders_before = self._undo.orders
        if record.order_id not in orders_before:
            orders_before[record.order_id] = self.orders_by_id.get(record.order_id)
        self.orders_by_id[record.order_id] = record

    def drop_order(self, order_id: bytes) -> None:
        """Remove an open order from the state and from the market."""
        orders_before = self._undo.orders
        if order_id not in orders_before:
            orders_before[order_id] = self.orders_by_id[order_id]
        del self.orders_by_id[order_id]
        self.market.remove(order_id)

    def set_lease(self, lease: Lease) -> None:
        before = self.leases_by_id.get(lease.lease_id)
        if lease.lease_id not in self._undo.leases:
            self._undo.leases[lease.lease_id] = before
        if before is not None:
            self._unindex_lease(before)
        self._index_lease(lease)

    def record_price(self, book: BookKey, point: PricePoint, keep: int) -> None:
        history = self.prices.get(book, ())
        if book not in self._undo.prices:
            self._undo.prices[book] = history
        self.prices[book] = (*history, point)[-keep:]

    def _index_lease(self, lease: Lease) -> None:
        self.leases_by_id[lease.lease_id] = lease
        timer = lease.timer_at
        if timer is not None:
            self.lease_timers.add((timer, lease.lease_id))

    def _unindex_lease(self, lease: Lease) -> None:
        timer = lease.timer_at
        if timer is not None:
            self.lease_timers.discard((timer, lease.lease_id))

    def _writes(self, undo: Undo, meta_before: StateMeta) -> dict[bytes, bytes | None]:
        writes: dict[bytes, bytes | None] = {}
        pack = self._pack
        accounts = self.accounts_by_address
        for address in undo.accounts:
            record = accounts[address]
            writes[account_key(address)] = pack([record.balance, record.escrow, record.next_nonce])
        orders = self.orders_by_id
        for order_id in undo.orders:
            order = orders.get(order_id)
            writes[order_key(order_id)] = None if order is None else pack(order.to_value())
        for lease_id in undo.leases:
            writes[lease_key(lease_id)] = self.leases_by_id[lease_id].encode()
        for book in undo.prices:
            writes[price_key(book)] = encode_prices(self.prices[book])
        writes[CLOCK_KEY] = self.meta.encode_clock()
        if self.meta.books != meta_before.books:
            writes.update(self.meta.books_write())
        return writes

    # ---- transactions -------------------------------------------------------------------------------

    def _apply(self, tx: Transaction, now: int, height: int) -> Receipt:
        if tx.chain_id != self.chain_id:
            return Receipt(tx.hash, ReceiptCode.WRONG_CHAIN, f"transaction is for chain {tx.chain_id!r}")
        sender = self.accounts_by_address.get(tx.sender)
        expected = 0 if sender is None else sender.next_nonce
        if tx.nonce != expected:
            return Receipt(tx.hash, ReceiptCode.BAD_NONCE, f"nonce {tx.nonce}, expected {expected}")
        accounts_before = self._undo.accounts
        if sender is None:
            sender = self.touch_account(tx.sender)
        elif tx.sender not in accounts_before:  # `touch_account` for a record already at hand
            accounts_before[tx.sender] = (sender.balance, sender.escrow, sender.next_nonce)
        sender.next_nonce += 1
        body = tx.body
        try:
            if isinstance(body, Transfer):
                amount = body.amount
                if not 1 <= amount <= sender.balance:
                    self._check_transfer(body, sender.balance)
                sender.balance -= amount
                self.touch_account(body.to).balance += amount
                return Receipt(tx.hash, _OK, "", ())
            if isinstance(body, OfferBody):
                self._place_offer(tx, body, now, height)
                return Receipt(tx.hash, _OK, "", (tx.hash,))
            if isinstance(body, BidBody):
                self._place_bid(tx, body, sender, now, height)
                return Receipt(tx.hash, _OK, "", (tx.hash,))
            if isinstance(body, Cancel):
                self._cancel(tx.sender, body.order_id)
                return Receipt(tx.hash, _OK, "", (body.order_id,))
            if isinstance(body, Grant):
                self._grant(tx.sender, body, now)
            else:
                self._close(tx.sender, body, now)
            return Receipt(tx.hash, _OK, "", (body.lease_id,))
        except Refused as refused:
            return Receipt(tx.hash, refused.code, refused.detail)

    def _check_transfer(self, body: Transfer, balance: int) -> None:
        if body.amount < 1:
            raise Refused(ReceiptCode.BAD_AMOUNT, "a transfer moves at least 1 micro-credit")
        if body.amount > balance:
            raise Refused(ReceiptCode.INSUFFICIENT_FUNDS, f"balance {balance} < amount {body.amount}")

    def _check_book(self, resource_class: str, region: str) -> None:
        if resource_class not in self._classes:
            raise Refused(ReceiptCode.UNKNOWN_CLASS, f"no resource class {resource_class!r} in genesis")
        if region not in self._regions:
            raise Refused(ReceiptCode.UNKNOWN_REGION, f"no region {region!r} in genesis")

    def _check_offer(self, body: OfferBody, now: int) -> None:
        self._check_book(body.resource_class, body.region)
        if body.quantity < 1 or body.min_price < 1:
            raise Refused(ReceiptCode.BAD_AMOUNT, "an offer needs quantity >= 1 and min_price >= 1")
        if body.available_from >= body.available_until:
            raise Refused(ReceiptCode.BAD_WINDOW, "available_from must be before available_until")
        if body.available_until <= now:
            raise Refused(ReceiptCode.BAD_WINDOW, f"the window ended at {body.available_until} (now {now})")

    def _check_bid(self, body: BidBody, balance: int, now: int) -> int:
        self._check_book(body.resource_class, body.region)
        if body.quantity < 1 or body.max_price < 1 or body.duration < 1:
            raise Refused(ReceiptCode.BAD_AMOUNT, "a bid needs quantity, max_price and duration >= 1")
        if body.expires_at <= now:
            raise Refused(ReceiptCode.BAD_EXPIRY, f"the bid expired at {body.expires_at} (now {now})")
        cost = lease_cost(body.quantity, body.max_price, body.duration)
        if cost > balance:
            raise Refused(ReceiptCode.INSUFFICIENT_FUNDS, f"balance {balance} < escrow {cost}")
        return cost

    def _place_offer(self, tx: Transaction, body: OfferBody, now: int, height: int) -> None:
        self._check_offer(body, now)
        record = OfferRecord(
            tx.hash,
            tx.sender,
            body.resource_class,
            body.region,
            body.quantity,
            body.quantity,
            body.min_price,
            body.available_from,
            body.available_until,
            self._next_seq,
            height,
            body.plan,
        )
        self._next_seq += 1
        self.set_order(record)
        self.market.add(record.to_market())
        self._books.add((body.resource_class, body.region))

    def _place_bid(
        self, tx: Transaction, body: BidBody, sender: AccountRecord, now: int, height: int
    ) -> None:
        cost = self._check_bid(body, sender.balance, now)
        sender.balance -= cost
        sender.escrow += cost
        record = BidRecord(
            tx.hash,
            tx.sender,
            body.resource_class,
            body.region,
            body.quantity,
            body.quantity,
            body.max_price,
            body.duration,
            body.expires_at,
            self._next_seq,
            height,
            body.access_key,
            cost,
        )
        self._next_seq += 1
        self.set_order(record)
        self.market.add(record.to_market())
        self._books.add((body.resource_class, body.region))

    def _cancel(self, sender: bytes, order_id: bytes) -> None:
        record = self.orders_by_id.get(order_id)
        if record is None:
            raise Refused(ReceiptCode.UNKNOWN_ORDER, "no open order with this id")
        if record.owner != sender:
            raise Refused(ReceiptCode.NOT_OWNER, "only the owner may cancel an order")
        self.drop_order(order_id)
        if isinstance(record, BidRecord):
            settlement.refund_bid(self, record)

    def _lease_of(self, lease_id: bytes) -> Lease:
        found = self.leases_by_id.get(lease_id)
        if found is None:
            raise Refused(ReceiptCode.UNKNOWN_LEASE, "no lease with this id")
        return found

    def _grant(self, sender: bytes, body: Grant, now: int) -> None:
        found = self._lease_of(body.lease_id)
        if sender != found.provider:
            raise Refused(ReceiptCode.NOT_PARTY, "only the lease's provider may grant access")
        if found.status == LeaseStatus.ACTIVE:
            raise Refused(ReceiptCode.ALREADY_GRANTED, "access was already granted for this lease")
        if found.status != LeaseStatus.AWAITING_GRANT:
            raise Refused(ReceiptCode.LEASE_NOT_ACTIVE, f"the lease is {found.status.name}")
        if now >= min(found.grant_deadline, found.end):
            raise Refused(ReceiptCode.LEASE_NOT_ACTIVE, "the grant deadline has passed")
        self.set_lease(replace(found, status=LeaseStatus.ACTIVE, sealed_grant=body.sealed))

    def _close(self, sender: bytes, body: Close, now: int) -> None:
        found = self._lease_of(body.lease_id)
        if sender not in (found.buyer, found.provider):
            raise Refused(ReceiptCode.NOT_PARTY, "only the buyer or the provider may close a lease")
        if not found.live:
            raise Refused(ReceiptCode.LEASE_NOT_ACTIVE, f"the lease is already {found.status.name}")
        settlement.close_lease(self, found, sender, body.reason, now)
