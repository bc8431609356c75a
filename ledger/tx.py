"""Signed transactions: the only way a client changes the ledger.

Theory: a transaction is a canonical envelope `[version, chain id, kind, sender, nonce, body, signature]`;
the signature (ed25519, tag `TX_SIGN_TAG`) covers the same list without the signature, so it binds the format
version, the chain, the kind and the per-account nonce: a transaction cannot be replayed on another chain,
read as another kind, or applied twice. Its hash (tagged, over the whole envelope) is known at submission and
is the id of the order it places. Decoding is strict and bounded: any defect raises `DecodeError`, nothing
else.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ledger.codec import (
    Value,
    decode,
    encode,
    encode_shape,
    expect_bytes,
    expect_int,
    expect_list,
    expect_str,
    unpack_raw,
)
from ledger.errors import DecodeError, InvalidKey, InvalidSignature, LedgerError
from ledger.hashing import tagged_hasher
from ledger.keys import PUBLIC_KEY_BYTES, SIGNATURE_BYTES, PrivateKey, public_key
from ledger.limits import MAX_TX_BYTES
from ledger.tx_body import (
    BODY_TYPES,
    MAX_CHAIN_ID_CHARS,
    MAX_DURATION_S,
    MAX_NAME_CHARS,
    MAX_PLAN_INDICATORS,
    MAX_PRICE,
    MAX_QUANTITY,
    MAX_TIME_S,
    X25519_KEY_BYTES,
    BidBody,
    Body,
    Cancel,
    Close,
    Grant,
    OfferBody,
    PlanReference,
    Transfer,
    TxKind,
    fast_body,
    slot_setter,
)

__all__ = [
    "BODY_TYPES",
    "MAX_CHAIN_ID_CHARS",
    "MAX_DURATION_S",
    "MAX_NAME_CHARS",
    "MAX_PLAN_INDICATORS",
    "MAX_PRICE",
    "MAX_QUANTITY",
    "MAX_TIME_S",
    "TX_HASH_TAG",
    "TX_SIGN_TAG",
    "TX_VERSION",
    "X25519_KEY_BYTES",
    "BidBody",
    "Body",
    "Cancel",
    "Close",
    "Grant",
    "OfferBody",
    "PlanReference",
    "Transaction",
    "Transfer",
    "TxKind",
    "sign_transaction",
    "signing_payload",
    "tx_hash_of",
]

TX_VERSION = 1
TX_SIGN_TAG = b"fedmarket/tx"
TX_HASH_TAG = b"fedmarket/tx-hash"


def signing_payload(chain_id: str, kind: TxKind, sender: bytes, nonce: int, body: Body) -> bytes:
    """The bytes the sender signs (under TX_SIGN_TAG and the chain id)."""
    return encode([TX_VERSION, chain_id, int(kind), sender, nonce, body.to_value()])


@dataclass(frozen=True, slots=True)
class Transaction:
    kind: TxKind
    chain_id: str
    sender: bytes
    nonce: int
    body: Body
    signature: bytes
    encoded: bytes = field(init=False, repr=False, compare=False)
    hash: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.body.kind != self.kind:
            raise LedgerError(f"a {self.kind.name} transaction cannot carry a {type(self.body).__name__}")
        encoded = encode(
            [
                TX_VERSION,
                self.chain_id,
                int(self.kind),
                self.sender,
                self.nonce,
                self.body.to_value(),
                self.signature,
            ]
        )
        object.__setattr__(self, "encoded", encoded)
        object.__setattr__(self, "hash", tx_hash_of(encoded))

    def to_value(self) -> Value:
        return decode(self.encoded, MAX_TX_BYTES)

    @classmethod
    def decode(cls, data: bytes) -> Transaction:
        """Strictly decode at most MAX_TX_BYTES; any defect raises `DecodeError`.

        Every field is type-checked, so the bytes need no walk of the value language, and the canonical form
        is proved by packing the checked value once more and comparing with `data`."""
        return _decode(data, None)

    @classmethod
    def decode_hashed(cls, data: bytes, tx_hash: bytes) -> Transaction:
        """`decode` for a caller that already holds `tx_hash_of(data)` (it is not computed again)."""
        return _decode(data, tx_hash)

    def signing_payload(self) -> bytes:
        """`signing_payload` of the fields, cut from the envelope instead of encoded again: both are fixarrays
        (a one-byte header: 0x96 for the six signed fields, 0x97 for the envelope) and the signature is the
        envelope's last item, a 64-byte bin (0xc4 0x40 and the bytes)."""
        return _SIGNED_FIELDS_HEADER + self.encoded[1:-_SIGNATURE_ITEM_BYTES]

    def verify_signature(self, chain_id: str) -> None:
        """Raise `InvalidSignature` unless the sender signed this transaction for `chain_id`."""
        if self.chain_id != chain_id:
            raise InvalidSignature(f"transaction is for chain {self.chain_id!r}, not {chain_id!r}")
        try:
            key = public_key(self.sender)
        except InvalidKey as exc:
            raise InvalidSignature(f"sender is not a valid public key: {exc}") from None
        key.verify(TX_SIGN_TAG, chain_id, self.signing_payload(), self.signature)


