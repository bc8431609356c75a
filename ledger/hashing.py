"""Hashes with domain separation: every hash names what it is a hash of.

Theory: a hash that could be read as two different kinds of object (a transaction and a Merkle node, say)
lets an attacker pass one off as the other. Prefixing a type tag makes the domains disjoint.
"""

import hashlib
from collections.abc import Callable

HASH_BYTES = 32

_sha256 = hashlib.sha256


def tag_prefix(tag: bytes) -> bytes:
    """What `tagged_hash` puts before the data: the tag's length (one byte) and the tag."""
    return bytes([len(tag)]) + tag


def tagged_hash(tag: bytes, data: bytes) -> bytes:
    """SHA-256 over a length-prefixed tag and the data."""
    return _sha256(tag_prefix(tag) + data).digest()


def tagged_hasher(tag: bytes) -> Callable[[bytes], bytes]:
    """`tagged_hash` under one fixed tag, with its prefix built once (for hot paths)."""
    prefix = tag_prefix(tag)

    def hash_of(data: bytes) -> bytes:
        return _sha256(prefix + data).digest()

    return hash_of
