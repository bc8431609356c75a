"""Messages: canonical round trips, domain separation, and bad input dropped and counted, never raised."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consensus.crypto import Ed25519Signer, Ed25519Verifier
from consensus.events import Broadcast, MessageReceived
from consensus.messages import (
    Kind,
    PrePrepare,
    RoundChange,
    Vote,
    decode_message,
    encode_message,
    vote_tag_and_payload,
)
from consensus.quorum import Quorum
from consensus.record import SignedRecord
from ledger.errors import DecodeError, LedgerError
from ledger.quorum import Quorum as LedgerQuorum
from ledger.votes import COMMIT_TAG, commit_payload

heights = st.integers(min_value=0, max_value=2**40)
views = st.integers(min_value=0, max_value=2**20)
digests = st.binary(min_size=32, max_size=32)
kinds = st.sampled_from([Kind.PREPARE, Kind.COMMIT])


def test_consensus_quorum_is_the_ledger_quorum() -> None:
    assert Quorum is LedgerQuorum


@settings(max_examples=60, deadline=None)
@given(kind=kinds, height=heights, view=views, digest=digests, signature=st.binary(min_size=64, max_size=64))
def test_votes_round_trip_canonically(
    kind: Kind, height: int, view: int, digest: bytes, signature: bytes
) -> None:
    vote = Vote(kind, b"\7" * 32, height, view, digest, signature)
    data = encode_message(vote)
    assert decode_message(data) == vote
    assert encode_message(decode_message(data)) == data


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(height=st.integers(min_value=1, max_value=50), view=st.integers(min_value=1, max_value=9))
def test_round_changes_with_prepared_certificates_round_trip(
    sim: SimpleNamespace, height: int, view: int
) -> None:
    c = sim.Crafter(real_signatures=False)
    block = sim.make_block(height, 0, [height])
    prepared = c.prepared(height, view - 1, block, [0, 1, 2, 3])
    rc = c.round_change(2, height, view, prepared, block)
    assert decode_message(encode_message(rc)) == rc
    record = SignedRecord(height, view, {Kind.COMMIT: (view - 1, b"x")}, prepared, block)
    assert SignedRecord.decode(record.encode()) == record


@settings(max_examples=40, deadline=None)
@given(height=heights, view=views, digest=digests)
def test_commit_signatures_are_ledger_votes_and_domains_are_separate(
    height: int, view: int, digest: bytes
) -> None:
    assert vote_tag_and_payload(Kind.COMMIT, height, view, digest) == (
        COMMIT_TAG,
        commit_payload(height, view, digest),
    )
    payloads = {vote_tag_and_payload(kind, height, view, digest) for kind in Kind if kind in (1, 2, 3)}
    assert len(payloads) == 3  # pre-prepare, prepare and commit never sign the same bytes
    assert vote_tag_and_payload(Kind.PREPARE, height + 1, view, digest) not in payloads


def test_a_signature_does_not_transfer_to_another_phase_chain_or_view(sim: SimpleNamespace) -> None:
    c = sim.Crafter()
    verifier = Ed25519Verifier(c.validators)
    signer = Ed25519Signer(c.keys[0])
    tag, payload = vote_tag_and_payload(Kind.PREPARE, 3, 1, b"\1" * 32)
    signature = signer.sign(tag, sim.CHAIN, payload)
    assert verifier.verify(c.raw[0], tag, sim.CHAIN, payload, signature)
    for other_tag, other_payload in (
        vote_tag_and_payload(Kind.COMMIT, 3, 1, b"\1" * 32),
        vote_tag_and_payload(Kind.PREPARE, 3, 2, b"\1" * 32),
        vote_tag_and_payload(Kind.PREPARE, 4, 1, b"\1" * 32),
    ):
        assert not verifier.verify(c.raw[0], other_tag, sim.CHAIN, other_payload, signature)
    assert not verifier.verify(c.raw[0], tag, "other-chain", payload, signature)
    assert not verifier.verify(c.raw[1], tag, sim.CHAIN, payload, signature)
    assert not verifier.verify(b"\x09" * 32, tag, sim.CHAIN, payload, signature)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=300))
def test_garbage_is_dropped_and_counted_never_raised(sim: SimpleNamespace, data: bytes) -> None:
    c = sim.Crafter(real_signatures=False)
    replica = c.replica(2)
    before = sum(replica.counters.values())
    actions = replica.step(MessageReceived(c.raw[0], data))
    assert not [a for a in actions if isinstance(a, Broadcast)]
    assert sum(replica.counters.values()) > before


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(member=st.integers(0, 3), flip=st.integers(0, 63), height=st.integers(0, 6), view=st.integers(0, 3))
def test_forged_and_misdirected_messages_are_dropped_and_counted(
    sim: SimpleNamespace, member: int, flip: int, height: int, view: int
) -> None:
    c = sim.Crafter(real_signatures=False)
    replica = c.replica(2)
    good = c.vote(Kind.PREPARE, member, height, view, b"\3" * 32)
    signature = bytearray(good.signature)
    signature[flip] ^= 1
    forged = Vote(Kind.PREPARE, good.signer, height, view, good.digest, bytes(signature))
    sender = member if member != 2 else 0
    actions = c.receive(replica, sender, forged)
    assert not [a for a in actions if isinstance(a, Broadcast)]
    dropped = {k: v for k, v in replica.counters.items() if k.startswith("dropped")}
    assert sum(dropped.values()) == 1
    outsider = replica.step(MessageReceived(b"\5" * 32, encode_message(good)))
    assert outsider == [] and replica.counters["dropped_non_member"] == 1


def test_decoding_rejects_non_canonical_and_mistyped_messages(sim: SimpleNamespace) -> None:
    c = sim.Crafter(real_signatures=False)
    vote = c.vote(Kind.PREPARE, 0, 1, 0, b"\1" * 32)
    data = encode_message(vote)
    for bad in (
        data + b"\0",
        data[:-1],
        b"\x91\x07",
        b"\x90",
        encode_message(vote)[:1] + b"\xcc\x02" + data[2:],
    ):
        with pytest.raises(DecodeError):
            decode_message(bad)
    pre_prepare = c.pre_prepare(1, 1, 0, sim.make_block(1, 1, []))
    assert isinstance(decode_message(encode_message(pre_prepare)), PrePrepare)
    round_change = c.round_change(0, 1, 1)
    assert isinstance(decode_message(encode_message(round_change)), RoundChange)


def test_validate_errors_are_ledger_errors(sim: SimpleNamespace) -> None:
    with pytest.raises(LedgerError):
        sim.validate(1, sim.make_block(2, 0, []), 0)
    with pytest.raises(LedgerError):
        sim.validate(1, sim.make_block(1, 0, [], marker=b"bad"), 0)
