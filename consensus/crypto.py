"""Pluggable signatures: a `Signer` for the local member and a `Verifier` for everyone's signatures.

Theory: every consensus signature covers (type tag, chain id, payload) exactly as `ledger.keys` defines
it, so a COMMIT signature made here is a ledger `CommitVote`. Production uses ed25519 keys; a simulator may
plug in a cheaper deterministic stand-in as long as forgeries are still detected. Certificates are checked
through the same verifier, with the quorum size taken from the validator set.
"""

from __future__ import annotations

from collections import Counter
from typing import Protocol

from ledger.errors import InvalidCertificate
from ledger.keys import PrivateKey
from ledger.validators import ValidatorSet
from ledger.votes import COMMIT_TAG, Certificate, commit_payload


class Signer(Protocol):
    @property
    def public_key(self) -> bytes: ...

    def sign(self, tag: bytes, chain_id: str, payload: bytes) -> bytes: ...


class Verifier(Protocol):
    def verify(self, signer: bytes, tag: bytes, chain_id: str, payload: bytes, signature: bytes) -> bool: ...


class Ed25519Signer:
    """Signs with a ledger private key."""

    def __init__(self, key: PrivateKey) -> None:
        self._key = key

    @property
    def public_key(self) -> bytes:
        return self._key.public.raw

    def sign(self, tag: bytes, chain_id: str, payload: bytes) -> bytes:
        return self._key.sign(tag, chain_id, payload)


class Ed25519Verifier:
    """Checks ed25519 signatures of the members of a validator set (anyone else fails)."""

    def __init__(self, validators: ValidatorSet) -> None:
        self._validators = validators

    def verify(self, signer: bytes, tag: bytes, chain_id: str, payload: bytes, signature: bytes) -> bool:
        index = self._validators.index_of(signer)
        if index is None:
            return False
        key = self._validators.members[index].public_key
        return key.is_valid_signature(tag, chain_id, payload, signature)


class CountingVerifier:
    """A verifier that counts its checks in `counters["signature_checks"]`."""

    def __init__(self, verifier: Verifier, counters: Counter[str]) -> None:
        self._verifier, self._counters = verifier, counters

    def verify(self, signer: bytes, tag: bytes, chain_id: str, payload: bytes, signature: bytes) -> bool:
        self._counters["signature_checks"] += 1
        return self._verifier.verify(signer, tag, chain_id, payload, signature)


def verify_certificate(
    certificate: Certificate,
    validators: ValidatorSet,
    chain_id: str,
    height: int,
    block_hash: bytes,
    verifier: Verifier,
) -> None:
    """`Certificate.verify` through a pluggable verifier; raises `InvalidCertificate`."""
    if certificate.height != height or certificate.block_hash != block_hash:
        raise InvalidCertificate("certificate is for another height or block")
    payload = commit_payload(certificate.height, certificate.view, certificate.block_hash)
    signers: set[bytes] = set()
    for vote in certificate.votes:
        if vote.signer not in validators or vote.signer in signers:
            raise InvalidCertificate("certificate has a vote from a non-member or a repeated member")
        if not verifier.verify(vote.signer, COMMIT_TAG, chain_id, payload, vote.signature):
            raise InvalidCertificate("certificate has a vote whose signature does not verify")
        signers.add(vote.signer)
    if len(signers) < validators.quorum.commit:
        raise InvalidCertificate(
            f"certificate has {len(signers)} votes; {validators.quorum.commit} are needed"
        )
