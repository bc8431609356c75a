"""Pure arithmetic on what a step recorded: throughput and backlog from exact event times, per-transaction
costs from counter differences, latency percentiles. No I/O here, so it is tested without a devnet.

A step is **sustained** when, over its steady part (after a warm-up of a fifth of the step, at most 1 s), the
members commit at least 90 % of what they admit (less one batch or one block, whichever is larger: both arrive
in lumps), the backlog grows by less than 10 % of the offered rate per second, and the members admitted at
least 90 % of the offered load over the whole step (so neither the generator nor admission fell behind), and
the median commit latency is at most SUSTAINED_LAG_MS (a rate served seconds late is a queue being filled, not
a rate the members sustain); the step runner adds: nothing refused for room, no early stop. Commits are
compared with the admissions one median latency earlier (`lag_us`): a transaction admitted at t commits near t
+ lag when the members keep up, so the window of commits is the window of admissions shifted by the lag, and
the backlog at t is what was admitted by t and not committed by t + lag. Without the shift, a latency longer
than the warm-up would read as a growing backlog; with it, an overload still shows, as commits at the members'
capacity, below the admissions, and a backlog growing at the difference.
"""

from __future__ import annotations

import bisect
import itertools
import statistics
from typing import Any

from node.metrics import GENERATIONS as GC_GENERATIONS

COMMITTED_SHARE = 0.9
BACKLOG_GROWTH_SHARE = 0.1
OFFERED_SHARE = 0.9
BACKLOG_POINTS_S = 0.05
SUSTAINED_LAG_MS = 1_000

# Issue 5's latency goal: at half of the throughput goal (0.5 of the ceiling), p50 and p99 within these.
GOAL_LOAD_SHARE = 0.25
GOAL_P50_MS = 25.0
GOAL_P99_MS = 150.0


