"""Merkle roots and inclusion proofs: every leaf proves, every tampering fails."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.errors import DecodeError
from ledger.merkle import (
    EMPTY_ROOT,
    MerkleProof,
    MerkleTree,
    leaf_hash,
    merkle_proof,
    merkle_root,
    node_hash,
    verify_proof,
)


def items_of(count: int, salt: int = 0) -> list[bytes]:
    return [hashlib.sha256(f"{salt}/{i}".encode()).digest() for i in range(count)]


def reference_root(items: list[bytes]) -> bytes:
    """RFC 6962 section 2.1, written recursively: split at the largest power of two below n."""
    if len(items) == 1:
        return leaf_hash(items[0])
    split = 1 << ((len(items) - 1).bit_length() - 1)
    return node_hash(reference_root(items[:split]), reference_root(items[split:]))


@given(st.integers(min_value=1, max_value=300))
@settings(max_examples=60, deadline=None)
def test_root_is_the_rfc6962_tree(count: int) -> None:
    items = items_of(count)
    assert merkle_root(items) == reference_root(items)


@given(st.integers(min_value=1, max_value=300), st.data())
@settings(max_examples=40, deadline=None)
def test_a_kept_tree_answers_many_proofs_against_the_rfc6962_root(count: int, data: st.DataObject) -> None:
    items = items_of(count, salt=7)
    tree = MerkleTree(items)
    assert tree.root == reference_root(items)
    for index in data.draw(st.lists(st.integers(0, count - 1), min_size=1, max_size=8)):
        assert verify_proof(tree.root, items[index], tree.proof(index))
    with pytest.raises(IndexError):
        tree.proof(count)
    with pytest.raises(ValueError):
        MerkleTree([])


def test_empty_tree_has_its_own_root() -> None:
    assert merkle_root([]) == EMPTY_ROOT
    assert EMPTY_ROOT not in (leaf_hash(b""), node_hash(b"", b""))


def test_leaf_and_node_hashes_are_separated() -> None:
    a, b = items_of(2)
    # A two-leaf tree's root must not equal the leaf hash of the concatenated children.
    assert merkle_root([a, b]) != leaf_hash(leaf_hash(a) + leaf_hash(b))
    assert merkle_root([leaf_hash(a) + leaf_hash(b)]) != merkle_root([a, b])


def test_odd_count_does_not_duplicate_the_last_leaf() -> None:
    a, b, c = items_of(3)
    assert merkle_root([a, b, c]) != merkle_root([a, b, c, c])


@given(st.integers(min_value=0, max_value=300), st.data())
@settings(max_examples=50, deadline=None)
def test_every_leaf_proves_and_tampering_fails(count: int, data: st.DataObject) -> None:
    items = items_of(count)
    root = merkle_root(items)
    if count == 0:
        with pytest.raises(IndexError):
            merkle_proof(items, 0)
        return
    indexes = range(count) if count <= 40 else data.draw(st.lists(st.integers(0, count - 1), max_size=8))
    for index in indexes:
        proof = merkle_proof(items, index)
        assert verify_proof(root, items[index], proof)
        assert MerkleProof.decode(proof.encode()) == proof
    index = data.draw(st.integers(0, count - 1))
    proof = merkle_proof(items, index)
    other = hashlib.sha256(b"not a member").digest()
    assert not verify_proof(root, other, proof)
    assert not verify_proof(other, items[index], proof)
    if count > 1:
        assert not verify_proof(root, items[index], MerkleProof((index + 1) % count, count, proof.path))
        assert not verify_proof(root, items[(index + 1) % count], proof)
    if proof.path:
        step = data.draw(st.integers(0, len(proof.path) - 1))
        flipped = bytes([proof.path[step][0] ^ 1]) + proof.path[step][1:]
        tampered = (*proof.path[:step], flipped, *proof.path[step + 1 :])
        assert not verify_proof(root, items[index], MerkleProof(index, count, tampered))
        assert not verify_proof(root, items[index], MerkleProof(index, count, proof.path[:-1]))
    assert not verify_proof(root, items[index], MerkleProof(index, count, (*proof.path, other)))
    assert not verify_proof(root, items[index], MerkleProof(index + count, count, proof.path))


@given(st.binary(max_size=200))
@settings(max_examples=200, deadline=None)
def test_proof_decoder_raises_only_decode_error(data: bytes) -> None:
    try:
        proof = MerkleProof.decode(data)
    except DecodeError:
        return
    assert proof.encode() == data
