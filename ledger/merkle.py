"""Merkle trees over transaction hashes, with inclusion proofs.

Theory (RFC 6962 / RFC 9162, section 2.1): leaves and inner nodes are hashed under different tags, so a leaf
can never be presented as an inner node (the second-preimage trick on plain Merkle trees), and a tree of n
leaves is split at the largest power of two below n: the left subtree is perfect, the right one holds the
rest. Built bottom-up this is the same tree as pairing neighbours level by level and carrying a lone last
node up unchanged (never duplicating it, which would let two lists of leaves share a root). The empty tree
has its own tagged root. A proof of inclusion is the leaf's index, the tree size and the sibling hashes on the
way up; with the size the verifier knows at which levels the node was carried without a sibling.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ledger.codec import Value, decode, encode, expect_bytes, expect_int, expect_list
from ledger.errors import DecodeError
from ledger.hashing import HASH_BYTES, tagged_hash, tagged_hasher
from ledger.limits import MAX_BLOCK_TXS

LEAF_TAG = b"fedmarket/merkle/leaf"
NODE_TAG = b"fedmarket/merkle/node"
EMPTY_TAG = b"fedmarket/merkle/empty"

EMPTY_ROOT = tagged_hash(EMPTY_TAG, b"")
# A tree of MAX_BLOCK_TXS leaves has at most ceil(log2(MAX_BLOCK_TXS)) levels above the leaves.
MAX_PROOF_LENGTH = max(1, (MAX_BLOCK_TXS - 1).bit_length())
MAX_PROOF_BYTES = 64 + MAX_PROOF_LENGTH * (HASH_BYTES + 2)


leaf_hash = tagged_hasher(LEAF_TAG)
_pair_hash = tagged_hasher(NODE_TAG)


def node_hash(left: bytes, right: bytes) -> bytes:
    return _pair_hash(left + right)


def _next_level(level: list[bytes]) -> list[bytes]:
    paired = [_pair_hash(level[i] + level[i + 1]) for i in range(0, len(level) - 1, 2)]
    if len(level) % 2:
        paired.append(level[-1])
    return paired


def merkle_root(items: Sequence[bytes]) -> bytes:
    """The root over `items` (transaction hashes, in block order); EMPTY_ROOT for no items."""
    if not items:
        return EMPTY_ROOT
    level = list(map(leaf_hash, items))
    while len(level) > 1:
        level = _next_level(level)
    return level[0]


@dataclass(frozen=True, slots=True)
class MerkleProof:
    """Proof that the item at `index` is in a tree of `size` items: siblings from the leaf upwards.

    The root does not bind the size by itself (a proof may also check under a larger claimed size), so a
    verifier takes `size` from the block's transaction count when the position matters.
    """

    index: int
    size: int
    path: tuple[bytes, ...]

    def to_value(self) -> Value:
        return [self.index, self.size, list(self.path)]

    def encode(self) -> bytes:
        return encode(self.to_value())

    @classmethod
    def from_value(cls, value: Value) -> MerkleProof:
        index, size, path = expect_list(value, 3, "merkle proof")
        if not isinstance(path, list) or len(path) > MAX_PROOF_LENGTH:
            raise DecodeError(f"merkle proof: path must be a list of at most {MAX_PROOF_LENGTH} hashes")
        return cls(
            expect_int(index, "merkle proof index"),
            expect_int(size, "merkle proof size", 1, MAX_BLOCK_TXS),
            tuple(expect_bytes(h, "merkle proof hash", HASH_BYTES) for h in path),
        )

    @classmethod
    def decode(cls, data: bytes) -> MerkleProof:
        return cls.from_value(decode(data, MAX_PROOF_BYTES))


class MerkleTree:
    """Every level of the tree over `items` (at least one), kept to answer many proofs of one block."""

    def __init__(self, items: Sequence[bytes]) -> None:
        if not items:
            raise ValueError("a tree needs at least one item")
        levels = [[leaf_hash(item) for item in items]]
        while len(levels[-1]) > 1:
            levels.append(_next_level(levels[-1]))
        self._levels = levels

    @property
    def root(self) -> bytes:
        return self._levels[-1][0]

    def proof(self, index: int) -> MerkleProof:
        """The inclusion proof of the item at `index`."""
        size = len(self._levels[0])
        if not 0 <= index < size:
            raise IndexError(f"no item {index} in a tree of {size}")
        position = index
        path: list[bytes] = []
        for level in self._levels[:-1]:
            sibling = position ^ 1
            if sibling < len(level):
                path.append(level[sibling])
            position //= 2
        return MerkleProof(index, size, tuple(path))


def merkle_proof(items: Sequence[bytes], index: int) -> MerkleProof:
    """The inclusion proof of `items[index]`."""
    if not 0 <= index < len(items):
        raise IndexError(f"no item {index} in a tree of {len(items)}")
    return MerkleTree(items).proof(index)


def verify_proof(root: bytes, item: bytes, proof: MerkleProof) -> bool:
    """True when `proof` shows `item` at `proof.index` in the tree of `proof.size` items with `root`."""
    if not 0 <= proof.index < proof.size:
        return False
    node = leaf_hash(item)
    position, width = proof.index, proof.size
    remaining = iter(proof.path)
    used = 0
    while width > 1:
        if position % 2 == 1:
            sibling = next(remaining, None)
            if sibling is None:
                return False
            node = node_hash(sibling, node)
            used += 1
        elif position + 1 < width:
            sibling = next(remaining, None)
            if sibling is None:
                return False
            node = node_hash(node, sibling)
            used += 1
        position //= 2
        width = (width + 1) // 2
    return used == len(proof.path) and node == root
