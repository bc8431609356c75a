"""COMMIT votes and commit certificates: the proof that a block is final.

Theory (PBFT section 4.2, adapted to a chain as in IBFT 2.0): a block at a height is committed once a quorum
(2f+1 of 3f+1) of members sign a COMMIT for (height, view, block hash). Two quorums share an honest member,
and an honest member commits one block per height, so two certificates for different blocks at one height
cannot both exist while at most f members are faulty. Each vote is signed alone (no aggregation) over
(COMMIT tag, chain id, height, view, block hash), so an auditor checks a certificate with the validator set
and nothing else. The certificate lives beside the block, not inside its hash: members may hold different,
equally valid sets of votes.
"""

from __future__ import annotations

from dataclasses import dataclass

from ledger.codec import Value, decode, encode, expect_bytes, expect_int, expect_list
from ledger.errors import DecodeError, InvalidCertificate
from ledger.hashing import HASH_BYTES
from ledger.keys import PUBLIC_KEY_BYTES, SIGNATURE_BYTES, PrivateKey
from ledger.limits import MAX_VALIDATORS
from ledger.validators import ValidatorSet

COMMIT_TAG = b"fedmarket/pbft/commit"
MAX_CERTIFICATE_BYTES = 256 + MAX_VALIDATORS * (PUBLIC_KEY_BYTES + SIGNATURE_BYTES + 8)


def commit_payload(height: int, view: int, block_hash: bytes) -> bytes:
    """The payload a member signs (under COMMIT_TAG and the chain id) to vote COMMIT."""
    return encode([height, view, block_hash])


@dataclass(frozen=True, slots=True)
class CommitVote:
    signer: bytes
    signature: bytes


def sign_commit(key: PrivateKey, chain_id: str, height: int, view: int, block_hash: bytes) -> CommitVote:
    payload = commit_payload(height, view, block_hash)
    return CommitVote(key.public.raw, key.sign(COMMIT_TAG, chain_id, payload))


@dataclass(frozen=True, slots=True)
class Certificate:
    """2f+1 COMMIT votes of distinct members for one (height, view, block hash)."""

    height: int
    view: int
    block_hash: bytes
    votes: tuple[CommitVote, ...]

    def to_value(self) -> Value:
        return [
            self.height,
            self.view,
            self.block_hash,
            [[v.signer, v.signature] for v in sorted(self.votes, key=lambda v: v.signer)],
        ]

    def encode(self) -> bytes:
        return encode(self.to_value())

    @classmethod
    def from_value(cls, value: Value) -> Certificate:
        height, view, block_hash, votes = expect_list(value, 4, "certificate")
        if not isinstance(votes, list) or len(votes) > MAX_VALIDATORS:
            raise DecodeError(f"certificate: votes must be a list of at most {MAX_VALIDATORS}")
        parsed = []
        for item in votes:
            signer, signature = expect_list(item, 2, "certificate vote")
            parsed.append(
                CommitVote(
                    expect_bytes(signer, "vote signer", PUBLIC_KEY_BYTES),
                    expect_bytes(signature, "vote signature", SIGNATURE_BYTES),
                )
            )
        return cls(
            expect_int(height, "certificate height"),
            expect_int(view, "certificate view"),
            expect_bytes(block_hash, "certificate block hash", HASH_BYTES),
            tuple(parsed),
        )

    @classmethod
    def decode(cls, data: bytes) -> Certificate:
        return cls.from_value(decode(data, MAX_CERTIFICATE_BYTES))

    def verify(self, validators: ValidatorSet, chain_id: str, height: int, block_hash: bytes) -> None:
        """Raise `InvalidCertificate` unless this certifies `block_hash` at `height` for `chain_id`."""
        if self.height != height:
            raise InvalidCertificate(f"certificate is for height {self.height}, not {height}")
        if self.block_hash != block_hash:
            raise InvalidCertificate("certificate is for another block")
        payload = commit_payload(self.height, self.view, self.block_hash)
        seen: set[bytes] = set()
        for vote in self.votes:
            index = validators.index_of(vote.signer)
            if index is None:
                raise InvalidCertificate("certificate has a vote from a non-member")
            if vote.signer in seen:
                raise InvalidCertificate("certificate has two votes from one member")
            seen.add(vote.signer)
            key = validators.members[index].public_key
            if not key.is_valid_signature(COMMIT_TAG, chain_id, payload, vote.signature):
                raise InvalidCertificate("certificate has a vote whose signature does not verify")
        needed = validators.quorum.commit
        if len(seen) < needed:
            raise InvalidCertificate(f"certificate has {len(seen)} votes; {needed} are needed")
