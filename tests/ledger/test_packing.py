"""Hot paths pack state values without `encode`'s walk: the bytes are those of the canonical encoding."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.codec import encode
from ledger.hashing import tagged_hash
from ledger.leases import LEASE_ID_TAG, lease_id
from ledger.limits import MAX_INT, MIN_INT
from ledger.receipts import Event, EventKind, Receipt, ReceiptCode, decode_results, encode_results
from ledger.records import BidRecord, OfferRecord
from ledger.state_meta import PricePoint, decode_prices, encode_prices

HASHES = st.binary(min_size=32, max_size=32)
RECEIPTS = st.builds(
    Receipt,
    HASHES,
    st.sampled_from(list(ReceiptCode)),
    st.text(max_size=40),
    st.lists(HASHES, max_size=3).map(tuple),
)
FIELDS = st.integers(MIN_INT, MAX_INT) | st.booleans() | st.binary(max_size=40) | st.text(max_size=20)
EVENTS = st.builds(
    Event,
    st.sampled_from(list(EventKind)),
    st.binary(max_size=32),
    st.lists(FIELDS, max_size=12).map(tuple),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(RECEIPTS, max_size=20), st.lists(EVENTS, max_size=20))
def test_results_bytes_equal_the_canonical_encoding_of_their_values(
    receipts: list[Receipt], events: list[Event]
) -> None:
    data = encode_results(receipts, events)
    assert data == encode([[r.to_value() for r in receipts], [e.to_value() for e in events]])
    assert decode_results(data) == (receipts, events)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.builds(PricePoint, st.integers(0, MAX_INT), st.integers(0, MAX_INT), st.integers(0, MAX_INT)),
        min_size=1,
        max_size=16,
    )
)
def test_price_history_bytes_equal_the_canonical_encoding(points: list[PricePoint]) -> None:
    data = encode_prices(tuple(points))
    assert data == encode([[p.height, p.price, p.quantity] for p in points])
    assert decode_prices(data) == tuple(points)


@settings(max_examples=200, deadline=None)
@given(HASHES, HASHES, st.integers(0, MAX_INT), st.integers(0, MAX_INT))
def test_lease_ids_hash_the_canonical_encoding(
    bid_id: bytes, offer_id: bytes, height: int, index: int
) -> None:
    assert lease_id(bid_id, offer_id, height, index) == tagged_hash(
        LEASE_ID_TAG, encode([bid_id, offer_id, height, index])
    )


OFFER = OfferRecord(b"\x01" * 32, b"\x02" * 32, "vcpu", "eu", 7, 9, 100, 10, 20, 3, 4, None)
BID = BidRecord(b"\x03" * 32, b"\x04" * 32, "vcpu", "eu", 5, 6, 120, 600, 30, 8, 9, b"\x05" * 32, 1_000)


@given(st.integers(0, 2**20), st.integers(0, MAX_INT))
def test_record_updates_equal_dataclass_replace(quantity: int, escrow: int) -> None:
    assert OFFER.with_quantity(quantity) == replace(OFFER, quantity=quantity)
    assert BID.with_quantity(quantity, escrow) == replace(BID, quantity=quantity, escrow=escrow)
