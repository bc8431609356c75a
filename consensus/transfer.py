"""Catching up: messages for later heights, peers' heights and state transfer.

Theory: a replica that sees f+1 members at a higher height knows at least one honest member is there, so
blocks exist that it lacks; it asks for them and applies each only with a commit certificate that verifies,
which makes the peers that serve it untrusted. Messages a little ahead of the current height are queued
(a bounded queue per sender, so no member can exhaust memory) and replayed when the replica gets there.
"""

from __future__ import annotations

from collections import deque

from consensus.events import FetchBlocks, ReplicaConfig, Send
from consensus.messages import Decided, Message, encode_message
from ledger.validators import ValidatorSet


class FutureMessages:
    """Bounded per-sender queues of checked messages for heights above the current one."""

    def __init__(self, per_sender: int) -> None:
        self._per_sender = per_sender
        self._queues: dict[bytes, deque[Message]] = {}

    def add(self, sender: bytes, message: Message) -> bool:
        """Queue it; False (and nothing queued) when that sender's queue is full."""
        queue = self._queues.setdefault(sender, deque())
        if len(queue) >= self._per_sender:
            return False
        queue.append(message)
        return True

    def take(self, height: int, validators: ValidatorSet) -> list[tuple[bytes, Message]]:
        """Remove and return the messages for `height` (senders in member order), dropping older ones."""
        ready: list[tuple[bytes, Message]] = []
        for member in validators:
            sender = member.public_key.raw
            queue = self._queues.get(sender)
            if not queue:
                continue
            kept: deque[Message] = deque()
            for message in queue:
                if message.height == height:
                    ready.append((sender, message))
                elif message.height > height:
                    kept.append(message)
            if kept:
                self._queues[sender] = kept
            else:
                del self._queues[sender]
        return ready

    def __len__(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def longest(self) -> int:
        return max((len(q) for q in self._queues.values()), default=0)


class PeerHeights:
    """The highest height each member showed in a signed message."""

    def __init__(self) -> None:
        self._heights: dict[bytes, int] = {}

    def saw(self, member: bytes, height: int) -> None:
        if height > self._heights.get(member, -1):
            self._heights[member] = height

    def ahead_of(self, height: int, validators: ValidatorSet) -> tuple[bytes, ...]:
        """Members seen above `height`, when they are at least f+1 (else nobody: too few to trust)."""
        ahead = tuple(
            m.public_key.raw for m in validators if self._heights.get(m.public_key.raw, -1) > height
        )
        return ahead if len(ahead) >= validators.quorum.weak else ()


class CatchUp:
    """What a replica keeps to catch up and to help others catch up: queues, peer heights, the last block."""

    def __init__(self, config: ReplicaConfig, last_decided: Decided | None) -> None:
        self._config = config
        self.future = FutureMessages(config.max_future_per_sender)
        self.peers = PeerHeights()
        self.last_decided = last_decided
        self._last_decided_bytes = b""  # encoded when first needed: most decided blocks are never sent
        self._helped: dict[bytes, int] = {}  # member -> when we may send it the decided block again
        self._next_fetch_ms = 0

    def decided(self, decided: Decided) -> None:
        self.last_decided = decided
        self._last_decided_bytes = b""
        self._helped.clear()

    def help(self, sender: bytes, height: int, current_height: int, now_ms: int) -> Send | None:
        """A member still at the height we just decided gets the block and its certificate (rate-limited)."""
        if height != current_height - 1 or self.last_decided is None or now_ms < self._helped.get(sender, -1):
            return None
        self._helped[sender] = now_ms + self._config.resend_interval_ms
        if not self._last_decided_bytes:
            self._last_decided_bytes = encode_message(self.last_decided)
        return Send(sender, self._last_decided_bytes)

    def fetch(self, height: int, now_ms: int) -> FetchBlocks | None:
        peers = self.peers.ahead_of(height, self._config.validators)
        if not peers or now_ms < self._next_fetch_ms:
            return None
        self._next_fetch_ms = now_ms + self._config.fetch_interval_ms
        return FetchBlocks(height, peers)
