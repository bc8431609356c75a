"""The validator set: the federation members fixed in genesis, in a fixed order.

Theory: the order matters (proposer rotation indexes it), so the set hashes its canonical encoding; a block
header carries that hash, binding every block to the members who may certify it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from ledger.codec import encode
from ledger.errors import GenesisError
from ledger.hashing import tagged_hash
from ledger.keys import PublicKey
from ledger.limits import MAX_TEXT_CHARS, MAX_VALIDATORS
from ledger.quorum import MIN_MEMBERS, Quorum

VALIDATOR_SET_HASH_TAG = b"fedmarket/validator-set"


@dataclass(frozen=True, slots=True)
class Validator:
    name: str
    public_key: PublicKey


@dataclass(frozen=True)
class ValidatorSet:
    members: tuple[Validator, ...]
    _index: dict[bytes, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not MIN_MEMBERS <= len(self.members) <= MAX_VALIDATORS:
            raise GenesisError(
                f"a validator set has {MIN_MEMBERS} to {MAX_VALIDATORS} members, not {len(self.members)}"
            )
        index: dict[bytes, int] = {}
        names: set[str] = set()
        for position, member in enumerate(self.members):
            if not member.name or len(member.name) > MAX_TEXT_CHARS:
                raise GenesisError(f"validator {position} needs a name of 1 to {MAX_TEXT_CHARS} characters")
            if member.public_key.raw in index:
                raise GenesisError(f"validator {member.name!r} repeats a public key")
            if member.name in names:
                raise GenesisError(f"validator name {member.name!r} is used twice")
            index[member.public_key.raw] = position
            names.add(member.name)
        object.__setattr__(self, "_index", index)

    @classmethod
    def of(cls, members: Sequence[tuple[str, bytes]]) -> ValidatorSet:
        return cls(tuple(Validator(name, PublicKey(raw)) for name, raw in members))

    def __len__(self) -> int:
        return len(self.members)

    def __iter__(self) -> Iterator[Validator]:
        return iter(self.members)

    @property
    def quorum(self) -> Quorum:
        return Quorum(len(self.members))

    def index_of(self, public_key: bytes) -> int | None:
        """The member's position, or None for a key outside the set."""
        return self._index.get(public_key)

    def __contains__(self, public_key: object) -> bool:
        return isinstance(public_key, bytes) and public_key in self._index

    def proposer(self, height: int, view: int) -> Validator:
        """Round-robin by height and view (IBFT 2.0): every member proposes in turn."""
        return self.members[(height + view) % len(self.members)]

    def hash(self) -> bytes:
        body = encode([[m.name, m.public_key.raw] for m in self.members])
        return tagged_hash(VALIDATOR_SET_HASH_TAG, body)
