"""Consensus messages, their canonical encoding and the exact bytes each signature covers.

Theory: every message is signed with domain separation (its own type tag, the chain id, height, view and block
digest), so a signature made for one phase, height, view or chain is useless for any other. The COMMIT
signature is the ledger's `CommitVote`, which makes a commit certificate nothing but 2f+1 of them. A
pre-prepare signs the digest; the block travels beside it and is checked against the digest by the receiver.
A round change signs the prepared (view, digest) it reports; its prepared certificate is made of other
members' signatures, which every receiver checks. DECIDED carries a committed block and its certificate,
which proves itself. Decoding is strict and any defect is a `DecodeError`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from enum import IntEnum

from ledger.codec import Value, decode, encode, expect_bytes, expect_int, expect_list
from ledger.errors import DecodeError
from ledger.hashing import HASH_BYTES
from ledger.keys import PUBLIC_KEY_BYTES, SIGNATURE_BYTES
from ledger.limits import MAX_BLOCK_BYTES, MAX_CONSENSUS_MESSAGE_BYTES, MAX_VALIDATORS
from ledger.votes import COMMIT_TAG, Certificate, commit_payload

PRE_PREPARE_TAG = b"fedmarket/pbft/pre-prepare"
PREPARE_TAG = b"fedmarket/pbft/prepare"
ROUND_CHANGE_TAG = b"fedmarket/pbft/round-change"
MAX_CACHED_MESSAGE_BYTES = 2_048
MESSAGE_CACHE_ENTRIES = 4_096  # at most 8 MiB of parsed small messages


class Kind(IntEnum):
    PRE_PREPARE = 1
    PREPARE = 2
    COMMIT = 3
    ROUND_CHANGE = 4
    NEW_VIEW = 5
    DECIDED = 6


VOTE_TAGS = {Kind.PRE_PREPARE: PRE_PREPARE_TAG, Kind.PREPARE: PREPARE_TAG, Kind.COMMIT: COMMIT_TAG}


@dataclass(frozen=True, slots=True)
class Vote:
    """A signed (kind, height, view, digest): the header of a pre-prepare, a PREPARE or a COMMIT."""

    kind: Kind
    signer: bytes
    height: int
    view: int
    digest: bytes
    signature: bytes

    def signed_bytes(self) -> tuple[bytes, bytes]:
        return vote_tag_and_payload(self.kind, self.height, self.view, self.digest)


@functools.lru_cache(maxsize=MESSAGE_CACHE_ENTRIES)
def vote_tag_and_payload(kind: Kind, height: int, view: int, digest: bytes) -> tuple[bytes, bytes]:
    """The tag and payload a vote signs (cached: every receiver computes them for the same few votes)."""
    if kind is Kind.COMMIT:
        return COMMIT_TAG, commit_payload(height, view, digest)
    return VOTE_TAGS[kind], encode([height, view, digest])


@dataclass(frozen=True, slots=True)
class PrePrepare:
    vote: Vote
    block: bytes

    @property
    def height(self) -> int:
        return self.vote.height


@dataclass(frozen=True, slots=True)
class PreparedCertificate:
    """A pre-prepare and matching PREPAREs of other members: together a quorum vouching for one digest."""

    pre_prepare: Vote
    prepares: tuple[Vote, ...]

    @property
    def view(self) -> int:
        return self.pre_prepare.view

    @property
    def digest(self) -> bytes:
        return self.pre_prepare.digest


@dataclass(frozen=True, slots=True)
class RoundChange:
    signer: bytes
    height: int
    view: int
    prepared: PreparedCertificate | None
    signature: bytes
    block: bytes | None  # the prepared block, unsigned (checked against the certificate's digest)

    def signed_bytes(self) -> tuple[bytes, bytes]:
        return ROUND_CHANGE_TAG, round_change_payload(self.height, self.view, self.prepared)

    def without_block(self) -> RoundChange:
        return RoundChange(self.signer, self.height, self.view, self.prepared, self.signature, None)


def round_change_payload(height: int, view: int, prepared: PreparedCertificate | None) -> bytes:
    if prepared is None:
        return encode([height, view, None, None])
    return encode([height, view, prepared.view, prepared.digest])


@dataclass(frozen=True, slots=True)
class NewView:
    pre_prepare: PrePrepare
    round_changes: tuple[RoundChange, ...]

    @property
    def height(self) -> int:
        return self.pre_prepare.height


@dataclass(frozen=True, slots=True)
class Decided:
    block: bytes
    certificate: Certificate

    @property
    def height(self) -> int:
        return self.certificate.height


Message = PrePrepare | Vote | RoundChange | NewView | Decided


def message_signer(message: Message) -> bytes | None:
    """The member who signed the message (None for DECIDED, which a certificate proves)."""
    if isinstance(message, PrePrepare):
        return message.vote.signer
    if isinstance(message, NewView):
        return message.pre_prepare.vote.signer
    if isinstance(message, Vote | RoundChange):
        return message.signer
    return None


def message_height(message: Message) -> int:
    return message.height


# Encoding ---------------------------------------------------------------------------------------------------


def _vote_value(vote: Vote) -> list[Value]:
    return [int(vote.kind), vote.signer, vote.height, vote.view, vote.digest, vote.signature]


def _prepared_value(prepared: PreparedCertificate | None) -> Value:
    if prepared is None:
        return None
    return [_vote_value(prepared.pre_prepare), [_vote_value(p) for p in prepared.prepares]]


def _round_change_value(rc: RoundChange) -> list[Value]:
    return [
        int(Kind.ROUND_CHANGE),
        rc.signer,
        rc.height,
        rc.view,
        _prepared_value(rc.prepared),
        rc.signature,
        rc.block,
    ]


def message_value(message: Message) -> Value:
    if isinstance(message, Vote):
        return _vote_value(message)
    if isinstance(message, PrePrepare):
        return [int(Kind.PRE_PREPARE), _vote_value(message.vote), message.block]
    if isinstance(message, RoundChange):
        return _round_change_value(message)
    if isinstance(message, NewView):
        return [
            int(Kind.NEW_VIEW),
            _vote_value(message.pre_prepare.vote),
            message.pre_prepare.block,
            [_round_change_value(rc.without_block()) for rc in message.round_changes],
        ]
    return [int(Kind.DECIDED), message.block, message.certificate.to_value()]


def encode_message(message: Message) -> bytes:
    return encode(message_value(message))


def _kind(value: Value) -> Kind:
    number = expect_int(value, "message kind", 1, len(Kind))
    return Kind(number)


def _parse_vote(value: Value, kinds: tuple[Kind, ...]) -> Vote:
    kind, signer, height, view, digest, signature = expect_list(value, 6, "vote")
    parsed_kind = _kind(kind)
    if parsed_kind not in kinds:
        raise DecodeError(f"expected a vote of kind {kinds}, got {parsed_kind.name}")
    return Vote(
        parsed_kind,
        expect_bytes(signer, "signer", PUBLIC_KEY_BYTES),
        expect_int(height, "height"),
        expect_int(view, "view"),
        expect_bytes(digest, "digest", HASH_BYTES),
        expect_bytes(signature, "signature", SIGNATURE_BYTES),
    )


def _parse_prepared(value: Value) -> PreparedCertificate | None:
    if value is None:
        return None
    pre_prepare, prepares = expect_list(value, 2, "prepared certificate")
    if not isinstance(prepares, list) or len(prepares) > MAX_VALIDATORS:
        raise DecodeError(f"prepared certificate: at most {MAX_VALIDATORS} prepares")
    return PreparedCertificate(
        _parse_vote(pre_prepare, (Kind.PRE_PREPARE,)),
        tuple(_parse_vote(p, (Kind.PREPARE,)) for p in prepares),
    )


def _parse_round_change(value: Value) -> RoundChange:
    kind, signer, height, view, prepared, signature, block = expect_list(value, 7, "round change")
    if _kind(kind) is not Kind.ROUND_CHANGE:
        raise DecodeError("expected a round change")
    return RoundChange(
        expect_bytes(signer, "signer", PUBLIC_KEY_BYTES),
        expect_int(height, "height"),
        expect_int(view, "view"),
        _parse_prepared(prepared),
        expect_bytes(signature, "signature", SIGNATURE_BYTES),
        None if block is None else expect_bytes(block, "block", max_len=MAX_BLOCK_BYTES),
    )


def decode_message(data: bytes) -> Message:
    """Parse a consensus message; anything malformed raises `DecodeError`.

    Small messages (votes, round changes) arrive once per sender and again in retransmissions and relays;
    their parsed form is immutable, so a small bounded cache keyed by the exact bytes saves re-parsing.
    """
    if len(data) <= MAX_CACHED_MESSAGE_BYTES:
        return _decode_small(bytes(data))
    return _decode_message(data)


@functools.lru_cache(maxsize=MESSAGE_CACHE_ENTRIES)
def _decode_small(data: bytes) -> Message:
    return _decode_message(data)


def _decode_message(data: bytes) -> Message:
    value = decode(data, MAX_CONSENSUS_MESSAGE_BYTES)
    if not isinstance(value, list) or not value:
        raise DecodeError("a consensus message is a non-empty list")
    kind = _kind(value[0])
    if kind in (Kind.PREPARE, Kind.COMMIT):
        return _parse_vote(value, (kind,))
    if kind is Kind.PRE_PREPARE:
        _, vote, block = expect_list(value, 3, "pre-prepare")
        return PrePrepare(
            _parse_vote(vote, (Kind.PRE_PREPARE,)), expect_bytes(block, "block", max_len=MAX_BLOCK_BYTES)
        )
    if kind is Kind.ROUND_CHANGE:
        return _parse_round_change(value)
    if kind is Kind.NEW_VIEW:
        _, vote, block, round_changes = expect_list(value, 4, "new view")
        if not isinstance(round_changes, list) or len(round_changes) > MAX_VALIDATORS:
            raise DecodeError(f"new view: at most {MAX_VALIDATORS} round changes")
        pre_prepare = PrePrepare(
            _parse_vote(vote, (Kind.PRE_PREPARE,)), expect_bytes(block, "block", max_len=MAX_BLOCK_BYTES)
        )
        return NewView(pre_prepare, tuple(_parse_round_change(rc) for rc in round_changes))
    _, block, certificate = expect_list(value, 3, "decided")
    return Decided(expect_bytes(block, "block", max_len=MAX_BLOCK_BYTES), Certificate.from_value(certificate))


def decode_evidence(data: bytes) -> Vote | RoundChange:
    """Parse one half of a `ReportEvidence`: a signed vote (pre-prepare header included) or a round change."""
    value = decode(data, MAX_CONSENSUS_MESSAGE_BYTES)
    if isinstance(value, list) and value and value[0] == int(Kind.ROUND_CHANGE):
        return _parse_round_change(value)
    return _parse_vote(value, (Kind.PRE_PREPARE, Kind.PREPARE, Kind.COMMIT))
