"""The mempool catch-up pull protocol: capped answers; garbage raises our decode error only."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.errors import DecodeError
from node.txpull import (
    MAX_PULL_HASHES,
    decode_hashes,
    decode_transactions,
    fetch_request,
    hashes_request,
    serve,
)

POOL = {bytes([i]) * 32: b"tx-%d" % i for i in range(10)}


def pending(limit: int) -> list[bytes]:
    return list(POOL)[:limit]


def test_hashes_then_fetch_round_trip() -> None:
    hashes = decode_hashes(serve(hashes_request(4), pending, POOL.get))
    assert hashes == list(POOL)[:4]
    unknown = b"\xee" * 32
    txs = decode_transactions(serve(fetch_request([*hashes, unknown]), pending, POOL.get))
    assert txs == [POOL[h] for h in hashes]


def test_limits_are_capped() -> None:
    assert len(decode_hashes(serve(hashes_request(10**6), pending, POOL.get))) == len(POOL)
    assert len(fetch_request([b"\x01" * 32] * (MAX_PULL_HASHES + 50))) < 64 * 1024


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_garbage_requests_raise_only_decode_errors(data: bytes) -> None:
    try:
        serve(data, pending, POOL.get)
    except DecodeError:
        return


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_garbage_answers_raise_only_decode_errors(data: bytes) -> None:
    for decoder in (decode_hashes, decode_transactions):
        try:
            items = decoder(data)
        except DecodeError:
            continue
        assert all(isinstance(item, bytes) for item in items)
