"""The suite's arithmetic, without a devnet: sustained or not, quorum commit times, costs, the search."""

from __future__ import annotations

from typing import Any

from bench.suite.analysis import (
    assess,
    ceiling_tx_per_s,
    collector_pauses,
    costs,
    goal_latency,
    latency_figures,
)
from bench.suite.cluster import quorum_times
from bench.suite.runner import search

SECOND = 1_000_000


def steady(rate: int, seconds: int, lag_us: int, capacity: int | None = None) -> tuple[list, list]:
    """Batches of rate/10 every 100 ms; blocks commit what was admitted `lag_us` earlier, up to capacity."""
    admissions = [(k * SECOND // 10, rate // 10) for k in range(seconds * 10)]
    commits, pending = [], 0
    per_block = (capacity or rate) // 10
    for k in range(seconds * 10):
        pending += rate // 10
        taken = min(pending, per_block)
        pending -= taken
        commits.append((k * SECOND // 10 + lag_us, taken))
    return admissions, commits


def test_a_rate_the_members_keep_up_with_is_sustained() -> None:
    admissions, commits = steady(1_000, 10, lag_us=150_000)
    result = assess(admissions, commits, 0, 10 * SECOND, 1_000)
    assert result["sustained"], result
    assert 950 <= result["committed_per_s"] <= 1_050 and abs(result["backlog_growth_per_s"]) < 50


def test_a_long_latency_is_not_mistaken_for_a_growing_backlog_but_is_not_sustained() -> None:
    """Members that keep pace 3 s late: without the shift that reads as a growing backlog; with it the
    backlog is flat, and the step still fails, on latency alone (a queue is being filled)."""
    admissions, commits = steady(1_000, 10, lag_us=3 * SECOND)
    unshifted = assess(admissions, commits, 0, 10 * SECOND, 1_000)["checks"]
    assert not (unshifted["commits_keep_up"] and unshifted["backlog_flat"])
    result = assess(admissions, commits, 0, 10 * SECOND, 1_000, lag_us=3 * SECOND)
    assert result["checks"] == {
        "commits_keep_up": True,
        "backlog_flat": True,
        "offered_admitted": True,
        "latency_bounded": False,
    }
    assert not result["sustained"] and 950 <= result["committed_per_s"] <= 1_050


def test_a_latency_under_the_bound_is_sustained() -> None:
    admissions, commits = steady(1_000, 10, lag_us=900_000)
    result = assess(admissions, commits, 0, 10 * SECOND, 1_000, lag_us=900_000)
    assert result["sustained"], result


def test_an_overload_shows_with_the_shift_too() -> None:
    admissions, commits = steady(1_000, 10, lag_us=150_000, capacity=700)
    result = assess(admissions, commits, 0, 10 * SECOND, 1_000, lag_us=2 * SECOND)
    assert not result["sustained"] and result["committed_per_s"] <= 750


def test_a_growing_backlog_is_not_sustained() -> None:
    admissions, commits = steady(1_000, 10, lag_us=150_000, capacity=700)
    result = assess(admissions, commits, 0, 10 * SECOND, 1_000)
    assert not result["sustained"]
    assert result["checks"] == {
        "commits_keep_up": False,
        "backlog_flat": False,
        "offered_admitted": True,
        "latency_bounded": True,
    }
    assert 650 <= result["committed_per_s"] <= 750 and result["backlog_growth_per_s"] > 250


def test_a_generator_that_falls_behind_is_not_sustained() -> None:
    admissions, commits = steady(500, 10, lag_us=150_000)
    result = assess(admissions, commits, 0, 10 * SECOND, 1_000)
    assert not result["sustained"] and not result["checks"]["offered_admitted"]


def test_quorum_time_is_the_2f_plus_1_th_earliest() -> None:
    nodes = [{1: (100, 5), 2: (300, 0)}, {1: (120, 5), 2: (250, 0)}, {1: (90, 5)}, {1: (500, 5), 2: (260, 0)}]
    assert quorum_times(nodes, 3) == {1: (120, 5), 2: (300, 0)}
    assert quorum_times(nodes[:2], 3) == {}


def test_costs_are_per_committed_transaction_and_block() -> None:
    def metrics(txs: int, checks: int, writes: int, messages: int) -> dict[str, int]:
        zero = dict.fromkeys(
            ("consensus_writes", "gossip_writes", "request_writes", "vote_signature_checks"), 0
        )
        return {
            **zero,
            "txs_committed": txs,
            "blocks_committed": txs // 100,
            "signature_checks": checks,
            "worker_signature_checks": checks // 2,
            "network_writes": writes,
            "network_bytes_written": 10 * writes,
            "consensus_messages_sent": messages,
        }

    before = {"time": 0.0, "own_cpu_s": 1.0, "cpu_s": {0: 1.0, 1: 1.0}, "metrics": {0: metrics(0, 0, 0, 0)}}
    before["metrics"][1] = metrics(0, 0, 0, 0)
    after = {"time": 2.0, "own_cpu_s": 1.5, "cpu_s": {0: 2.0, 1: 3.0}}
    after["metrics"] = {0: metrics(1_000, 1_000, 50, 90), 1: metrics(1_000, 1_100, 70, 90)}
    result = costs(before, after, 0, generator_cpu_s=0.1, idle_cpu=0.5)
    assert result["txs"] == 1_000 and result["blocks"] == 10
    assert result["node_cpu_us_per_tx"] == 3_000 and result["node_cpu_us_per_tx_above_idle"] == 2_000
    assert result["generator_cpu_us_per_tx"] == 100
    assert result["sig_checks_per_tx_by_node"] == [1.0, 1.1]
    assert result["writes_per_tx"] == 0.12 and result["bytes_per_tx"] == 1.2
    assert result["messages_per_block"] == 18
    assert result["collector"] == {
        "collections_by_generation": [0, 0, 0],
        "pause_ms_by_generation": [0.0, 0.0, 0.0],
        "pauses_10_to_100ms": 0,
        "pauses_over_100ms": 0,
    }


def test_collector_pauses_are_summed_over_the_nodes_and_a_missing_counter_is_zero() -> None:
    def reading(**counters: int) -> dict[str, Any]:
        return {"collector_counters": counters}

    before = {"metrics": {0: reading(collections_gen0=5, pause_us_gen0=1_000), 1: reading()}}
    after = {
        "metrics": {
            0: reading(collections_gen0=9, pause_us_gen0=3_500, collections_gen2=1, pause_us_gen2=150_000),
            1: reading(collections_gen1=2, pause_us_gen1=24_000, pauses_10_to_100ms=1, pauses_over_100ms=1),
        }
    }
    assert collector_pauses(before, after, [0, 1]) == {
        "collections_by_generation": [4, 2, 1],
        "pause_ms_by_generation": [2.5, 24.0, 150.0],
        "pauses_10_to_100ms": 1,
        "pauses_over_100ms": 1,
    }


def test_latency_figures_in_ms_and_round_trips() -> None:
    figures = latency_figures([float(v) for v in range(1, 101)], rtt_us=50.0)
    assert (figures["p50_ms"], figures["p99_ms"], figures["max_ms"]) == (51.0, 100.0, 100.0)
    assert figures["p50_rtt"] == 1_020
    assert latency_figures([], 50.0) == {"samples": 0}


def test_the_search_stops_at_the_first_rate_not_sustained_and_halves_below_the_first() -> None:
    def step_of(capacity: float) -> Any:
        def step(rate: float) -> dict[str, Any]:
            return {"rate": rate, "sustained": rate <= capacity, "committed_per_s": min(rate, capacity)}

        return step

    up = search(step_of(2_500), [500, 1_000, 2_000, 4_000, 8_000])
    assert [s["rate"] for s in up["steps"]] == [500, 1_000, 2_000, 4_000] and up["max_sustained"] == 2_000
    down = search(step_of(150), [500, 1_000])
    assert [s["rate"] for s in down["steps"]] == [500, 250, 125] and down["max_sustained"] == 125
    assert search(step_of(1), [100])["max_sustained"] is None


def test_the_latency_goal_is_judged_at_a_quarter_of_the_ceiling_and_needs_the_load_carried() -> None:
    ceiling = ceiling_tx_per_s(cores=2, verify_per_s=16_000, members=4)
    assert ceiling == 8_000

    def step(p50: float, p99: float, sustained: bool = True) -> dict[str, Any]:
        latency = {"samples": 100, "p50_ms": p50, "p99_ms": p99, "max_ms": p99 + 1}
        return {"sustained": sustained, "committed_per_s": 1_990.0, "latency": latency}

    met = goal_latency(step(25, 150), ceiling)
    assert met["status"] == "met" and met["rate"] == 2_000 and met["share_of_ceiling"] == 0.25
    assert (met["p50_ms"], met["p99_ms"], met["max_ms"], met["committed_per_s"]) == (25, 150, 151, 1_990)
    assert goal_latency(step(26, 100), ceiling)["status"] == "missed"
    assert goal_latency(step(20, 151), ceiling)["status"] == "missed"
    assert goal_latency(step(10, 20, sustained=False), ceiling)["status"] == "missed"
    no_samples = {"sustained": True, "committed_per_s": 0.0, "latency": {"samples": 0}}
    assert goal_latency(no_samples, ceiling)["status"] == "missed"
    skipped = goal_latency(None, ceiling)
    assert skipped["status"] == "skipped" and skipped["rate"] == 2_000 and "p50_ms" not in skipped
