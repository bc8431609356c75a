"""Keys, addresses, quorum sizes and commit certificates."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.errors import InvalidCertificate, InvalidKey
from ledger.keys import PrivateKey, PublicKey, parse_address
from ledger.quorum import Quorum
from ledger.validators import ValidatorSet
from ledger.votes import Certificate, sign_commit

CHAIN = "test-chain"
BLOCK = b"\x11" * 32


def keys(n: int) -> list[PrivateKey]:
    return [PrivateKey(bytes([i + 1]) * 32) for i in range(n)]


def validator_set(members: list[PrivateKey]) -> ValidatorSet:
    return ValidatorSet.of([(f"m{i}", k.public.raw) for i, k in enumerate(members)])


@pytest.mark.parametrize(("n", "f", "commit"), [(4, 1, 3), (5, 1, 4), (6, 1, 4), (7, 2, 5), (10, 3, 7)])
def test_quorum_sizes(n: int, f: int, commit: int) -> None:
    q = Quorum(n)
    assert (q.f, q.commit, q.weak) == (f, commit, f + 1)


@given(st.integers(min_value=4, max_value=200))
def test_two_commit_quorums_share_an_honest_member(n: int) -> None:
    q = Quorum(n)
    assert 2 * q.commit - n >= q.f + 1
    assert q.commit <= n - q.f  # liveness: the honest members alone form a quorum


def test_quorum_rejects_fewer_than_four() -> None:
    with pytest.raises(ValueError):
        Quorum(3)


def test_certificate_round_trip_and_verify() -> None:
    members = keys(4)
    cert = Certificate(7, 1, BLOCK, tuple(sign_commit(k, CHAIN, 7, 1, BLOCK) for k in members[:3]))
    decoded = Certificate.decode(cert.encode())
    assert decoded.encode() == cert.encode()
    decoded.verify(validator_set(members), CHAIN, 7, BLOCK)


@pytest.mark.parametrize("defect", ["too_few", "duplicate", "non_member", "other_chain", "other_block"])
def test_certificate_defects_are_rejected(defect: str) -> None:
    members = keys(4)
    outsider = PrivateKey(b"\x99" * 32)
    votes = [sign_commit(k, CHAIN, 7, 0, BLOCK) for k in members[:3]]
    chain = CHAIN
    block = BLOCK
    if defect == "too_few":
        votes = votes[:2]
    elif defect == "duplicate":
        votes = [votes[0], votes[0], votes[1]]
    elif defect == "non_member":
        votes = [*votes[:2], sign_commit(outsider, CHAIN, 7, 0, BLOCK)]
    elif defect == "other_chain":
        chain = "another-chain"
    else:
        block = b"\x22" * 32
    with pytest.raises(InvalidCertificate):
        Certificate(7, 0, BLOCK, tuple(votes)).verify(validator_set(members), chain, 7, block)


def test_signature_is_bound_to_tag_and_chain() -> None:
    key = keys(1)[0]
    sig = key.sign(b"tag-a", CHAIN, b"payload")
    assert key.public.is_valid_signature(b"tag-a", CHAIN, b"payload", sig)
    assert not key.public.is_valid_signature(b"tag-b", CHAIN, b"payload", sig)
    assert not key.public.is_valid_signature(b"tag-a", "other", b"payload", sig)
    assert not key.public.is_valid_signature(b"tag-a", CHAIN, b"payload", sig[:63])


@given(st.binary(min_size=32, max_size=32))
def test_address_text_round_trip(seed: bytes) -> None:
    key = PrivateKey(seed)
    assert parse_address(key.address) == key.public.raw


@given(st.binary(min_size=32, max_size=32), st.integers(min_value=3, max_value=60), st.sampled_from("qpzry"))
def test_address_typo_is_rejected(seed: bytes, position: int, replacement: str) -> None:
    text = PrivateKey(seed).address
    if text[position] == replacement:
        return
    typo = text[:position] + replacement + text[position + 1 :]
    with pytest.raises(InvalidKey):
        parse_address(typo)


def test_small_order_and_malformed_keys_are_rejected() -> None:
    small_order = bytes([1] + [0] * 31)  # the identity point
    for raw in [small_order, bytes(32), b"\x01" * 31]:
        with pytest.raises(InvalidKey):
            PublicKey(raw)


def test_key_file_round_trip_and_defects() -> None:
    key = keys(1)[0]
    assert PrivateKey.from_key_file(key.to_key_file()).seed == key.seed
    for text in ["", "{}", '{"type": "fedmarket-ed25519", "seed": "zz"}', "[1]"]:
        with pytest.raises(InvalidKey):
            PrivateKey.from_key_file(text)
