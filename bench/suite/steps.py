"""One load step: send a schedule at a fixed rate, let the backlog drain, and read what it cost.

Throughput and backlog come from exact times afterwards: each reply that admitted transactions, and each
block's commit time on 2f+1 members (the members' commit-time rings). A monitor thread meanwhile watches the
mempools, to stop sending before one fills (a full mempool refuses, and a refused nonce would hold back the
sender's later transactions). Per-transaction costs are taken over the step plus its drain, when every
admitted transaction has committed, so each signature checked belongs to a transaction counted.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

from bench.suite.analysis import assess, costs, latency_figures
from bench.suite.cluster import Cluster, process_cpu_s
from bench.suite.loadgen import OpenLoop, Outcome
from bench.suite.rpc import KeepAliveRpc, RpcFailure
from bench.suite.workload import Batch, MarketMix
from node import devnet

MONITOR_INTERVAL_S = 0.5
MEMPOOL_ABORT_SHARE = 0.7
MEMPOOL_LIMIT = 50_000  # node.config.MempoolConfig.max_txs, the devnet's
DRAIN_MIN_S = 20.0
DRAIN_MAX_S = 120.0


class Monitor:
    """Polls every live member's mempool size; sets `abort` when one is near its limit."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.mempool_max = 0
        self.abort = threading.Event()
        self._stop = threading.Event()
        self._clients = {i: KeepAliveRpc(cluster.urls[i], timeout=10.0) for i in cluster.alive()}
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Monitor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30.0)
        for client in self._clients.values():
            client.close()

    def _run(self) -> None:
        while not self._stop.wait(MONITOR_INTERVAL_S):
            try:
                sizes = [self._clients[i].call("node_status")["mempool_size"] for i in self.cluster.alive()]
            except RpcFailure:
                continue
            self.mempool_max = max(self.mempool_max, *sizes)
            if self.mempool_max > MEMPOOL_ABORT_SHARE * MEMPOOL_LIMIT:
                self.abort.set()


def idle_cpu(cluster: Cluster, seconds: float) -> float:
    """CPU seconds per second the live nodes use together with no load (ticks, heartbeats, empty blocks)."""
    before = {i: process_cpu_s(cluster.processes[i].pid) for i in cluster.alive()}
    started = time.monotonic()
    time.sleep(seconds)
    used = sum(process_cpu_s(cluster.processes[i].pid) - cpu for i, cpu in before.items())
    return used / (time.monotonic() - started)


def run_step(
    cluster: Cluster,
    mix: MarketMix,
    loop: OpenLoop,
    rate: float,
    seconds: float,
    *,
    label: str,
    sample_size: int,
    rtt_us: float,
    idle_cpu: float,
) -> dict[str, Any]:
    """Run one step at `rate` tx/s for `seconds` and return its figures."""
    batches = mix.plan(rate, seconds)
    reference = cluster.alive()[0]
    first_height = int(cluster.client(reference).call("chain_head")["height"]) + 1
    before = cluster.snapshot()
    with Monitor(cluster) as monitor:
        started_us = time.time_ns() // 1_000
        stats, outcomes = loop.run(batches, monitor.abort)
        ended_us = time.time_ns() // 1_000
    still_refused = loop.resend(batches, outcomes)
    admitted = sum(sum(o.admitted) for o in outcomes.values())
    drained, drain_s = _drain(cluster, reference, before, admitted, rate)
    after = cluster.snapshot()
    commits = cluster.quorum_commit_times(first_height)
    timed = latency(cluster, sample_submitted(batches, outcomes, sample_size), commits, rtt_us)
    assessment = assess(
        [(o.done_us, sum(o.admitted)) for o in outcomes.values()],
        list(commits.values()),
        started_us,
        ended_us,
        rate,
        lag_us=int(timed.get("p50_ms", 0.0) * 1000),
    )
    refused: Counter[str] = Counter()
    for outcome in outcomes.values():
        refused += outcome.refused
    return {
        "label": label,
        "rate": rate,
        "seconds": seconds,
        **assessment,
        "sustained": assessment["sustained"] and not stats.stopped_early and not refused,
        "stopped_early": stats.stopped_early,
        "submitted": sum(b.count for b in batches if b.index in outcomes),
        "admitted": admitted,
        "refused": dict(refused),
        "still_refused": dict(still_refused),
        "late_p99_ms": stats.late_p99_ms,
        "drained": drained,
        "drain_s": drain_s,
        "mempool_max": monitor.mempool_max,
        "costs": costs(before, after, reference, stats.cpu_s, idle_cpu),
        "latency": timed,
    }


def _drain(
    cluster: Cluster, reference: int, before: dict[str, Any], admitted: int, rate: float
) -> tuple[bool, float]:
    """Wait until every admitted transaction is committed on the reference member (bounded)."""
    base = int(before["metrics"][reference]["txs_committed"])
    bound = min(DRAIN_MAX_S, max(DRAIN_MIN_S, 3 * admitted / max(rate, 100.0)))
    client = cluster.client(reference)
    started = time.monotonic()
    try:
        devnet.wait_until(
            lambda: int(client.call("node_metrics")["txs_committed"]) - base >= admitted,
            bound,
            "the backlog to drain",
        )
    except devnet.DevnetError:
        return False, time.monotonic() - started
    return True, time.monotonic() - started


def sample_submitted(
    batches: list[Batch], outcomes: dict[int, Outcome], size: int
) -> list[tuple[bytes, int]]:
    """Up to `size` admitted transactions spread evenly over the step, with their submission times."""
    admitted = [
        (batch.hashes[i], outcomes[batch.index].sent_us)
        for batch in batches
        if batch.index in outcomes
        for i, ok in enumerate(outcomes[batch.index].admitted)
        if ok
    ]
    stride = max(1, len(admitted) // max(size, 1))
    return admitted[::stride][:size]


def latency(
    cluster: Cluster,
    submitted: list[tuple[bytes, int]],
    commits: dict[int, tuple[int, int]],
    rtt_us: float,
) -> dict[str, Any]:
    """Submission to commit on 2f+1 members for sampled (hash, submission time) pairs; the heights come from
    `chain_tx` (asked of the live members in turn), with the receipts' codes by kind as a sanity check."""
    if not submitted:
        return {"samples": 0}
    alive = cluster.alive()
    located: list[Any] = []
    share = -(-len(submitted) // len(alive))
    for turn, index in enumerate(alive):
        part = submitted[turn * share : (turn + 1) * share]
        located += cluster.client(index).call_many(
            "chain_tx", [{"hash": h.hex()} for h, _ in part], missing_ok=True
        )
    values = [
        (commits[found["height"]][0] - sent_us) / 1000
        for (_, sent_us), found in zip(submitted, located, strict=True)
        if found is not None and found["height"] in commits
    ]
    receipts = Counter(
        f"{found['tx']['kind']}:{found['receipt']['code']}" for found in located if found is not None
    )
    missing = sum(found is None for found in located)
    return {
        **latency_figures(values, rtt_us),
        "uncommitted": missing,
        "receipts": dict(sorted(receipts.items())),
    }
