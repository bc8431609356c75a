"""What a node counts about its own work, for benchmarks and operators (`node_metrics`, `node_commit_times`).

Theory: counters are plain integers bumped where the work happens, so keeping them costs next to nothing on
the hot paths; a reader takes differences between two readings. The commit-time ring remembers, for the most
recent heights, the local wall clock (unix microseconds) at which this node stored each block and how many
transactions it held: on one machine, the commit latency of a transaction on 2f+1 members and the committed
throughput over any interval are read from the rings of the members.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

COMMIT_RING_HEIGHTS = 10_000


@dataclass
class NodeMetrics:
    blocks_committed: int = 0
    txs_committed: int = 0
    commit_times: deque[tuple[int, int, int]] = field(
        default_factory=lambda: deque(maxlen=COMMIT_RING_HEIGHTS)
    )

    def committed(self, height: int, txs: int, time_us: int) -> None:
        """A block of `txs` transactions was stored at `time_us` (unix microseconds)."""
        self.blocks_committed += 1
        self.txs_committed += txs
        self.commit_times.append((height, time_us, txs))

    def commits_from(self, from_height: int | None, limit: int) -> list[tuple[int, int, int]]:
        """Up to `limit` (height, time_us, txs) at heights >= `from_height` (the oldest kept when None)."""
        start = 0 if from_height is None else from_height
        found: list[tuple[int, int, int]] = []
        for entry in self.commit_times:
            if entry[0] >= start:
                found.append(entry)
                if len(found) >= limit:
                    break
        return found
