"""The fast transaction decoder agrees with the strict parser: same fields, same refusals, same bytes."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

import ledger.tx as tx_module
from ledger.codec import decode_shape, encode_shape
from ledger.errors import DecodeError
from ledger.keys import PrivateKey
from ledger.limits import MAX_SUPPLY, MAX_TX_BYTES
from ledger.tx import TX_VERSION, BidBody, Body, Cancel, OfferBody, Transaction, Transfer, sign_transaction
from ledger.tx_body import MAX_PRICE, MAX_QUANTITY, MAX_TIME_S, fast_body

CHAIN = "fedmarket-test"
KEY = PrivateKey(b"\x07" * 32)

# Leaves near every bound the parsers check, of every type msgpack can yield.
BOUNDS = (0, 1, -1, 2, 3, 4, 5, 6, 7, MAX_QUANTITY, MAX_QUANTITY + 1, MAX_PRICE, MAX_PRICE + 1, MAX_TIME_S)
MORE_BOUNDS = (MAX_TIME_S + 1, MAX_SUPPLY, MAX_SUPPLY + 1, 2**23, 2**23 + 1, 2**64 - 1, -(2**63))
INTS = st.sampled_from(BOUNDS + MORE_BOUNDS) | st.integers(-(2**63), 2**64 - 1)
LEAVES = (
    INTS
    | st.booleans()
    | st.none()
    | st.floats(allow_nan=False)
    | st.sampled_from([1.0, 2.0, 0.0])
    | st.binary(max_size=40)
    | st.sampled_from([b"\x01" * 32, b"\x02" * 31, b"\x03" * 33, b"\x00" * 64])
    | st.text(max_size=70)
    | st.sampled_from(["", "vcpu", "x" * 64, "x" * 65, "é" * 64])
)
VALUES = LEAVES | st.lists(LEAVES, max_size=3)

TEMPLATES: dict[int, list[Any]] = {
    1: [b"\x01" * 32, 5],
    2: ["vcpu", "eu-west", 3, 100, 10, 20, None],
    3: ["vcpu", "eu-west", 3, 100, 600, 20, b"\x01" * 32],
    4: [b"\x01" * 32],
    5: [b"\x01" * 32, b"sealed"],
    6: [b"\x01" * 32, "done"],
}


@st.composite
def body_values(draw: st.DrawFn, kind: int) -> list[Any]:
    """A valid body of `kind` (or of another kind) with up to two fields replaced by edge values, and
    sometimes one field too many or too few."""
    fields = list(
        TEMPLATES[draw(st.sampled_from([kind, kind, kind, *TEMPLATES]))] if kind in TEMPLATES else []
    )
    for _ in range(draw(st.sampled_from([0, 0, 1, 2]))):
        if fields:
            fields[draw(st.integers(0, len(fields) - 1))] = draw(VALUES)
    change = draw(st.sampled_from([0] * 8 + [1, -1]))
    if change > 0:
        fields.append(draw(VALUES))
    elif change < 0 and fields:
        fields.pop()
    return fields


@st.composite
def envelopes(draw: st.DrawFn) -> list[Any]:
    kind = draw(st.sampled_from([1, 2, 3, 4]) | st.integers(0, 7))
    nonce = draw(st.integers(0, 2**64 - 1))
    fields: list[Any] = [
        TX_VERSION,
        CHAIN,
        kind,
        KEY.public.raw,
        nonce,
        draw(body_values(kind)),
        b"\x00" * 64,
    ]
    for index in draw(st.sampled_from([[], [], []]) | st.lists(st.integers(0, 6), max_size=2)):
        fields[index] = draw(VALUES)
    if draw(st.integers(0, 9)) == 0:
        fields.append(draw(VALUES))
    return fields


def strict(value: Any) -> tuple[Any, ...] | type[DecodeError]:
    try:
        return tx_module._fields_of(value)
    except DecodeError:
        return DecodeError


@settings(max_examples=500, deadline=None)
@given(envelopes())
def test_fast_fields_accept_only_what_the_strict_parser_accepts_and_agree(value: list[Any]) -> None:
    fast = tx_module._fast_fields(value)
    if fast is not None:
        assert strict(value) == fast
        assert [type(item) for item in fast] == [type(item) for item in tx_module._fields_of(value)]


@settings(max_examples=500, deadline=None)
@given(st.data())
def test_fast_body_agrees_with_from_value(data: st.DataObject) -> None:
    kind = data.draw(st.integers(0, 7))
    value = data.draw(body_values(kind))
    body = fast_body(kind, value)
    if body is not None:
        assert body == tx_module.BODY_TYPES[tx_module.TxKind(kind)].from_value(value)
        assert type(body).__name__ in {"Transfer", "OfferBody", "BidBody", "Cancel"}


GOOD_BODIES: list[Body] = [
    Transfer(KEY.public.raw, 0),
    Transfer(KEY.public.raw, MAX_SUPPLY),
    OfferBody("vcpu", "eu-west", MAX_QUANTITY, MAX_PRICE, 0, MAX_TIME_S, None),
    BidBody("x" * 64, "é", 1, 1, 2**23, MAX_TIME_S, b"\x01" * 32),
    Cancel(b"\x02" * 32),
]


def test_the_fast_path_takes_the_common_bodies() -> None:
    for body in GOOD_BODIES:
        assert fast_body(body.kind, body.to_value()) == body  # type: ignore[arg-type]


def reference_decode(data: bytes) -> Transaction:
    """The decoder before the fast path: the strict parser, then the parsed fields packed again."""
    kind, chain_id, sender, nonce, body, signature = tx_module._fields_of(decode_shape(data, MAX_TX_BYTES))
    if encode_shape([TX_VERSION, chain_id, int(kind), sender, nonce, body.to_value(), signature]) != data:
        raise DecodeError("transaction is not in canonical form")
    return Transaction(kind, chain_id, sender, nonce, body, signature)


ENCODED = [sign_transaction(KEY, CHAIN, 9, body).encoded for body in GOOD_BODIES]


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(ENCODED), st.data())
def test_decode_agrees_with_the_reference_decoder_on_mutated_bytes(
    original: bytes, data: st.DataObject
) -> None:
    mutated = bytearray(original)
    for _ in range(data.draw(st.integers(1, 3))):
        position = data.draw(st.integers(0, len(mutated) - 1)) if mutated else 0
        action = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        if action == "flip" and mutated:
            mutated[position] ^= data.draw(st.integers(1, 255))
        elif action == "cut":
            del mutated[position:]
        else:
            mutated[position:position] = data.draw(st.binary(min_size=1, max_size=3))
    raw = bytes(mutated)
    try:
        expected = reference_decode(raw)
    except DecodeError:
        expected = None
    try:
        got = Transaction.decode(raw)
    except DecodeError:
        assert expected is None
        return
    assert expected is not None and got == expected
    assert got.encoded == expected.encoded == raw
    assert got.hash == expected.hash == Transaction.decode_hashed(raw, got.hash).hash


def test_a_version_that_is_not_the_integer_one_is_refused() -> None:
    tx = sign_transaction(KEY, CHAIN, 0, GOOD_BODIES[0])
    for version in (1.0, True):
        forged = encode_shape([version, CHAIN, 1, tx.sender, 0, tx.body.to_value(), tx.signature])
        try:
            Transaction.decode(forged)
        except DecodeError:
            continue
        raise AssertionError(f"version {version!r} was accepted")
