"""What the network knows about each peer: identity, connection, score, rate limits, outgoing queues.

A member has two bounded outgoing queues, consensus messages and relayed transaction batches; each drops its
OLDEST item when full: consensus messages that waited that long are the least useful ones (an older view or
height), and PBFT recovers from loss by retransmission on view change and by catch-up; a lost transaction
batch is recovered by the transaction pull and by re-gossip.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field

import trio

from node.p2p.config import NetworkLimits
from node.p2p.scoring import PeerScore, TokenBucket


class OutgoingQueue:
    def __init__(self, capacity: int) -> None:
        self._messages: deque[bytes] = deque()
        self._capacity = capacity
        self._ready = trio.Event()
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._messages)

    def push(self, payload: bytes) -> None:
        if len(self._messages) >= self._capacity:
            self._messages.popleft()
            self.dropped += 1
        self._messages.append(payload)
        self._ready.set()

    async def wait_nonempty(self) -> None:
        while not self._messages:
            self._ready = trio.Event()
            await self._ready.wait()

    def restore(self, batch: list[bytes]) -> None:
        """Put back, in front, a batch whose write failed (still dropping the oldest beyond capacity)."""
        self._messages.extendleft(reversed(batch))
        while len(self._messages) > self._capacity:
            self._messages.popleft()
            self.dropped += 1
        if self._messages:
            self._ready.set()

    def take(self, max_bytes: int) -> list[bytes]:
        """Oldest messages first, up to `max_bytes` in total (always at least one if any)."""
        batch: list[bytes] = []
        size = 0
        while self._messages and (not batch or size + len(self._messages[0]) <= max_bytes):
            payload = self._messages.popleft()
            batch.append(payload)
            size += len(payload)
        return batch


@dataclass
class PeerState:
    peer_id: str
    member_key: bytes | None
    name: str | None
    score: PeerScore
    frame_bucket: TokenBucket
    byte_bucket: TokenBucket
    outgoing: OutgoingQueue | None
    relay: OutgoingQueue | None
    connected: bool = False
    counters: Counter[str] = field(default_factory=Counter)
    changed: trio.Event = field(default_factory=trio.Event)

    @classmethod
    def create(
        cls, peer_id: str, member_key: bytes | None, name: str | None, limits: NetworkLimits
    ) -> PeerState:
        return cls(
            peer_id=peer_id,
            member_key=member_key,
            name=name,
            score=PeerScore(limits.ban_threshold, limits.ban_seconds, limits.score_recovery_per_second),
            frame_bucket=TokenBucket(limits.frames_per_second, limits.frame_burst),
            byte_bucket=TokenBucket(limits.bytes_per_second, limits.byte_burst),
            outgoing=OutgoingQueue(limits.outgoing_queue_messages) if member_key is not None else None,
            relay=OutgoingQueue(limits.relay_queue_batches) if member_key is not None else None,
        )

    def notify(self) -> None:
        """Wake every task waiting for a change of this peer's state."""
        self.changed.set()
        self.changed = trio.Event()


@dataclass(frozen=True)
class PeerStatus:
    """One row of `node_peers`."""

    peer_id: str
    member_key: bytes | None
    name: str | None
    connected: bool
    score: float
    banned_for: float
    queued: int
    counters: dict[str, int]
    links: tuple[str, ...] = ()  # member links up now: consensus-in, consensus-out, relay-in, relay-out
