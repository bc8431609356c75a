"""Hashes with domain separation: every hash names what it is a hash of.

Theory: a hash that could be read as two different kinds of object (a transaction and a Merkle node, say)
lets an attacker pass one off as the other. Prefixing a type tag makes the domains disjoint.
"""

import hashlib

HASH_BYTES = 32


def tagged_hash(tag: bytes, data: bytes) -> bytes:
    """SHA-256 over a length-prefixed tag and the data."""
    return hashlib.sha256(bytes([len(tag)]) + tag + data).digest()
