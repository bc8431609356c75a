"""Per-peer rate limits and misbehaviour scores.

Each peer has two token buckets (frames and bytes). A frame that overdraws a bucket is not refused: the
reader of that peer waits until the debt is repaid, so a flood slows down only its own sender, and each
overdraft costs a small penalty. The score starts at 0, recovers linearly towards 0, and drops with each
penalty (bad frames, or what the runtime reports: garbage, bad signatures). Below the threshold the peer is
banned for a fixed time; the ban ends with a clean score.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TokenBucket:
    rate: float
    burst: float
    tokens: float = field(init=False)
    updated: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        self.tokens = self.burst

    def take(self, amount: float, now: float) -> float:
        """Spend `amount` tokens; return how long to wait (0 when the bucket covered it)."""
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        self.tokens -= amount
        if self.tokens >= 0:
            return 0.0
        return -self.tokens / self.rate


@dataclass
class PeerScore:
    threshold: float
    ban_seconds: float
    recovery_per_second: float
    value: float = 0.0
    updated: float = 0.0
    banned_until: float = 0.0

    def current(self, now: float) -> float:
        if self.banned_until and now >= self.banned_until:
            self.banned_until = 0.0
            self.value = 0.0
        self.value = min(0.0, self.value + (now - self.updated) * self.recovery_per_second)
        self.updated = now
        return self.value

    def is_banned(self, now: float) -> bool:
        self.current(now)
        return self.banned_until > now

    def penalize(self, points: float, now: float) -> bool:
        """Lower the score; return True when this penalty starts a ban."""
        if self.is_banned(now):
            return False
        self.value = self.current(now) - points
        if self.value <= self.threshold:
            self.banned_until = now + self.ban_seconds
            return True
        return False