_SIGNED_FIELDS_HEADER = b"\x96"
_SIGNATURE_ITEM_BYTES = 2 + SIGNATURE_BYTES
tx_hash_of = tagged_hasher(TX_HASH_TAG)
"""The hash of the transaction whose canonical bytes are the argument (its `Transaction.hash`)."""


def _fields_of(value: Value) -> tuple[TxKind, str, bytes, int, Body, bytes]:
    """The checked fields of a transaction's value (all but the version, which must be TX_VERSION)."""
    version, chain_id, kind, sender, nonce, body, signature = expect_list(value, 7, "transaction")
    if type(version) is not int or version != TX_VERSION:  # not 1.0 nor True: `_decode` packs `value` back
        raise DecodeError(f"transaction: unknown format version {version!r}")
    kind_number = expect_int(kind, "transaction kind")
    try:
        tx_kind = TxKind(kind_number)
    except ValueError:
        raise DecodeError(f"transaction: unknown kind {kind_number}") from None
    return (
        tx_kind,
        expect_str(chain_id, "transaction chain id", MAX_CHAIN_ID_CHARS),
        expect_bytes(sender, "transaction sender", PUBLIC_KEY_BYTES),
        expect_int(nonce, "transaction nonce"),
        BODY_TYPES[tx_kind].from_value(body),
        expect_bytes(signature, "transaction signature", SIGNATURE_BYTES),
    )


def _decode(data: bytes, tx_hash: bytes | None) -> Transaction:
    """The transaction of `data`: `_fast_fields` for the common shapes, the strict parser `_fields_of` (which
    says what is wrong) for anything it does not accept."""
    value = unpack_raw(data, MAX_TX_BYTES)
    fields = _fast_fields(value)
    if fields is None:
        fields = _fields_of(value)
    if encode_shape(value) != data:
        raise DecodeError("transaction is not in canonical form")
    tx = _new_tx(Transaction)
    _set_kind(tx, fields[0])
    _set_chain_id(tx, fields[1])
    _set_sender(tx, fields[2])
    _set_nonce(tx, fields[3])
    _set_body(tx, fields[4])
    _set_signature(tx, fields[5])
    _set_encoded(tx, data)
    _set_hash(tx, tx_hash_of(data) if tx_hash is None else tx_hash)
    return tx


def _fast_fields(value: object) -> tuple[TxKind, str, bytes, int, Body, bytes] | None:
    """The envelope's fields checked inline exactly as `_fields_of` checks them, with `fast_body` for the
    body; None for anything else, valid or not."""
    if type(value) is not list or len(value) != 7:
        return None
    version, chain_id, kind_number, sender, nonce, body_value, signature = value
    if (
        type(version) is not int
        or version != TX_VERSION
        or type(kind_number) is not int
        or type(chain_id) is not str
        or len(chain_id) > MAX_CHAIN_ID_CHARS
        or type(sender) is not bytes
        or len(sender) != PUBLIC_KEY_BYTES
        or type(nonce) is not int
        or nonce < 0
        or type(signature) is not bytes
        or len(signature) != SIGNATURE_BYTES
        or type(body_value) is not list
    ):
        return None
    body = fast_body(kind_number, body_value)
    return None if body is None else (body.kind, chain_id, sender, nonce, body, signature)


_new_tx = object.__new__
_set_kind = slot_setter(Transaction, "kind")
_set_chain_id = slot_setter(Transaction, "chain_id")
_set_sender = slot_setter(Transaction, "sender")
_set_nonce = slot_setter(Transaction, "nonce")
_set_body = slot_setter(Transaction, "body")
_set_signature = slot_setter(Transaction, "signature")
_set_encoded = slot_setter(Transaction, "encoded")
_set_hash = slot_setter(Transaction, "hash")


def sign_transaction(key: PrivateKey, chain_id: str, nonce: int, body: Body) -> Transaction:
    """A transaction carrying `body`, signed by `key`; the body is checked as a decoder would check it."""
    checked = BODY_TYPES[body.kind].from_value(decode(encode(body.to_value()), MAX_TX_BYTES))
    expect_str(chain_id, "chain id", MAX_CHAIN_ID_CHARS)
    expect_int(nonce, "nonce")
    sender = key.public.raw
    payload = signing_payload(chain_id, checked.kind, sender, nonce, checked)
    tx = Transaction(checked.kind, chain_id, sender, nonce, checked, key.sign(TX_SIGN_TAG, chain_id, payload))
    if len(tx.encoded) > MAX_TX_BYTES:
        raise DecodeError(f"transaction of {len(tx.encoded)} bytes exceeds {MAX_TX_BYTES}")
    return tx
