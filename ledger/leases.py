"""Leases: what a match binds the buyer and the provider to, and how its escrow is settled.

Theory: a fill of the clearing becomes a lease whose escrow (the buyer's credits at the clearing price) is set
aside at the match. The lease then moves through a small state machine, each step at block time:
AWAITING_GRANT -(provider's grant)-> ACTIVE -(end time)-> ENDED (provider paid the escrow), or
AWAITING_GRANT -(no grant by the deadline or the end)-> CANCELLED (buyer refunded in full), or
AWAITING_GRANT/ACTIVE -(close by either party)-> CLOSED (pro rata split). Every settlement splits the escrow
into two integers that sum to it exactly, so credits are conserved. A live lease has exactly one pending
timer, `timer_at`, which the state keeps in a time-ordered index.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from ledger.codec import Value, decode, encode_shape, expect_bytes, expect_int, expect_list, expect_str
from ledger.errors import DecodeError
from ledger.hashing import HASH_BYTES, tagged_hasher
from ledger.keys import PUBLIC_KEY_BYTES
from ledger.limits import MAX_SEALED_GRANT_BYTES, MAX_SUPPLY, MAX_TEXT_CHARS
from ledger.records import pack_record
from ledger.tx import MAX_NAME_CHARS, MAX_PRICE, MAX_QUANTITY, X25519_KEY_BYTES

LEASE_ID_TAG = b"fedmarket/lease-id"
MAX_LEASE_BYTES = MAX_SEALED_GRANT_BYTES + 1024
MAX_LEASE_TIME_S = 2**42


class LeaseStatus(IntEnum):
    AWAITING_GRANT = 0
    ACTIVE = 1
    ENDED = 2
    CLOSED = 3
    CANCELLED = 4


LIVE_STATUSES = (LeaseStatus.AWAITING_GRANT, LeaseStatus.ACTIVE)


_lease_hash = tagged_hasher(LEASE_ID_TAG)


def lease_id(bid_id: bytes, offer_id: bytes, height: int, fill_index: int) -> bytes:
    """The id of the lease made by the `fill_index`-th fill (counted over the block) of a block."""
    return _lease_hash(encode_shape([bid_id, offer_id, height, fill_index]))  # two ids and two integers


def close_split(escrow: int, start: int, end: int, now: int) -> tuple[int, int]:
    """(provider's share, buyer's share) of `escrow` for a lease closed at `now`: pro rata to the time used,
    rounded down for the provider; the two shares sum to `escrow` exactly."""
    elapsed = min(max(now, start), end) - start
    provider = escrow * elapsed // (end - start)
    return provider, escrow - provider


@dataclass(frozen=True, slots=True)
class Lease:
    lease_id: bytes
    bid_id: bytes
    offer_id: bytes
    buyer: bytes
    provider: bytes
    resource_class: str
    region: str
    quantity: int
    price: int  # the clearing price, micro-credits per unit-hour
    start: int  # unix seconds
    end: int
    escrow: int  # lease_cost(quantity, price, end - start): what the provider is paid at the end
    access_key: bytes  # the buyer's X25519 key the grant is sealed to
    grant_deadline: int
    status: LeaseStatus = LeaseStatus.AWAITING_GRANT
    sealed_grant: bytes = b""
    settled_at: int = 0
    provider_paid: int = 0
    buyer_refunded: int = 0
    close_reason: str = ""

    @property
    def live(self) -> bool:
        return self.status in LIVE_STATUSES

    @property
    def timer_at(self) -> int | None:
        """When the state must next act on this lease by itself (deadline or end), None once settled."""
        if self.status == LeaseStatus.AWAITING_GRANT:
            return min(self.grant_deadline, self.end)
        if self.status == LeaseStatus.ACTIVE:
            return self.end
        return None

    def to_value(self) -> Value:
        return [
            self.bid_id,
            self.offer_id,
            self.buyer,
            self.provider,
            self.resource_class,
            self.region,
            self.quantity,
            self.price,
            self.start,
            self.end,
            self.escrow,
            self.access_key,
            self.grant_deadline,
            int(self.status),
            self.sealed_grant,
            self.settled_at,
            self.provider_paid,
            self.buyer_refunded,
            self.close_reason,
        ]

    def encode(self) -> bytes:
        return pack_record(self.to_value())

    @classmethod
    def decode(cls, lease_id_bytes: bytes, data: bytes) -> Lease:
        """The lease stored under `lease_id_bytes`; any defect raises `DecodeError`."""
        fields = expect_list(decode(data, MAX_LEASE_BYTES), 19, "lease")
        status_number = expect_int(fields[13], "lease status")
        try:
            status = LeaseStatus(status_number)
        except ValueError:
            raise DecodeError(f"lease: unknown status {status_number}") from None
        start = expect_int(fields[8], "lease start", 0, MAX_LEASE_TIME_S)
        end = expect_int(fields[9], "lease end", start + 1, MAX_LEASE_TIME_S)
        return cls(
            lease_id=lease_id_bytes,
            bid_id=expect_bytes(fields[0], "lease bid id", HASH_BYTES),
            offer_id=expect_bytes(fields[1], "lease offer id", HASH_BYTES),
            buyer=expect_bytes(fields[2], "lease buyer", PUBLIC_KEY_BYTES),
            provider=expect_bytes(fields[3], "lease provider", PUBLIC_KEY_BYTES),
            resource_class=expect_str(fields[4], "lease class", MAX_NAME_CHARS),
            region=expect_str(fields[5], "lease region", MAX_NAME_CHARS),
            quantity=expect_int(fields[6], "lease quantity", 1, MAX_QUANTITY),
            price=expect_int(fields[7], "lease price", 1, MAX_PRICE),
            start=start,
            end=end,
            escrow=expect_int(fields[10], "lease escrow", 0, MAX_SUPPLY),
            access_key=expect_bytes(fields[11], "lease access key", X25519_KEY_BYTES),
            grant_deadline=expect_int(fields[12], "lease grant deadline", 0, MAX_LEASE_TIME_S),
            status=status,
            sealed_grant=expect_bytes(fields[14], "lease grant", max_len=MAX_SEALED_GRANT_BYTES),
            settled_at=expect_int(fields[15], "lease settled_at", 0, MAX_LEASE_TIME_S),
            provider_paid=expect_int(fields[16], "lease provider paid", 0, MAX_SUPPLY),
            buyer_refunded=expect_int(fields[17], "lease buyer refunded", 0, MAX_SUPPLY),
            close_reason=expect_str(fields[18], "lease close reason", MAX_TEXT_CHARS),
        )
