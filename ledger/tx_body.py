"""Transaction bodies: what each kind of transaction asks of the ledger, with its strict parsers.

Theory: a body is a fixed-layout list inside the transaction envelope (ledger.tx). Each kind has a strict
parser (`from_value`, every field's type and range checked, a precise `DecodeError` otherwise) and the four
kinds of the market's hot path (transfer, offer without a plan reference, bid, cancel) also have a fast one
(`fast_body`) that checks the same conditions inline and fills the frozen objects through their slot
descriptors; it returns None for anything it does not accept, valid or not, and the strict parser decides.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, ClassVar, TypeAlias

from ledger.codec import Value, expect_bytes, expect_int, expect_list, expect_str
from ledger.errors import DecodeError
from ledger.hashing import HASH_BYTES
from ledger.keys import PUBLIC_KEY_BYTES
from ledger.limits import MAX_SEALED_GRANT_BYTES, MAX_SUPPLY, MAX_TEXT_CHARS
from ledger.market import MAX_LEASE_SECONDS, MAX_ORDER_QUANTITY, MAX_UNIT_PRICE

# Bounds of transaction fields (checked when decoding). Quantity, price and duration bounds are the market's:
# within them every lease cost fits the canonical encoding's integers.
MAX_CHAIN_ID_CHARS = 64
MAX_NAME_CHARS = 64  # a resource class, a region, a plan indicator name
MAX_QUANTITY = MAX_ORDER_QUANTITY
MAX_PRICE = MAX_UNIT_PRICE  # micro-credits per unit-hour
MAX_DURATION_S = MAX_LEASE_SECONDS
MAX_TIME_S = 2**40  # unix seconds, far beyond any real date
MAX_PLAN_INDICATORS = 32
X25519_KEY_BYTES = 32
MIN_INDICATOR = -(2**63)
MAX_INDICATOR = 2**63 - 1


class TxKind(IntEnum):
    TRANSFER = 1
    OFFER = 2
    BID = 3
    CANCEL = 4
    GRANT = 5
    CLOSE = 6


def _expect_name(value: Value, what: str) -> str:
    name = expect_str(value, what, MAX_NAME_CHARS)
    if not name:
        raise DecodeError(f"{what}: must not be empty")
    return name


@dataclass(frozen=True, slots=True)
class Transfer:
    """Move `amount` micro-credits from the sender to `to`."""

    to: bytes
    amount: int
    kind: ClassVar[TxKind] = TxKind.TRANSFER

    def to_value(self) -> Value:
        return [self.to, self.amount]

    @classmethod
    def from_value(cls, value: Value) -> Transfer:
        to, amount = expect_list(value, 2, "transfer")
        return cls(
            expect_bytes(to, "transfer recipient", PUBLIC_KEY_BYTES),
            expect_int(amount, "transfer amount", 0, MAX_SUPPLY),
        )


@dataclass(frozen=True, slots=True)
class PlanReference:
    """The capacity plan that freed an offer's capacity: its hash and a few integer indicators."""

    plan_hash: bytes
    indicators: tuple[tuple[str, int], ...]

    def to_value(self) -> Value:
        return [self.plan_hash, [[name, amount] for name, amount in self.indicators]]

    @classmethod
    def from_value(cls, value: Value) -> PlanReference:
        plan_hash, indicators = expect_list(value, 2, "plan reference")
        if not isinstance(indicators, list) or len(indicators) > MAX_PLAN_INDICATORS:
            raise DecodeError(f"plan indicators: expected a list of at most {MAX_PLAN_INDICATORS}")
        parsed: list[tuple[str, int]] = []
        for item in indicators:
            name, amount = expect_list(item, 2, "plan indicator")
            parsed.append(
                (
                    _expect_name(name, "plan indicator name"),
                    expect_int(amount, "plan indicator value", MIN_INDICATOR, MAX_INDICATOR),
                )
            )
        return cls(expect_bytes(plan_hash, "plan hash", HASH_BYTES), tuple(parsed))


@dataclass(frozen=True, slots=True)
class OfferBody:
    """A provider sells `quantity` units of a class in a region, at `min_price` per unit-hour or more,
    for leases that fit inside [available_from, available_until] (unix seconds)."""

    resource_class: str
    region: str
    quantity: int
    min_price: int
    available_from: int
    available_until: int
    plan: PlanReference | None = None
    kind: ClassVar[TxKind] = TxKind.OFFER

    def to_value(self) -> Value:
        plan = None if self.plan is None else self.plan.to_value()
        return [
            self.resource_class,
            self.region,
            self.quantity,
            self.min_price,
            self.available_from,
            self.available_until,
            plan,
        ]

    @classmethod
    def from_value(cls, value: Value) -> OfferBody:
        resource_class, region, quantity, min_price, start, until, plan = expect_list(value, 7, "offer")
        return cls(
            _expect_name(resource_class, "offer class"),
            _expect_name(region, "offer region"),
            expect_int(quantity, "offer quantity", 0, MAX_QUANTITY),
            expect_int(min_price, "offer min price", 0, MAX_PRICE),
            expect_int(start, "offer available_from", 0, MAX_TIME_S),
            expect_int(until, "offer available_until", 0, MAX_TIME_S),
            None if plan is None else PlanReference.from_value(plan),
        )


