"""The suite from start to end: calibrate, start the devnet, search the throughput, time latency at shares of
it, kill the proposer, stop the devnet (always), then catch-up; the report is one JSON-ready dict."""

from __future__ import annotations

import datetime
import functools
import importlib
import platform
import pstats
import shutil
import statistics
import sys
import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.suite import viewchange
from bench.suite.analysis import GOAL_LOAD_SHARE, ceiling_tx_per_s, goal_latency
from bench.suite.calibrate import calibrate
from bench.suite.cluster import Cluster
from bench.suite.loadgen import OpenLoop
from bench.suite.options import Options
from bench.suite.steps import idle_cpu, run_step
from bench.suite.workload import MarketMix
from ledger.genesis import BlockParams
from node import devnet

IDLE_SECONDS = 2.0
PROFILE_TOP = 25
MIN_SEARCH_RATE = 25.0


def run(options: Options) -> dict[str, Any]:
    started = datetime.datetime.now(datetime.UTC)
    say(f"calibrating: {options.verify_count} verifications x 3, {options.pings} loopback round trips")
    calibration = calibrate(options.verify_count, options.pings)
    report: dict[str, Any] = {
        "started": started.isoformat(timespec="seconds"),
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(options).items()},
        "machine": {"python": sys.version.split()[0], "platform": platform.platform()},
        "calibration": calibration,
    }
    with ExitStack() as stack:
        if options.workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fedmarket-bench-")))
        else:
            workdir = options.workdir
            workdir.mkdir(parents=True, exist_ok=True)
        report.update(_on_devnet(options, workdir, calibration))
        report["catchup"] = run_catchup(options, workdir)
    report["seconds"] = (datetime.datetime.now(datetime.UTC) - started).total_seconds()
    report["summary"] = summarize(report, options)
    return report


def _on_devnet(options: Options, workdir: Path, calibration: dict[str, Any]) -> dict[str, Any]:
    params = BlockParams(
        empty_block_interval_ms=options.empty_block_interval_ms, view_timeout_ms=options.view_timeout_ms
    )
    say(f"starting a devnet of {options.members} members with {options.accounts} load accounts in {workdir}")
    cluster = Cluster(workdir / "devnet", options.members, options.accounts, params)
    rtt_us = float(calibration["loopback"]["p50_us"])
    member = options.profile_member
    profile = None if member is None else (member, workdir / f"member-{member}.prof")
    try:
        cluster.start(profile)
        say("signing is done before each step's clock starts; each step drains before the next")
        mix = MarketMix(
            cluster.load_keys(),
            options.members,
            cluster.chain_id,
            devnet.RESOURCE_CLASSES,
            devnet.REGIONS,
            batch_cap=options.batch,
        )
        loop = OpenLoop(cluster.urls, cluster.alive, options.senders)
        idle = idle_cpu(cluster, IDLE_SECONDS)
        say(f"idle devnet: {idle:.2f} cores of CPU")

        def step(rate: float, seconds: float, label: str) -> dict[str, Any]:
            result = run_step(
                cluster,
                mix,
                loop,
                rate,
                seconds,
                label=label,
                sample_size=options.latency_sample,
                rtt_us=rtt_us,
                idle_cpu=idle,
            )
            say(step_line(result))
            return result

        searches = [
            search(
                functools.partial(step, seconds=options.step_seconds, label=f"search {n + 1}"), options.rates
            )
            for n in range(options.runs)
        ]
        base, base_sustained = latency_base(searches)
        latency_steps = [
            step(max(1.0, share * base), options.latency_seconds, f"latency {share:.0%}")
            for share in options.latency_shares
        ]
        goal_step = None
        if options.goal_latency:
            goal_rate = GOAL_LOAD_SHARE * ceiling(calibration, options.members)
            say(f"latency at the goal's load: {GOAL_LOAD_SHARE:g} of the ceiling, {goal_rate:,.0f} tx/s")
            goal_step = step(goal_rate, options.latency_seconds, "latency goal")
        view_change: dict[str, Any] = {"status": "skipped"}
        if not options.skip_view_change:
            say(f"view change: light load of {options.view_change_rate:g} tx/s, then SIGKILL of the proposer")
            spared = set() if member is None else {member}  # a killed member writes no profile
            view_change = viewchange.run(
                cluster, mix, loop, options.view_change_rate, options.view_timeout_ms, spared
            )
    except BaseException:
        for index in range(cluster.size):
            say(f"--- node {index} log tail\n{cluster.log_tail(index)}")
        raise
    finally:
        cluster.stop()
    return {
        "profile": None if profile is None else save_profile(*profile, options.results_dir),
        "idle_node_cpu_cores": idle,
        "searches": searches,
        "latency_base": {"tx_per_s": base, "sustained": base_sustained},
        "latency_steps": latency_steps,
        "goal_latency_step": goal_step,
        "view_change": view_change,
    }


def save_profile(member: int, path: Path, results_dir: Path) -> dict[str, Any]:
    """Print the profiled member's top functions by internal time and keep its stats under `results_dir`."""
    if not path.exists():
        return {"member": member, "error": "the member wrote no profile"}
    results_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d-%H%M%S")
    kept = results_dir / f"{stamp}-member-{member}.prof"
    shutil.copyfile(path, kept)
    say(f"member {member}, top {PROFILE_TOP} functions by internal time (stats in {kept}):")
    pstats.Stats(str(kept), stream=sys.stderr).sort_stats("tottime").print_stats(PROFILE_TOP)
    return {"member": member, "stats_file": str(kept)}


