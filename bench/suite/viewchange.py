"""View change: SIGKILL the proposer under light load and time the survivors' next commits.

The proposer of the height in flight is read from `node_status` and killed. Two figures come out. The time
from the kill to the next commit on 2f+1 survivors is what a client sees; if the victim had already sent its
proposal, that commit needs no view change. So the suite also finds the first height after the kill that
committed in a view above 0 (its certificate says so) and reports its stall: from the later of the kill and
the previous commit to its commit, both on 2f+1 survivors. The goal compares that stall with the configured
view timeout (at most 2x).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from bench.suite.cluster import Cluster
from bench.suite.loadgen import OpenLoop
from bench.suite.workload import MarketMix
from node import devnet

BEFORE_KILL_S = 2.0


def run(
    cluster: Cluster,
    mix: MarketMix,
    loop: OpenLoop,
    rate: float,
    view_timeout_ms: int,
    spared: set[int] | None = None,
) -> dict[str, Any]:
    """Kill the proposer (waiting, bounded, for one outside `spared`) and time the recovery."""
    after_kill_s = 2 * view_timeout_ms / 1000 + 2.0
    batches = mix.plan(rate, BEFORE_KILL_S + after_kill_s)
    stop = threading.Event()
    sent: dict[str, Any] = {}

    def send() -> None:
        sent["stats"], sent["outcomes"] = loop.run(batches, stop)

    sender = threading.Thread(target=send)
    sender.start()
    try:
        time.sleep(BEFORE_KILL_S)  # light load runs for a while before the kill
        reader = cluster.client(cluster.alive()[0])
        status: dict[str, Any] = {}

        def proposer_to_kill() -> bool:
            status.update(reader.call("node_status"))
            return cluster.addresses.index(status["proposer"]) not in (spared or set())

        devnet.wait_until(proposer_to_kill, 30.0, "a proposer that may be killed")
        victim = cluster.addresses.index(status["proposer"])
        height_at_kill = int(status["height"])
        killed_us = cluster.kill(victim)
    finally:
        sender.join()
    survivors = cluster.alive()
    loop.resend(batches, sent["outcomes"])
    head = cluster.client(survivors[0]).call("chain_head")["height"]
    devnet.wait_until(
        lambda: min(cluster.client(i).call("chain_head")["height"] for i in survivors) >= head,
        30.0,
        "the survivors to agree on the head",
    )
    times = {h: t for h, (t, _) in cluster.quorum_commit_times(max(1, height_at_kill - 1), survivors).items()}
    result: dict[str, Any] = {
        "rate": rate,
        "victim": cluster.names[victim],
        "height_at_kill": height_at_kill,
        "view_timeout_ms": view_timeout_ms,
    }
    after = sorted(h for h, t in times.items() if t > killed_us)
    if not after:
        return {**result, "kill_to_next_commit_ms": None, "view_change_ms": None, "ratio": None}
    result["kill_to_next_commit_ms"] = (times[after[0]] - killed_us) / 1000
    reader = cluster.client(survivors[0])
    for height in after[: 3 * cluster.size]:  # the victim's turn to propose comes within n heights
        certificate = reader.call("chain_block", {"height": height})["certificate"]
        if certificate is not None and certificate["view"] > 0:
            previous = times.get(height - 1, killed_us)
            stall_ms = (times[height] - max(killed_us, previous)) / 1000
            return {
                **result,
                "view_change_height": height,
                "view": certificate["view"],
                "view_change_ms": stall_ms,
                "ratio": stall_ms / view_timeout_ms,
            }
    return {**result, "view_change_ms": None, "ratio": None}
