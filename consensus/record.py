"""The last-signed record: what a replica must remember across a crash so it never contradicts itself.

Theory (PBFT section 4.5 on stable storage): a replica that forgets what it signed could sign a different
message for the same (height, view, phase) after a restart, which is exactly what a Byzantine member does.
It also must not forget a prepared certificate, or a committed block could be dropped by a later view change.
So the record holds, for the current height, the view, the highest signed (view, payload) per phase and the
prepared certificate with its block; the node persists it before sending what was signed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from consensus.crypto import Signer
from consensus.messages import (
    ROUND_CHANGE_TAG,
    Kind,
    PreparedCertificate,
    RoundChange,
    Vote,
    decode_message,
    encode_message,
    round_change_payload,
    vote_tag_and_payload,
)
from ledger.codec import Value, decode, encode, expect_bytes, expect_int, expect_list
from ledger.errors import DecodeError
from ledger.limits import MAX_BLOCK_BYTES, MAX_CONSENSUS_MESSAGE_BYTES, MAX_SIGNER_RECORD_BYTES


@dataclass(slots=True)
class SignedRecord:
    height: int
    view: int = 0
    last_signed: dict[Kind, tuple[int, bytes]] = field(default_factory=dict)  # kind -> (view, payload)
    prepared: PreparedCertificate | None = None
    prepared_block: bytes | None = None

    @classmethod
    def restore(cls, persisted: bytes | None, next_height: int) -> SignedRecord:
        """The persisted record if it is for `next_height`, else a fresh one (the height was decided)."""
        restored = cls.decode(persisted) if persisted is not None else None
        return restored if restored is not None and restored.height == next_height else cls(next_height)

    def may_sign(self, kind: Kind, view: int, payload: bytes) -> bool:
        """True unless it would contradict an earlier signature for the same or a later view."""
        earlier = self.last_signed.get(kind)
        return earlier is None or view > earlier[0] or (view == earlier[0] and payload == earlier[1])

    def signed(self, kind: Kind, view: int, payload: bytes) -> None:
        self.last_signed[kind] = (view, payload)

    def sign_vote(
        self, signer: Signer, chain_id: str, kind: Kind, height: int, view: int, digest: bytes
    ) -> Vote | None:
        """Sign a vote unless that would contradict an earlier signature (then None)."""
        tag, payload = vote_tag_and_payload(kind, height, view, digest)
        if not self.may_sign(kind, view, payload):
            return None
        self.signed(kind, view, payload)
        return Vote(kind, signer.public_key, height, view, digest, signer.sign(tag, chain_id, payload))

    def sign_round_change(self, signer: Signer, chain_id: str, view: int) -> RoundChange | None:
        """Sign a round change for `view` with the prepared certificate and its block (None if refused)."""
        payload = round_change_payload(self.height, view, self.prepared)
        if not self.may_sign(Kind.ROUND_CHANGE, view, payload):
            return None
        self.signed(Kind.ROUND_CHANGE, view, payload)
        signature = signer.sign(ROUND_CHANGE_TAG, chain_id, payload)
        block = self.prepared_block if self.prepared is not None else None
        return RoundChange(signer.public_key, self.height, view, self.prepared, signature, block)

    def encode(self) -> bytes:
        signed: list[Value] = [[int(k), v, p] for k, (v, p) in sorted(self.last_signed.items())]
        prepared: Value = None
        if self.prepared is not None:
            # A round change with an empty signature is only a container for the prepared certificate.
            carrier = RoundChange(
                self.prepared.pre_prepare.signer, self.height, 0, self.prepared, b"\0" * 64, None
            )
            prepared = encode_message(carrier)
        return encode([self.height, self.view, signed, prepared, self.prepared_block])

    @classmethod
    def decode(cls, data: bytes) -> SignedRecord:
        height, view, signed, prepared, block = expect_list(
            decode(data, MAX_SIGNER_RECORD_BYTES), 5, "signed record"
        )
        if not isinstance(signed, list) or len(signed) > len(Kind):
            raise DecodeError("signed record: bad list of signed phases")
        record = cls(expect_int(height, "record height"), expect_int(view, "record view"))
        for item in signed:
            kind, signed_view, payload = expect_list(item, 3, "signed phase")
            record.signed(
                Kind(expect_int(kind, "kind", 1, len(Kind))),
                expect_int(signed_view, "view"),
                expect_bytes(payload, "payload", max_len=MAX_CONSENSUS_MESSAGE_BYTES),
            )
        if prepared is not None:
            carrier = decode_message(expect_bytes(prepared, "prepared", max_len=MAX_CONSENSUS_MESSAGE_BYTES))
            if not isinstance(carrier, RoundChange) or carrier.prepared is None:
                raise DecodeError("signed record: bad prepared certificate")
            record.prepared = carrier.prepared
            record.prepared_block = expect_bytes(block, "prepared block", max_len=MAX_BLOCK_BYTES)
        return record
