"""Signed transactions: the only way a client changes the ledger.

Theory: a transaction is a canonical envelope `[version, chain id, kind, sender, nonce, body, signature]`;
the signature (ed25519, tag `TX_SIGN_TAG`) covers the same list without the signature, so it binds the format
version, the chain, the kind and the per-account nonce: a transaction cannot be replayed on another chain,
read as another kind, or applied twice. Its hash (tagged, over the whole envelope) is known at submission and
is the id of the order it places. Decoding is strict and bounded: any defect raises `DecodeError`, nothing
else.
"""

from __future__ import annotations

from dataclasses import InitVar, dataclass, field
from enum import IntEnum
from typing import ClassVar, TypeAlias

from ledger.codec import (
    Value,
    decode,
    encode,
    expect_bytes,
    expect_int,
    expect_list,
    expect_str,
)
from ledger.errors import DecodeError, InvalidKey, InvalidSignature, LedgerError
from ledger.hashing import HASH_BYTES, tagged_hash
from ledger.keys import PUBLIC_KEY_BYTES, SIGNATURE_BYTES, PrivateKey, public_key
from ledger.limits import MAX_SEALED_GRANT_BYTES, MAX_SUPPLY, MAX_TEXT_CHARS, MAX_TX_BYTES
from ledger.market import MAX_LEASE_SECONDS, MAX_ORDER_QUANTITY, MAX_UNIT_PRICE

TX_VERSION = 1
TX_SIGN_TAG = b"fedmarket/tx"
TX_HASH_TAG = b"fedmarket/tx-hash"

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


def signing_payload(chain_id: str, kind: TxKind, sender: bytes, nonce: int, body: Body) -> bytes:
    """The bytes the sender signs (under TX_SIGN_TAG and the chain id)."""
    return encode([TX_VERSION, chain_id, int(kind), sender, nonce, body.to_value()])


@dataclass(frozen=True, slots=True)
class Transaction:
    kind: TxKind
    chain_id: str
    sender: bytes
    nonce: int
    body: Body
    signature: bytes
    encoded: bytes = field(init=False, repr=False, compare=False)
    hash: bytes = field(init=False, repr=False, compare=False)
    # Only `decode` passes this: input bytes it checked are the canonical encoding of the parsed fields.
    canonical: InitVar[bytes | None] = None

    def __post_init__(self, canonical: bytes | None) -> None:
        if self.body.kind != self.kind:
            raise LedgerError(f"a {self.kind.name} transaction cannot carry a {type(self.body).__name__}")
        encoded = canonical
        if encoded is None:
            encoded = encode(
                [
                    TX_VERSION,
                    self.chain_id,
                    int(self.kind),
                    self.sender,
                    self.nonce,
                    self.body.to_value(),
                    self.signature,
                ]
            )
        object.__setattr__(self, "encoded", encoded)
        object.__setattr__(self, "hash", tagged_hash(TX_HASH_TAG, encoded))

    def to_value(self) -> Value:
        return decode(self.encoded, MAX_TX_BYTES)

    @classmethod
    def from_value(cls, value: Value) -> Transaction:
        return cls._parse(value, None)

    @classmethod
    def _parse(cls, value: Value, canonical: bytes | None) -> Transaction:
        version, chain_id, kind, sender, nonce, body, signature = expect_list(value, 7, "transaction")
        if version != TX_VERSION or isinstance(version, bool):
            raise DecodeError(f"transaction: unknown format version {version!r}")
        kind_number = expect_int(kind, "transaction kind")
        try:
            tx_kind = TxKind(kind_number)
        except ValueError:
            raise DecodeError(f"transaction: unknown kind {kind_number}") from None
        return cls(
            tx_kind,
            expect_str(chain_id, "transaction chain id", MAX_CHAIN_ID_CHARS),
            expect_bytes(sender, "transaction sender", PUBLIC_KEY_BYTES),
            expect_int(nonce, "transaction nonce"),
            BODY_TYPES[tx_kind].from_value(body),
            expect_bytes(signature, "transaction signature", SIGNATURE_BYTES),
            canonical,
        )

    @classmethod
    def decode(cls, data: bytes) -> Transaction:
        """Strictly decode at most MAX_TX_BYTES; any defect raises `DecodeError`. The codec checks that the
        input is the canonical encoding of the value, and each field is parsed to exactly the value it
        encodes back to, so the input is kept as the encoding rather than encoded again."""
        return cls._parse(decode(data, MAX_TX_BYTES), data)

    def signing_payload(self) -> bytes:
        return signing_payload(self.chain_id, self.kind, self.sender, self.nonce, self.body)

    def verify_signature(self, chain_id: str) -> None:
        """Raise `InvalidSignature` unless the sender signed this transaction for `chain_id`."""
        if self.chain_id != chain_id:
            raise InvalidSignature(f"transaction is for chain {self.chain_id!r}, not {chain_id!r}")
        try:
            key = public_key(self.sender)
        except InvalidKey as exc:
            raise InvalidSignature(f"sender is not a valid public key: {exc}") from None
        key.verify(TX_SIGN_TAG, chain_id, self.signing_payload(), self.signature)


def sign_transaction(key: PrivateKey, chain_id: str, nonce: int, body: Body) -> Transaction:
    """A transaction carrying `body`, signed by `key`; the body is checked as a decoder would check it."""
    checked = BODY_TYPES[body.kind].from_value(decode(encode(body.to_value()), MAX_TX_BYTES))
    expect_str(chain_id, "chain id", MAX_CHAIN_ID_CHARS)
    expect_int(nonce, "nonce")
    sender = key.public.raw
    payload = signing_payload(chain_id, checked.kind, sender, nonce, checked)
    tx = Transaction(checked.kind, chain_id, sender, nonce, checked, key.sign(TX_SIGN_TAG, chain_id, payload))
    if len(tx.encoded) > MAX_TX_BYTES:
        raise DecodeError(f"transaction of {len(tx.encoded)} bytes exceeds {MAX_TX_BYTES}")
    return tx
