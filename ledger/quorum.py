"""Quorum arithmetic for n members, defined here once for the ledger and consensus alike.

Theory (Castro and Liskov, section 4; Bracha): with n members of which at most f = floor((n - 1) / 3) are
Byzantine, any two sets of `commit` = ceil((n + f + 1) / 2) members intersect in at least f + 1 members,
hence in at least one honest one; for n = 3f + 1 this is the familiar 2f + 1. A set of `weak` = f + 1
members contains at least one honest member.
"""

from __future__ import annotations

from dataclasses import dataclass

MIN_MEMBERS = 4


@dataclass(frozen=True, slots=True)
class Quorum:
    n: int

    def __post_init__(self) -> None:
        if self.n < MIN_MEMBERS:
            raise ValueError(f"a federation needs at least {MIN_MEMBERS} members to tolerate one fault")

    @property
    def f(self) -> int:
        """The most Byzantine members tolerated."""
        return (self.n - 1) // 3

    @property
    def commit(self) -> int:
        """Votes needed to prepare, commit or certify (2f+1 when n = 3f+1)."""
        return (self.n + self.f + 2) // 2

    @property
    def weak(self) -> int:
        """Votes that include at least one honest member (f+1)."""
        return self.f + 1
