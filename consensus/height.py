"""The messages of the height in flight, and the counting PBFT does over them.

Theory (PBFT section 4.2): a replica keeps, per view, at most one pre-prepare, one PREPARE and one COMMIT per
member and one ROUND-CHANGE per member; a member that signs two different ones for the same slot has
equivocated, which is remembered as evidence. Everything here is dropped as a whole once the height is
decided, so memory is bounded by members x views kept, whatever the length of the chain.
"""

from __future__ import annotations

from consensus.crypto import Verifier
from consensus.messages import Kind, Message, PrePrepare, RoundChange, Vote

MAX_VERIFIED_CACHE = 4_096


class HeightState:
    def __init__(self, height: int, view: int, now_ms: int) -> None:
        self.height = height
        self.view = view
        self.view_started_ms = now_ms
        self.waiting_new_view = view > 0
        self.pre_prepares: dict[int, PrePrepare] = {}
        self.prepares: dict[int, dict[bytes, Vote]] = {}
        self.commits: dict[int, dict[bytes, Vote]] = {}
        self.round_changes: dict[int, dict[bytes, RoundChange]] = {}
        self.blocks: dict[bytes, bytes] = {}
        self.seen: dict[tuple[Kind, int, bytes], tuple[object, Message]] = {}  # slot -> (content, message)
        self.own: dict[Kind, bytes] = {}  # own messages re-broadcast while they matter
        self.proposed: dict[int, bytes] = {}
        self.proposal_requested: int | None = None
        self.verified: set[tuple[bytes, bytes, bytes, bytes]] = set()

    def check_signature(
        self, verifier: Verifier, chain_id: str, signer: bytes, tag: bytes, payload: bytes, signature: bytes
    ) -> bool:
        """Verify once per height: relayed copies (in round changes, new views, resends) are free."""
        key = (signer, tag, payload, signature)
        if key in self.verified:
            return True
        if not verifier.verify(signer, tag, chain_id, payload, signature):
            return False
        if len(self.verified) < MAX_VERIFIED_CACHE:
            self.verified.add(key)
        return True

    def remember(
        self, kind: Kind, view: int, signer: bytes, content: object, message: Message
    ) -> Message | None:
        """Record what `signer` signed in a slot; return the earlier message if this one contradicts it."""
        slot = (kind, view, signer)
        earlier = self.seen.get(slot)
        if earlier is None:
            self.seen[slot] = (content, message)
            return None
        return None if earlier[0] == content else earlier[1]

    def matching_prepares(self) -> tuple[PrePrepare, tuple[Vote, ...]] | None:
        """The current view's pre-prepare and the PREPAREs of other members that match it."""
        pre_prepare = self.pre_prepares.get(self.view)
        if pre_prepare is None or self.waiting_new_view:
            return None
        head = pre_prepare.vote
        prepares = sorted(self.prepares.get(self.view, {}).items())
        return pre_prepare, tuple(v for s, v in prepares if v.digest == head.digest and s != head.signer)

    def commit_quorum(self, digest: bytes, needed: int) -> tuple[int, list[Vote]] | None:
        """The lowest view with `needed` COMMITs for `digest`, and those votes."""
        for view in sorted(self.commits):
            votes = [v for _, v in sorted(self.commits[view].items()) if v.digest == digest]
            if len(votes) >= needed:
                return view, votes
        return None

    def join_target(self, me: bytes, weak: int) -> int | None:
        """The highest view that `weak` other members all asked for above ours (PBFT 4.5.2), if any."""
        highest: dict[bytes, int] = {}
        for view, box in self.round_changes.items():
            for signer in box:
                if view > self.view and signer != me:
                    highest[signer] = max(view, highest.get(signer, 0))
        views = sorted(highest.values(), reverse=True)
        return views[weak - 1] if len(views) >= weak else None

    def enter_view(self, view: int, now_ms: int) -> None:
        """Move to `view`, forgetting what only mattered in earlier views (COMMITs still decide)."""
        self.view, self.view_started_ms = view, now_ms
        self.own.pop(Kind.PRE_PREPARE, None)
        self.own.pop(Kind.PREPARE, None)
        for table in (self.prepares, self.round_changes, self.pre_prepares):
            for old in [v for v in table if v < view]:
                del table[old]

    def held(self) -> dict[str, int]:
        return {
            "pre_prepares": len(self.pre_prepares),
            "prepares": sum(len(b) for b in self.prepares.values()),
            "commits": sum(len(b) for b in self.commits.values()),
            "round_changes": sum(len(b) for b in self.round_changes.values()),
            "blocks": len(self.blocks),
            "seen": len(self.seen),
            "verified": len(self.verified),
        }
