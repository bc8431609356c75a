"""Keys, addresses and signatures with domain separation (ed25519 via pynacl).

Theory: an address is the member's or client's ed25519 public key itself, so a signature can be checked
from the address alone; its text form is bech32 (human part `fm`), whose checksum turns a typo into an error
instead of a transfer to a stranger. Every signature covers (type tag, chain id, payload), so a signature made
for one purpose or one chain is useless for any other. Keys of small order are rejected: a signature under
such a key proves nothing. The ledger makes no randomness: new keys come from a seed the caller supplies.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field

import bech32
import nacl.bindings
import nacl.exceptions
import nacl.public
import nacl.signing

from ledger.codec import encode
from ledger.errors import InvalidKey, InvalidSignature

PUBLIC_KEY_BYTES = 32
SEED_BYTES = 32
SIGNATURE_BYTES = 64
ADDRESS_HRP = "fm"
KEY_FILE_TYPE = "fedmarket-ed25519"
PUBLIC_KEY_CACHE = 65_536


def signing_bytes(tag: bytes, chain_id: str, payload: bytes) -> bytes:
    """The exact bytes an ed25519 signature covers: tag, chain id and payload, canonically encoded."""
    return encode([tag, chain_id, payload])


@dataclass(frozen=True, slots=True)
class PublicKey:
    """A checked ed25519 public key (32 bytes, a valid point of large order)."""

    raw: bytes
    _verify_key: nacl.signing.VerifyKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.raw, bytes) or len(self.raw) != PUBLIC_KEY_BYTES:
            raise InvalidKey("a public key is 32 bytes")
        if not nacl.bindings.crypto_core_ed25519_is_valid_point(self.raw):
            raise InvalidKey("public key is not a valid ed25519 point of large order")
        object.__setattr__(self, "_verify_key", nacl.signing.VerifyKey(self.raw))

    @property
    def address(self) -> str:
        return address_text(self.raw)

    def verify(self, tag: bytes, chain_id: str, payload: bytes, signature: bytes) -> None:
        """Raise `InvalidSignature` unless `signature` is this key's over (tag, chain id, payload)."""
        if not isinstance(signature, bytes) or len(signature) != SIGNATURE_BYTES:
            raise InvalidSignature("a signature is 64 bytes")
        try:
            self._verify_key.verify(signing_bytes(tag, chain_id, payload), signature)
        except nacl.exceptions.BadSignatureError:
            raise InvalidSignature("signature does not verify") from None

    def is_valid_signature(self, tag: bytes, chain_id: str, payload: bytes, signature: bytes) -> bool:
        try:
            self.verify(tag, chain_id, payload, signature)
        except InvalidSignature:
            return False
        return True

    def x25519(self) -> bytes:
        """The X25519 public key that corresponds to this ed25519 key (for sealed access grants)."""
        return nacl.bindings.crypto_sign_ed25519_pk_to_curve25519(self.raw)


@functools.lru_cache(maxsize=PUBLIC_KEY_CACHE)
def public_key(raw: bytes) -> PublicKey:
    """`PublicKey(raw)`, remembered: checking the point costs about as much as checking a signature, and
    the same senders sign transaction after transaction. Invalid keys raise `InvalidKey` (not cached)."""
    return PublicKey(raw)


class PrivateKey:
    """An ed25519 signing key made from a 32-byte seed."""

    __slots__ = ("_signing", "public")

    def __init__(self, seed: bytes) -> None:
        if not isinstance(seed, bytes) or len(seed) != SEED_BYTES:
            raise InvalidKey("a private key seed is 32 bytes")
        self._signing = nacl.signing.SigningKey(seed)
        self.public = PublicKey(bytes(self._signing.verify_key))

    @property
    def seed(self) -> bytes:
        return bytes(self._signing)

    @property
    def address(self) -> str:
        return self.public.address

    def sign(self, tag: bytes, chain_id: str, payload: bytes) -> bytes:
        return self._signing.sign(signing_bytes(tag, chain_id, payload)).signature

    def x25519_private(self) -> nacl.public.PrivateKey:
        """The X25519 private key matching `PublicKey.x25519`: it opens access grants sealed to us."""
        return nacl.public.PrivateKey(self._signing.to_curve25519_private_key().encode())

    def to_key_file(self) -> str:
        """The text of a key file (JSON); the caller writes it with mode 0600."""
        return json.dumps({"type": KEY_FILE_TYPE, "seed": self.seed.hex(), "address": self.address}, indent=2)

    @classmethod
    def from_key_file(cls, text: str) -> PrivateKey:
        """Parse a key file; any defect raises `InvalidKey` with the reason."""
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise InvalidKey(f"key file is not JSON: {exc}") from None
        if not isinstance(data, dict) or data.get("type") != KEY_FILE_TYPE:
            raise InvalidKey(f"key file lacks type {KEY_FILE_TYPE!r}")
        seed_hex = data.get("seed")
        if not isinstance(seed_hex, str):
            raise InvalidKey("key file lacks a seed")
        try:
            seed = bytes.fromhex(seed_hex)
        except ValueError:
            raise InvalidKey("key file seed is not hex") from None
        key = cls(seed)
        if "address" in data and data["address"] != key.address:
            raise InvalidKey("key file address does not match its seed")
        return key


def address_text(raw: bytes) -> str:
    """The checksummed text form (bech32, `fm1...`) of a 32-byte address."""
    words = bech32.convertbits(list(raw), 8, 5, True)
    assert words is not None  # 8-to-5 conversion with padding always succeeds
    return bech32.bech32_encode(ADDRESS_HRP, words)


def parse_address(text: str) -> bytes:
    """The 32 bytes of an address in text form; a typo, a wrong prefix or a bad key raises `InvalidKey`."""
    if not isinstance(text, str) or len(text) > 100:
        raise InvalidKey("an address is a short text")
    hrp, words = bech32.bech32_decode(text)
    if hrp is None or words is None:
        raise InvalidKey(f"address {text!r} has a bad checksum or characters")
    if hrp != ADDRESS_HRP:
        raise InvalidKey(f"address {text!r} does not start with {ADDRESS_HRP}1")
    data = bech32.convertbits(words, 5, 8, False)
    if data is None or len(data) != PUBLIC_KEY_BYTES:
        raise InvalidKey(f"address {text!r} does not hold 32 bytes")
    raw = bytes(data)
    PublicKey(raw)
    return raw
