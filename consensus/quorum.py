"""Quorum sizes for consensus, re-exported from the ledger where they are defined once.

Theory (PBFT section 4.2): of n members at most f are Byzantine; `Quorum(n).commit` (2f+1) prepares, commits
and certifies, and `Quorum(n).weak` (f+1) is the smallest set sure to hold an honest member.
"""

from ledger.quorum import MIN_MEMBERS, Quorum

__all__ = ["MIN_MEMBERS", "Quorum"]
