"""What a node counts about its own work, for benchmarks and operators (`node_metrics`, `node_commit_times`).

Theory: counters are plain integers bumped where the work happens, so keeping them costs next to nothing on
the hot paths; a reader takes differences between two readings. The commit-time ring remembers, for the most
recent heights, the local wall clock (unix microseconds) at which this node stored each block and how many
transactions it held: on one machine, the commit latency of a transaction on 2f+1 members and the committed
throughput over any interval are read from the rings of the members. CPython's cyclic garbage collector
stops the whole process while it runs (no message is read, no vote sent): `CollectorPauses` counts its runs
and their lengths by generation, so a stall of the event loop can be told apart from a slow peer.
"""

from __future__ import annotations

import gc
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

COMMIT_RING_HEIGHTS = 10_000
GENERATIONS = (0, 1, 2)
LONG_PAUSE_US = 10_000
VERY_LONG_PAUSE_US = 100_000
COLLECTOR_COUNTERS = (
    *(f"collections_gen{generation}" for generation in GENERATIONS),
    *(f"pause_us_gen{generation}" for generation in GENERATIONS),
    "pauses_10_to_100ms",
    "pauses_over_100ms",
)


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


class CollectorPauses:
    """Runs of the cyclic collector in this process and their wall-clock lengths (`gc.callbacks`): the
    collector is per process, so the daemon installs one (`COLLECTOR`). A pause includes any time the OS
    kept the process off the CPU meanwhile, which is what the event loop experiences."""

    def __init__(self) -> None:
        self.counters: dict[str, int] = dict.fromkeys(COLLECTOR_COUNTERS, 0)
        self._started_ns: int | None = None

    def install(self) -> None:
        if self._on_collect not in gc.callbacks:
            gc.callbacks.append(self._on_collect)

    def uninstall(self) -> None:
        if self._on_collect in gc.callbacks:
            gc.callbacks.remove(self._on_collect)

    def _on_collect(self, phase: str, info: dict[str, Any]) -> None:
        now_ns = time.perf_counter_ns()
        if phase == "start":
            self._started_ns = now_ns
            return
        started_ns, self._started_ns = self._started_ns, None
        if started_ns is None:
            return  # installed during a collection
        generation = info["generation"]
        pause_us = (now_ns - started_ns) // 1_000
        counters = self.counters
        counters[f"collections_gen{generation}"] += 1
        counters[f"pause_us_gen{generation}"] += pause_us
        if pause_us >= VERY_LONG_PAUSE_US:
            counters["pauses_over_100ms"] += 1
        elif pause_us >= LONG_PAUSE_US:
            counters["pauses_10_to_100ms"] += 1


COLLECTOR = CollectorPauses()
