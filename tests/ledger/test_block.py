"""Block and header encoding: round trips, strict decoding, the timestamp rule."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.block import (
    BLOCK_VERSION,
    Block,
    BlockHeader,
    InvalidBlock,
    UntimelyBlock,
    check_timestamp,
    tx_root,
)
from ledger.codec import encode
from ledger.errors import DecodeError, LedgerError
from ledger.limits import MAX_BLOCK_BYTES, MAX_BLOCK_TXS, MAX_TX_BYTES
from ledger.merkle import EMPTY_ROOT

hashes = st.binary(min_size=32, max_size=32)
headers = st.builds(
    BlockHeader,
    version=st.just(BLOCK_VERSION),
    chain_id=st.text(max_size=40),
    height=st.integers(min_value=1, max_value=2**64 - 1),
    prev_hash=hashes,
    timestamp_ms=st.integers(min_value=0, max_value=2**64 - 1),
    proposer=hashes,
    tx_root=hashes,
    state_root=hashes,
    validators_hash=hashes,
)
blocks = st.builds(
    Block, header=headers, txs=st.lists(st.binary(min_size=1, max_size=300), max_size=20).map(tuple)
)


@given(blocks)
@settings(max_examples=100, deadline=None)
def test_block_round_trip(block: Block) -> None:
    decoded = Block.decode(block.encoded)
    assert decoded == block
    assert decoded.encoded == block.encoded
    assert decoded.hash == block.hash
    assert BlockHeader.decode(block.header.encoded) == block.header


@given(headers, hashes)
@settings(max_examples=80, deadline=None)
def test_every_header_field_changes_the_hash(header: BlockHeader, other: bytes) -> None:
    values = header.to_value()
    assert isinstance(values, list)
    for position in range(1, len(values)):
        changed = list(values)
        current = changed[position]
        if isinstance(current, bytes):
            changed[position] = other if other != current else bytes([current[0] ^ 1]) + current[1:]
        elif isinstance(current, str):
            changed[position] = current + "x"
        else:
            assert isinstance(current, int)
            changed[position] = current - 1 if current > 1 else current + 1
        assert BlockHeader.from_value(changed).hash != header.hash


@given(blocks, st.data())
@settings(max_examples=100, deadline=None)
def test_mutated_bytes_raise_decode_error_or_decode_canonically(block: Block, data: st.DataObject) -> None:
    raw = bytearray(block.encoded)
    for _ in range(data.draw(st.integers(1, 4))):
        action = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        position = data.draw(st.integers(0, max(0, len(raw) - 1)))
        if action == "flip" and raw:
            raw[position] ^= data.draw(st.integers(1, 255))
        elif action == "cut":
            del raw[position:]
        else:
            raw.insert(position, data.draw(st.integers(0, 255)))
    try:
        decoded = Block.decode(bytes(raw))
    except DecodeError:
        return
    assert decoded.encoded == bytes(raw)


@given(st.binary(max_size=400))
@settings(max_examples=200, deadline=None)
def test_random_bytes_raise_only_decode_error(raw: bytes) -> None:
    for decoder in (Block.decode, BlockHeader.decode):
        try:
            decoded = decoder(raw)
        except DecodeError:
            continue
        assert decoded.encoded == raw


def sample_header(**changes: object) -> BlockHeader:
    fields: dict[str, object] = {
        "version": BLOCK_VERSION,
        "chain_id": "test",
        "height": 1,
        "prev_hash": b"\x01" * 32,
        "timestamp_ms": 1_000,
        "proposer": b"\x02" * 32,
        "tx_root": EMPTY_ROOT,
        "state_root": b"\x03" * 32,
        "validators_hash": b"\x04" * 32,
    }
    fields.update(changes)
    return BlockHeader(**fields)  # type: ignore[arg-type]


def test_non_canonical_encodings_are_rejected() -> None:
    block = Block(sample_header(), (b"tx",))
    value = [block.header.to_value(), [b"tx"]]
    assert encode(value) == block.encoded
    # A long-form integer for the height (uint64 marker for 1) is rejected.
    long_form = block.encoded.replace(b"\xa4test\x01", b"\xa4test\xcf" + (1).to_bytes(8, "big"), 1)
    assert long_form != block.encoded
    with pytest.raises(DecodeError):
        Block.decode(long_form)
    with pytest.raises(DecodeError):
        Block.decode(block.encoded + b"\x00")
    with pytest.raises(DecodeError):
        Block.decode(encode([block.header.to_value(), [b"tx"], 1]))
    with pytest.raises(DecodeError):
        Block.decode(encode([[*block.header.to_value()[:-1]], []]))  # type: ignore[misc]
    with pytest.raises(DecodeError):
        Block.decode(encode([block.header.to_value(), [b""]]))


@pytest.mark.parametrize(
    "changes",
    [
        {"version": 2},
        {"height": 0},
        {"prev_hash": b"\x01" * 31},
        {"proposer": b"\x02" * 33},
        {"tx_root": b""},
        {"chain_id": "x" * 300},
        {"timestamp_ms": -1},
    ],
)
def test_bad_header_fields_are_refused(changes: dict[str, object]) -> None:
    with pytest.raises(DecodeError):
        sample_header(**changes)


def test_size_caps() -> None:
    header = sample_header()
    with pytest.raises(DecodeError):
        Block(header, (b"x" * (MAX_TX_BYTES + 1),))
    with pytest.raises(DecodeError):
        Block(header, (b"x",) * (MAX_BLOCK_TXS + 1))
    with pytest.raises(DecodeError):
        Block.decode(b"\x00" * (MAX_BLOCK_BYTES + 1))
    too_many_bytes = (b"x" * MAX_TX_BYTES,) * (MAX_BLOCK_BYTES // MAX_TX_BYTES + 1)
    with pytest.raises(DecodeError):
        Block(header, too_many_bytes)


def test_tx_root_of_no_transactions_is_the_empty_root() -> None:
    assert tx_root([]) == EMPTY_ROOT


def test_timestamp_rule() -> None:
    check_timestamp(parent_ts=1_000, ts=1_001, local_now_ms=1_500, clock_bound_ms=500)
    check_timestamp(parent_ts=1_000, ts=2_000, local_now_ms=1_500, clock_bound_ms=500)
    for ts, now, untimely in [
        (1_000, 1_000, False),
        (999, 1_000, False),
        (2_001, 1_500, True),
        (1_001, 2_000, True),
    ]:
        with pytest.raises(InvalidBlock) as caught:
            check_timestamp(parent_ts=1_000, ts=ts, local_now_ms=now, clock_bound_ms=500)
        assert isinstance(caught.value, LedgerError)
        # Only the clock bound is a judgment of the local clock; the parent rule is a fact of the chain.
        assert isinstance(caught.value, UntimelyBlock) == untimely
