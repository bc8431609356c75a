"""Transactions: canonical round trips, signatures bound to tag and chain, strict bounded decoding."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.codec import encode
from ledger.errors import DecodeError, InvalidSignature, LedgerError
from ledger.keys import PrivateKey
from ledger.limits import MAX_SEALED_GRANT_BYTES, MAX_TX_BYTES
from ledger.tx import (
    TX_SIGN_TAG,
    TX_VERSION,
    BidBody,
    Body,
    Cancel,
    Close,
    Grant,
    OfferBody,
    PlanReference,
    Transaction,
    Transfer,
    TxKind,
    sign_transaction,
    signing_payload,
)

CHAIN = "fedmarket-test"
KEY = PrivateKey(b"\x07" * 32)
OTHER = PrivateKey(b"\x08" * 32)
ID = b"\x42" * 32

BODIES: list[Body] = [
    Transfer(OTHER.public.raw, 5_000),
    OfferBody("cpu.small", "eu-west", 8, 120, 1_700_000_000, 1_700_086_400, None),
    OfferBody(
        "gpu.a100",
        "us-east",
        2,
        9_000,
        0,
        2**33,
        PlanReference(b"\x01" * 32, (("hosts_released", 3), ("cpu", -1))),
    ),
    BidBody("cpu.small", "eu-west", 4, 200, 7_200, 1_700_001_000, KEY.public.x25519()),
    Cancel(ID),
    Grant(ID, b"sealed-credentials"),
    Close(ID, "workload finished early"),
]


@pytest.mark.parametrize("body", BODIES, ids=lambda body: type(body).__name__)
def test_every_kind_round_trips_and_verifies(body: Body) -> None:
    tx = sign_transaction(KEY, CHAIN, 3, body)
    decoded = Transaction.decode(tx.encoded)
    assert decoded == tx
    assert decoded.encoded == tx.encoded and decoded.hash == tx.hash and len(tx.hash) == 32
    assert decoded.kind == body.kind and decoded.body == body
    decoded.verify_signature(CHAIN)


@given(st.sampled_from(BODIES), st.integers(0, 2**64 - 1), st.text(min_size=1, max_size=64))
def test_signing_payload_cut_from_envelope_equals_its_encoding(body: Body, nonce: int, chain: str) -> None:
    tx = sign_transaction(KEY, chain, nonce, body)
    expected = signing_payload(chain, tx.kind, tx.sender, nonce, body)
    assert tx.signing_payload() == expected
    assert Transaction.decode(tx.encoded).signing_payload() == expected


def test_order_ids_differ_by_nonce_and_sender() -> None:
    body = BODIES[1]
    hashes = {sign_transaction(k, CHAIN, n, body).hash for k in (KEY, OTHER) for n in (0, 1)}
    assert len(hashes) == 4


def test_signature_for_another_chain_is_rejected() -> None:
    tx = sign_transaction(KEY, "other-chain", 0, BODIES[0])
    tx.verify_signature("other-chain")
    with pytest.raises(InvalidSignature):
        tx.verify_signature(CHAIN)
    relabelled = Transaction(tx.kind, CHAIN, tx.sender, tx.nonce, tx.body, tx.signature)
    with pytest.raises(InvalidSignature):
        relabelled.verify_signature(CHAIN)


def test_signature_under_another_tag_is_rejected() -> None:
    tx = sign_transaction(KEY, CHAIN, 0, BODIES[0])
    forged_signature = KEY.sign(b"fedmarket/other", CHAIN, tx.signing_payload())
    forged = Transaction(tx.kind, CHAIN, tx.sender, tx.nonce, tx.body, forged_signature)
    with pytest.raises(InvalidSignature):
        forged.verify_signature(CHAIN)
    genuine = Transaction(
        tx.kind, CHAIN, tx.sender, tx.nonce, tx.body, KEY.sign(TX_SIGN_TAG, CHAIN, tx.signing_payload())
    )
    genuine.verify_signature(CHAIN)


def test_changed_fields_break_the_signature() -> None:
    tx = sign_transaction(KEY, CHAIN, 0, BODIES[0])
    for changed in (
        Transaction(tx.kind, CHAIN, tx.sender, 1, tx.body, tx.signature),
        Transaction(tx.kind, CHAIN, OTHER.public.raw, 0, tx.body, tx.signature),
        Transaction(tx.kind, CHAIN, tx.sender, 0, Transfer(OTHER.public.raw, 5_001), tx.signature),
    ):
        with pytest.raises(InvalidSignature):
            changed.verify_signature(CHAIN)


def test_sender_that_is_not_a_key_is_an_invalid_signature() -> None:
    tx = sign_transaction(KEY, CHAIN, 0, BODIES[0])
    bogus = Transaction(tx.kind, CHAIN, b"\x00" * 32, 0, tx.body, tx.signature)
    with pytest.raises(InvalidSignature):
        bogus.verify_signature(CHAIN)


def _envelope(kind: int, body: object, version: int = TX_VERSION) -> bytes:
    return encode([version, CHAIN, kind, KEY.public.raw, 0, body, b"\x00" * 64])  # type: ignore[list-item]


@pytest.mark.parametrize(
    "data",
    [
        _envelope(1, [OTHER.public.raw, 5], version=2),
        _envelope(99, [OTHER.public.raw, 5]),
        _envelope(1, [OTHER.public.raw]),
        _envelope(1, [b"\x01" * 31, 5]),
        _envelope(1, [OTHER.public.raw, -5]),
        _envelope(2, ["", "eu", 1, 1, 0, 10, None]),
        _envelope(2, ["cpu", "eu", 2**21, 1, 0, 10, None]),
        _envelope(3, ["cpu", "eu", 1, 1, 2**24, 10, b"\x00" * 32]),
        _envelope(5, [ID, b""]),
        _envelope(5, [ID, b"x" * (MAX_SEALED_GRANT_BYTES + 1)]),
        _envelope(6, [ID, "r" * 300]),
        _envelope(2, ["cpu", "eu", 1, 1, 0, 10, [b"\x01" * 32, [["n", 1]] * 33]]),
        _envelope(True, [OTHER.public.raw, 5]),  # type: ignore[arg-type]
        b"\x00" * (MAX_TX_BYTES + 1),
        b"",
    ],
)
def test_malformed_transactions_raise_decode_error(data: bytes) -> None:
    with pytest.raises(DecodeError):
        Transaction.decode(data)


def test_sign_transaction_checks_the_body() -> None:
    with pytest.raises(DecodeError):
        sign_transaction(KEY, CHAIN, 0, Transfer(b"short", 1))
    with pytest.raises(LedgerError):
        sign_transaction(KEY, CHAIN, 0, Grant(ID, b"x" * (MAX_SEALED_GRANT_BYTES + 1)))


def test_body_kind_must_match_transaction_kind() -> None:
    tx = sign_transaction(KEY, CHAIN, 0, BODIES[0])
    with pytest.raises(LedgerError):
        Transaction(TxKind.CANCEL, CHAIN, tx.sender, 0, tx.body, tx.signature)


ENCODED = [sign_transaction(KEY, CHAIN, i, body).encoded for i, body in enumerate(BODIES)]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_only_raise_decode_error(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        Transaction.decode(data)


@settings(max_examples=250, deadline=None)
@given(st.sampled_from(ENCODED), st.data())
def test_mutated_transactions_decode_or_raise_decode_error(original: bytes, data: st.DataObject) -> None:
    mutated = bytearray(original)
    for _ in range(data.draw(st.integers(1, 4))):
        action = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        position = data.draw(st.integers(0, max(len(mutated) - 1, 0)))
        if action == "flip" and mutated:
            mutated[position] ^= data.draw(st.integers(1, 255))
        elif action == "cut":
            del mutated[position:]
        else:
            mutated[position:position] = data.draw(st.binary(min_size=1, max_size=4))
    try:
        tx = Transaction.decode(bytes(mutated))
    except DecodeError:
        return
    assert tx.encoded == bytes(mutated)
    # decode keeps the input as the encoding: the parsed fields must encode back to exactly those bytes
    assert Transaction(tx.kind, tx.chain_id, tx.sender, tx.nonce, tx.body, tx.signature).encoded == tx.encoded
    try:
        tx.verify_signature(CHAIN)
    except InvalidSignature:
        return
    assert bytes(mutated) in ENCODED  # a surviving signature means nothing that it covers changed