def assess(
    admissions: list[tuple[int, int]],
    commits: list[tuple[int, int]],
    started_us: int,
    ended_us: int,
    rate: float,
    lag_us: int = 0,
) -> dict[str, Any]:
    """`admissions` and `commits` are (unix microseconds, transactions) events: replies that admitted
    transactions, and blocks committed on 2f+1 members; `lag_us` the step's median commit latency. Rates over
    the steady window, backlog growth, and the verdict."""
    warm_us = min(1_000_000, (ended_us - started_us) // 5)
    low, high = started_us + warm_us, ended_us
    span_s = max(high - low, 1) / 1e6
    admitted = _cumulative(admissions)
    shifted = _cumulative(commits)

    def committed(at_us: int) -> int:
        return int(shifted(at_us + lag_us))

    admitted_in, committed_in = admitted(high) - admitted(low), committed(high) - committed(low)
    admitted_per_s, committed_per_s = admitted_in / span_s, committed_in / span_s
    lumps = [n for t, n in admissions if low < t <= high]
    lumps += [n for t, n in commits if low + lag_us < t <= high + lag_us]
    lump = max(lumps, default=0)
    delivered = admitted(ended_us) - admitted(started_us - 1)
    points = [low + int(k * BACKLOG_POINTS_S * 1e6) for k in range(int(span_s / BACKLOG_POINTS_S) + 1)]
    backlog = [admitted(t) - committed(t) for t in points]
    growth = slope([t / 1e6 for t in points], [float(b) for b in backlog]) if len(points) > 1 else 0.0
    checks = {
        "commits_keep_up": committed_in >= COMMITTED_SHARE * admitted_in - lump,
        "backlog_flat": growth <= BACKLOG_GROWTH_SHARE * rate,
        "offered_admitted": delivered >= OFFERED_SHARE * rate * (ended_us - started_us) / 1e6,
        "latency_bounded": lag_us <= SUSTAINED_LAG_MS * 1000,
    }
    return {
        "committed_per_s": committed_per_s,
        "admitted_per_s": admitted_per_s,
        "backlog_growth_per_s": growth,
        "backlog_end": admitted(high) - committed(high),
        "backlog_max": max(backlog, default=0),
        "lag_ms": lag_us / 1000,
        "checks": checks,
        "sustained": all(checks.values()),
    }


def _cumulative(events: list[tuple[int, int]]) -> Any:
    ordered = sorted(events)
    times = [t for t, _ in ordered]
    totals = [0, *itertools.accumulate(n for _, n in ordered)]

    def before(at_us: int) -> int:
        return totals[bisect.bisect_right(times, at_us)]

    return before


def slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys over xs."""
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    if spread == 0:
        return 0.0
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / spread


def percentile(ordered: list[float], share: float) -> float:
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def latency_figures(values_ms: list[float], rtt_us: float) -> dict[str, Any]:
    """p50, p99 and max of latencies in ms, also in loopback round trips."""
    if not values_ms:
        return {"samples": 0}
    ordered = sorted(values_ms)
    figures = {"p50": percentile(ordered, 0.5), "p99": percentile(ordered, 0.99), "max": ordered[-1]}
    return {
        "samples": len(ordered),
        **{f"{name}_ms": value for name, value in figures.items()},
        **{f"{name}_rtt": value * 1000 / rtt_us for name, value in figures.items()},
    }


def ceiling_tx_per_s(cores: int, verify_per_s: float, members: int) -> float:
    """The verification ceiling: each member checks each signature once, on `cores` cores shared by all."""
    return cores * verify_per_s / members


def goal_latency(step: dict[str, Any] | None, ceiling: float) -> dict[str, Any]:
    """The latency goal judged on the step run at GOAL_LOAD_SHARE of the ceiling (`step` None: skipped). A
    step that did not sustain the load misses the goal whatever its latency: the load was not carried."""
    goal: dict[str, Any] = {
        "rate": GOAL_LOAD_SHARE * ceiling,
        "share_of_ceiling": GOAL_LOAD_SHARE,
        "p50_goal_ms": GOAL_P50_MS,
        "p99_goal_ms": GOAL_P99_MS,
    }
    if step is None:
        return {**goal, "status": "skipped"}
    latency = step["latency"]
    met = (
        step["sustained"]
        and "p50_ms" in latency
        and latency["p50_ms"] <= GOAL_P50_MS
        and latency["p99_ms"] <= GOAL_P99_MS
    )
    return {
        **goal,
        "status": "met" if met else "missed",
        "committed_per_s": step["committed_per_s"],
        "sustained": step["sustained"],
        **{k: latency[k] for k in ("p50_ms", "p99_ms", "max_ms") if k in latency},
    }


def costs(
    before: dict[str, Any], after: dict[str, Any], reference: int, generator_cpu_s: float, idle_cpu: float
) -> dict[str, Any]:
    """Per-transaction and per-block costs between two snapshots of the same live nodes (`Cluster.snapshot`).
    `idle_cpu` is what the nodes burn with no load (CPU seconds per second, all nodes together);
    `generator_cpu_s` is the load generator's own CPU over the same interval."""
    nodes = sorted(set(before["metrics"]) & set(after["metrics"]))

    def delta(index: int, name: str) -> int:
        return int(after["metrics"][index][name]) - int(before["metrics"][index][name])

    txs = delta(reference, "txs_committed")
    blocks = delta(reference, "blocks_committed")
    per_tx, per_block = max(txs, 1), max(blocks, 1)
    sig_per_tx = [delta(i, "signature_checks") / max(delta(i, "txs_committed"), 1) for i in nodes]
    worker_per_tx = [delta(i, "worker_signature_checks") / max(delta(i, "txs_committed"), 1) for i in nodes]
    node_cpu = sum(after["cpu_s"][i] - before["cpu_s"][i] for i in nodes)
    seconds = after["time"] - before["time"]
    return {
        "txs": txs,
        "blocks": blocks,
        "seconds": seconds,
        "node_cpu_us_per_tx": node_cpu * 1e6 / per_tx,
        "node_cpu_us_per_tx_above_idle": max(0.0, node_cpu - idle_cpu * seconds) * 1e6 / per_tx,
        "node_cpu_cores": node_cpu / max(seconds, 1e-9),
        "generator_cpu_us_per_tx": generator_cpu_s * 1e6 / per_tx,
        "suite_process_cpu_us_per_tx": (after["own_cpu_s"] - before["own_cpu_s"]) * 1e6 / per_tx,
        "sig_checks_per_tx_per_node": statistics.fmean(sig_per_tx) if sig_per_tx else 0.0,
        "sig_checks_per_tx_by_node": sig_per_tx,
        "worker_sig_checks_per_tx_by_node": worker_per_tx,
        "writes_per_tx": sum(delta(i, "network_writes") for i in nodes) / per_tx,
        "bytes_per_tx": sum(delta(i, "network_bytes_written") for i in nodes) / per_tx,
        "writes_per_tx_by_kind": {
            kind: sum(delta(i, f"{kind}_writes") for i in nodes) / per_tx
            for kind in ("consensus", "gossip", "request")
        },
        "messages_per_block": sum(delta(i, "consensus_messages_sent") for i in nodes) / per_block,
        "vote_checks_per_block_per_node": sum(delta(i, "vote_signature_checks") for i in nodes)
        / max(len(nodes), 1)
        / per_block,
        "txs_per_block": txs / per_block,
        "collector": collector_pauses(before, after, nodes),
    }


def collector_pauses(before: dict[str, Any], after: dict[str, Any], nodes: list[int]) -> dict[str, Any]:
    """The garbage collector's pauses over the interval, summed over the nodes (`collector_counters`)."""

    def total(name: str) -> int:
        return sum(
            int(after["metrics"][i].get("collector_counters", {}).get(name, 0))
            - int(before["metrics"][i].get("collector_counters", {}).get(name, 0))
            for i in nodes
        )

    return {
        "collections_by_generation": [total(f"collections_gen{g}") for g in GC_GENERATIONS],
        "pause_ms_by_generation": [total(f"pause_us_gen{g}") / 1e3 for g in GC_GENERATIONS],
        "pauses_10_to_100ms": total("pauses_10_to_100ms"),
        "pauses_over_100ms": total("pauses_over_100ms"),
    }