@dataclass(frozen=True, slots=True)
class BidBody:
    """A consumer buys `quantity` units for `duration` seconds at `max_price` per unit-hour or less; the bid
    stays open until `expires_at` (unix seconds); access grants are sealed to `access_key` (X25519)."""

    resource_class: str
    region: str
    quantity: int
    max_price: int
    duration: int
    expires_at: int
    access_key: bytes
    kind: ClassVar[TxKind] = TxKind.BID

    def to_value(self) -> Value:
        return [
            self.resource_class,
            self.region,
            self.quantity,
            self.max_price,
            self.duration,
            self.expires_at,
            self.access_key,
        ]

    @classmethod
    def from_value(cls, value: Value) -> BidBody:
        resource_class, region, quantity, max_price, duration, expires_at, access_key = expect_list(
            value, 7, "bid"
        )
        return cls(
            _expect_name(resource_class, "bid class"),
            _expect_name(region, "bid region"),
            expect_int(quantity, "bid quantity", 0, MAX_QUANTITY),
            expect_int(max_price, "bid max price", 0, MAX_PRICE),
            expect_int(duration, "bid duration", 0, MAX_DURATION_S),
            expect_int(expires_at, "bid expires_at", 0, MAX_TIME_S),
            expect_bytes(access_key, "bid access key", X25519_KEY_BYTES),
        )


@dataclass(frozen=True, slots=True)
class Cancel:
    """Withdraw an open order (offer or bid) of the sender."""

    order_id: bytes
    kind: ClassVar[TxKind] = TxKind.CANCEL

    def to_value(self) -> Value:
        return [self.order_id]

    @classmethod
    def from_value(cls, value: Value) -> Cancel:
        (order_id,) = expect_list(value, 1, "cancel")
        return cls(expect_bytes(order_id, "cancel order id", HASH_BYTES))


@dataclass(frozen=True, slots=True)
class Grant:
    """The provider's access credentials for a lease, sealed (nacl SealedBox) to the lease's access key."""

    lease_id: bytes
    sealed: bytes
    kind: ClassVar[TxKind] = TxKind.GRANT

    def to_value(self) -> Value:
        return [self.lease_id, self.sealed]

    @classmethod
    def from_value(cls, value: Value) -> Grant:
        lease_id, sealed = expect_list(value, 2, "grant")
        sealed_bytes = expect_bytes(sealed, "grant sealed credentials", max_len=MAX_SEALED_GRANT_BYTES)
        if not sealed_bytes:
            raise DecodeError("grant sealed credentials: must not be empty")
        return cls(expect_bytes(lease_id, "grant lease id", HASH_BYTES), sealed_bytes)


@dataclass(frozen=True, slots=True)
class Close:
    """End a lease early (by its buyer or its provider), with the reason traced on chain."""

    lease_id: bytes
    reason: str
    kind: ClassVar[TxKind] = TxKind.CLOSE

    def to_value(self) -> Value:
        return [self.lease_id, self.reason]

    @classmethod
    def from_value(cls, value: Value) -> Close:
        lease_id, reason = expect_list(value, 2, "close")
        return cls(
            expect_bytes(lease_id, "close lease id", HASH_BYTES),
            expect_str(reason, "close reason", MAX_TEXT_CHARS),
        )


Body: TypeAlias = Transfer | OfferBody | BidBody | Cancel | Grant | Close

BODY_TYPES: dict[TxKind, type[Transfer | OfferBody | BidBody | Cancel | Grant | Close]] = {
    TxKind.TRANSFER: Transfer,
    TxKind.OFFER: OfferBody,
    TxKind.BID: BidBody,
    TxKind.CANCEL: Cancel,
    TxKind.GRANT: Grant,
    TxKind.CLOSE: Close,
}


def fast_body(kind_number: int, value: list[Value]) -> Body | None:
    """The body of a transfer, an offer without a plan reference, a bid or a cancel, checked inline exactly as
    `from_value` checks it (msgpack yields no int subclass but bool, so `type(x) is int` and a range is its
    `expect_int`); None for any other kind or anything else, valid or not."""
    parse = _FAST_PARSERS.get(kind_number)
    return None if parse is None else parse(value)


