"""Smoke test of the benchmark suite (`python -m bench --quick`) on a real 4-member devnet on 127.0.0.1.

It checks the report's structure and that its values are sane, never how fast anything is: the machine may
be busy. Every node the suite starts is stopped by the suite itself, also on failure; the `finally` below
stops any node a failure might still have left running (their pids are in the devnet's devnet.json).
"""

from __future__ import annotations

import json
from pathlib import Path

from bench.__main__ import main
from bench.suite.analysis import goal_latency
from bench.suite.report import table, write
from node import devnet


def test_quick_run_reports_every_figure(tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    try:
        report = main(["--quick", "--results-dir", str(tmp_path / "results"), "--workdir", str(workdir)])
    finally:
        leftovers = (
            devnet.down(workdir / "devnet") if (workdir / "devnet" / devnet.DEVNET_FILE).exists() else []
        )
    assert leftovers == [], f"nodes still running after the suite: {leftovers}"

    calibration = report["calibration"]
    assert calibration["verify"]["per_s"] > 0 and calibration["cores"]["usable"] >= 1
    assert 0 < calibration["loopback"]["p50_us"] <= calibration["loopback"]["p99_us"]

    (search,) = report["searches"]
    first = search["steps"][0]
    assert first["committed_per_s"] > 0 and first["admitted"] == first["submitted"] > 0
    assert first["drained"] and first["refused"] == {}
    for step in search["steps"] + report["latency_steps"]:
        latency = step["latency"]
        assert latency["samples"] > 0 and latency["uncommitted"] == 0
        assert 0 < latency["p50_ms"] <= latency["p99_ms"] <= latency["max_ms"]
        assert latency["p50_rtt"] > 1
        assert all(code.endswith(":0") for code in latency["receipts"] if code.startswith("transfer"))
        costs = step["costs"]
        assert costs["txs"] > 0 and costs["blocks"] > 0
        # Each member checks each signature once (the verifier joins concurrent checks of one transaction);
        # the window's edges can split a block's transactions from their checks by a little.
        assert 0.95 <= costs["sig_checks_per_tx_per_node"] <= 1.05, costs["sig_checks_per_tx_by_node"]
        assert costs["node_cpu_us_per_tx"] > 0 and costs["generator_cpu_us_per_tx"] > 0
        assert costs["writes_per_tx"] > 0 and costs["bytes_per_tx"] > 0 and costs["messages_per_block"] > 0
        collector = costs["collector"]
        assert len(collector["collections_by_generation"]) == len(collector["pause_ms_by_generation"]) == 3
        assert min(collector["collections_by_generation"] + collector["pause_ms_by_generation"]) >= 0
    assert len(report["latency_steps"]) == 3

    summary = report["summary"]
    assert summary["members"] == 4 and summary["ceiling_tx_per_s"] > 0
    assert summary["max_sustained_tx_per_s"] is None or summary["ceiling_fraction"] > 0
    assert summary["kill_to_next_commit_ms"] > 0
    assert summary["view_change_ms"] is not None and summary["view_change_ratio"] > 0
    assert summary["catchup_status"] == "skipped"
    assert report["goal_latency_step"] is None and summary["goal_latency"]["status"] == "skipped"

    text = table(report)
    assert "garbage-collector pauses, all nodes" in text and "latency at goal load" in text
    # A run with the goal's step (not in --quick, whose rates are far below a quarter of the ceiling): its
    # verdict and its line in the steps table, shown here with a timed step of this run in its place.
    with_goal = {**report, "goal_latency_step": {**report["latency_steps"][0], "label": "latency goal"}}
    with_goal["summary"] = {
        **summary,
        "goal_latency": goal_latency(with_goal["goal_latency_step"], summary["ceiling_tx_per_s"]),
    }
    text = table(with_goal)
    assert "goal p50 <= 25 ms, p99 <= 150 ms: " in text and "  latency goal " in text
    write(with_goal, tmp_path / "with-goal", plot=True)
    assert Path(with_goal["files"]["png"]).stat().st_size > 0

    files = report["files"]
    assert json.loads(Path(files["json"]).read_text())["summary"] == json.loads(json.dumps(summary))
    assert Path(files["png"]).stat().st_size > 0