def search(step: Callable[[float], dict[str, Any]], rates: list[float]) -> dict[str, Any]:
    """Run the rates upwards until one is not sustained; the highest sustained committed rate. If the first
    rate is not sustained already, halve it (down to `MIN_SEARCH_RATE`) until one is."""
    steps: list[dict[str, Any]] = []
    best: float | None = None
    for rate in rates:
        steps.append(step(rate))
        if not steps[-1]["sustained"]:
            break
        best = max(best or 0.0, steps[-1]["committed_per_s"])
    rate = rates[0] / 2
    while best is None and rate >= MIN_SEARCH_RATE:
        steps.append(step(rate))
        if steps[-1]["sustained"]:
            best = steps[-1]["committed_per_s"]
        rate /= 2
    return {"steps": steps, "max_sustained": best}


def latency_base(searches: list[dict[str, Any]]) -> tuple[float, bool]:
    """The median of the runs' highest sustained rates; if none was sustained, the best committed rate."""
    maxima = [s["max_sustained"] for s in searches if s["max_sustained"] is not None]
    if maxima:
        return float(statistics.median(maxima)), True
    committed = [step["committed_per_s"] for s in searches for step in s["steps"]]
    return max(committed, default=1.0), False


def run_catchup(options: Options, workdir: Path) -> dict[str, Any]:
    """`bench.catchup.run(members, blocks, txs_per_block, workdir)` when that module exists."""
    if options.skip_catchup:
        return {"status": "skipped"}
    try:
        module = importlib.import_module("bench.catchup")
    except ModuleNotFoundError as exc:
        if exc.name not in ("bench.catchup", "bench"):
            raise
        module = None
    runner = getattr(module, "run", None)
    if not callable(runner):
        say("catch-up: not available")
        return {"status": "not available"}
    blocks, txs = options.catchup_blocks, options.catchup_txs_per_block
    say(f"catch-up: a member {blocks} blocks behind ({txs} txs each)")
    directory = workdir / "catchup"
    directory.mkdir(parents=True, exist_ok=True)
    try:
        figures = runner(options.members, options.catchup_blocks, options.catchup_txs_per_block, directory)
    except Exception as exc:  # a failure of the catch-up run is reported, the rest of the report stands
        say(f"catch-up failed: {exc!r}")
        return {"status": "failed", "error": repr(exc)}
    result = {"status": "ok", **{k: float(v) for k, v in figures.items()}}
    say(f"catch-up: {result.get('tx_per_s', 0):,.0f} tx/s, {result.get('blocks_per_s', 0):,.0f} blocks/s")
    return result


def summarize(report: dict[str, Any], options: Options) -> dict[str, Any]:
    """The headline figures and their ratios (the table of docs/performance.md)."""
    calibration = report["calibration"]
    maxima = [s["max_sustained"] for s in report["searches"] if s["max_sustained"] is not None]
    throughput = statistics.median(maxima) if maxima else None
    ceiling_rate = ceiling(calibration, options.members)
    best_steps = [
        max((st for st in s["steps"] if st["sustained"]), key=lambda st: st["committed_per_s"], default=None)
        for s in report["searches"]
    ]
    reference = next((st for st in best_steps if st is not None), None)
    if reference is None:
        reference = max(
            (st for s in report["searches"] for st in s["steps"]), key=lambda st: st["committed_per_s"]
        )
    view_change = report["view_change"]
    return {
        "members": options.members,
        "cores": int(calibration["cores"]["usable"]),
        "verify_per_s": float(calibration["verify"]["per_s"]),
        "loopback_rtt_us": calibration["loopback"]["p50_us"],
        "ceiling_tx_per_s": ceiling_rate,
        "max_sustained_tx_per_s": throughput,
        "max_sustained_min": min(maxima) if maxima else None,
        "max_sustained_max": max(maxima) if maxima else None,
        "runs": len(report["searches"]),
        "ceiling_fraction": None if throughput is None else throughput / ceiling_rate,
        "latency": [
            {"share": share, "rate": st["rate"], "committed_per_s": st["committed_per_s"], **st["latency"]}
            for share, st in zip(options.latency_shares, report["latency_steps"], strict=True)
        ],
        "goal_latency": goal_latency(report["goal_latency_step"], ceiling_rate),
        "costs_at": {"label": reference["label"], "rate": reference["rate"]},
        "costs": reference["costs"],
        "view_change_ms": view_change.get("view_change_ms"),
        "kill_to_next_commit_ms": view_change.get("kill_to_next_commit_ms"),
        "view_timeout_ms": options.view_timeout_ms,
        "view_change_ratio": view_change.get("ratio"),
        "catchup_tx_per_s": report["catchup"].get("tx_per_s"),
        "catchup_status": report["catchup"]["status"],
    }


def ceiling(calibration: dict[str, Any], members: int) -> float:
    """The run's verification ceiling in tx/s, from its own calibration."""
    cores, verify_per_s = int(calibration["cores"]["usable"]), float(calibration["verify"]["per_s"])
    return ceiling_tx_per_s(cores, verify_per_s, members)


def step_line(step: dict[str, Any]) -> str:
    latency = step["latency"]
    p50 = f"{latency['p50_ms']:.0f}" if "p50_ms" in latency else "-"
    p99 = f"{latency['p99_ms']:.0f}" if "p99_ms" in latency else "-"
    return (
        f"  {step['label']:<12} offered {step['rate']:>7.0f}  "
        f"committed {step['committed_per_s']:>7.0f} tx/s  "
        f"{'sustained' if step['sustained'] else 'NOT sustained':<13}  p50 {p50} ms  p99 {p99} ms  "
        f"{' '.join(name for name, ok in step.get('checks', {}).items() if not ok)}  "
        f"backlog +{step['backlog_growth_per_s']:.0f}/s  drained {step['drain_s']:.1f} s"
    )


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