def _is_name(value: object) -> bool:
    return type(value) is str and 0 < len(value) <= MAX_NAME_CHARS


def _fast_transfer(value: list[Value]) -> Transfer | None:
    if len(value) != 2:
        return None
    to, amount = value
    if type(to) is not bytes or len(to) != PUBLIC_KEY_BYTES or type(amount) is not int:
        return None
    if not 0 <= amount <= MAX_SUPPLY:
        return None
    body = _new(Transfer)
    _set_to(body, to)
    _set_amount(body, amount)
    return body


def _fast_offer(value: list[Value]) -> OfferBody | None:
    if len(value) != 7:
        return None
    resource_class, region, quantity, min_price, start, until, plan = value
    if plan is not None or not _is_name(resource_class) or not _is_name(region):
        return None
    if type(quantity) is not int or type(min_price) is not int or type(start) is not int:
        return None
    if type(until) is not int or not 0 <= quantity <= MAX_QUANTITY or not 0 <= min_price <= MAX_PRICE:
        return None
    if not 0 <= start <= MAX_TIME_S or not 0 <= until <= MAX_TIME_S:
        return None
    body = _new(OfferBody)
    _set_offer_class(body, resource_class)
    _set_offer_region(body, region)
    _set_offer_quantity(body, quantity)
    _set_offer_min_price(body, min_price)
    _set_offer_from(body, start)
    _set_offer_until(body, until)
    _set_offer_plan(body, None)
    return body


def _fast_bid(value: list[Value]) -> BidBody | None:
    if len(value) != 7:
        return None
    resource_class, region, quantity, max_price, duration, expires_at, access_key = value
    if not _is_name(resource_class) or not _is_name(region):
        return None
    if type(quantity) is not int or type(max_price) is not int or type(duration) is not int:
        return None
    if type(expires_at) is not int or not 0 <= quantity <= MAX_QUANTITY or not 0 <= max_price <= MAX_PRICE:
        return None
    if not 0 <= duration <= MAX_DURATION_S or not 0 <= expires_at <= MAX_TIME_S:
        return None
    if type(access_key) is not bytes or len(access_key) != X25519_KEY_BYTES:
        return None
    body = _new(BidBody)
    _set_bid_class(body, resource_class)
    _set_bid_region(body, region)
    _set_bid_quantity(body, quantity)
    _set_bid_max_price(body, max_price)
    _set_bid_duration(body, duration)
    _set_bid_expires_at(body, expires_at)
    _set_bid_access_key(body, access_key)
    return body


def _fast_cancel(value: list[Value]) -> Cancel | None:
    if len(value) != 1:
        return None
    order_id = value[0]
    if type(order_id) is not bytes or len(order_id) != HASH_BYTES:
        return None
    body = _new(Cancel)
    _set_order_id(body, order_id)
    return body


_FAST_PARSERS: dict[int, Callable[[list[Value]], Body | None]] = {
    int(TxKind.TRANSFER): _fast_transfer,
    int(TxKind.OFFER): _fast_offer,
    int(TxKind.BID): _fast_bid,
    int(TxKind.CANCEL): _fast_cancel,
}


def slot_setter(cls: type, name: str) -> Callable[[Any, Any], None]:
    """The `__set__` of a slot of `cls`: it fills the slot of a new object even when the class is a frozen
    dataclass, whose `__init__` would pay a generic `object.__setattr__` per field."""
    setter: Callable[[Any, Any], None] = vars(cls)[name].__set__
    return setter


_new = object.__new__
_set_to = slot_setter(Transfer, "to")
_set_amount = slot_setter(Transfer, "amount")
_set_offer_class = slot_setter(OfferBody, "resource_class")
_set_offer_region = slot_setter(OfferBody, "region")
_set_offer_quantity = slot_setter(OfferBody, "quantity")
_set_offer_min_price = slot_setter(OfferBody, "min_price")
_set_offer_from = slot_setter(OfferBody, "available_from")
_set_offer_until = slot_setter(OfferBody, "available_until")
_set_offer_plan = slot_setter(OfferBody, "plan")
_set_bid_class = slot_setter(BidBody, "resource_class")
_set_bid_region = slot_setter(BidBody, "region")
_set_bid_quantity = slot_setter(BidBody, "quantity")
_set_bid_max_price = slot_setter(BidBody, "max_price")
_set_bid_duration = slot_setter(BidBody, "duration")
_set_bid_expires_at = slot_setter(BidBody, "expires_at")
_set_bid_access_key = slot_setter(BidBody, "access_key")
_set_order_id = slot_setter(Cancel, "order_id")
