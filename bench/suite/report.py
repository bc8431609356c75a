"""The report: a table of figures with their ratios on stdout, JSON and a PNG plot under bench/results/."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any


def _num(value: float | None, digits: int = 0, unit: str = "") -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}{unit}"


def table(report: dict[str, Any]) -> str:
    s = report["summary"]
    cal = report["calibration"]
    rtt = s["loopback_rtt_us"]
    costs = s["costs"]
    lines = [
        f"fedmarket benchmark: {s['members']} members on 127.0.0.1, {s['cores']} usable cores "
        f"(os.cpu_count {cal['cores']['cpu_count']}), {report['seconds']:.0f} s",
        "",
        f"{'figure':<46} {'value':>16}  ratio",
        f"{'-' * 46} {'-' * 16}  {'-' * 40}",
    ]

    def row(name: str, value: str, ratio: str = "") -> None:
        lines.append(f"{name:<46} {value:>16}  {ratio}")

    row("ed25519 verify, one core (V)", _num(s["verify_per_s"], 0, "/s"))
    row("loopback round trip p50 / p99", f"{rtt:.0f} / {cal['loopback']['p99_us']:.0f} us")
    row("verification ceiling cores x V / N", _num(s["ceiling_tx_per_s"], 0, " tx/s"))
    spread = ""
    if s["runs"] > 1 and s["max_sustained_min"] is not None:
        spread = f" (min {s['max_sustained_min']:,.0f}, max {s['max_sustained_max']:,.0f}, {s['runs']} runs)"
    fraction = s["ceiling_fraction"]
    row(
        "max sustained committed throughput",
        _num(s["max_sustained_tx_per_s"], 0, " tx/s"),
        ("-" if fraction is None else f"{fraction:.2f} of the ceiling (tx/s x N / (cores x V))") + spread,
    )
    for point in s["latency"]:
        if "p50_ms" not in point:
            row(f"latency at {point['share']:.0%} ({point['rate']:,.0f} tx/s)", "no samples")
            continue
        row(
            f"latency at {point['share']:.0%} ({point['rate']:,.0f} tx/s) p50/p99/max",
            f"{point['p50_ms']:.0f}/{point['p99_ms']:.0f}/{point['max_ms']:.0f} ms",
            f"{point['p50_rtt']:,.0f}/{point['p99_rtt']:,.0f}/{point['max_rtt']:,.0f} loopback round trips",
        )
    goal = s["goal_latency"]
    name = f"latency at goal load ({goal['rate']:,.0f} tx/s)"
    if goal["status"] == "skipped":
        row(name, "skipped")
    else:
        measured = "no samples"
        if "p50_ms" in goal:
            measured = f"{goal['p50_ms']:.0f}/{goal['p99_ms']:.0f}/{goal['max_ms']:.0f} ms"
        carried = ""
        if not goal["sustained"]:
            carried = f", not sustained ({goal['committed_per_s']:,.0f} tx/s committed)"
        row(
            name + " p50/p99/max",
            measured,
            f"{goal['share_of_ceiling']:g} of the ceiling; goal p50 <= {goal['p50_goal_ms']:.0f} ms, "
            f"p99 <= {goal['p99_goal_ms']:.0f} ms: {goal['status']}{carried}",
        )
    at = f" (at {s['costs_at']['label']}, {s['costs_at']['rate']:,.0f} tx/s)"
    row("node CPU per committed tx, all nodes" + "", _num(costs["node_cpu_us_per_tx"], 0, " us"), at.strip())
    row("load generator CPU per committed tx", _num(costs["generator_cpu_us_per_tx"], 0, " us"))
    by_node = costs["sig_checks_per_tx_by_node"]
    row(
        "signature checks per tx per node",
        _num(costs["sig_checks_per_tx_per_node"], 3),
        "by node " + " ".join(f"{v:.3f}" for v in by_node) + " (goal 1.0)",
    )
    kinds = costs["writes_per_tx_by_kind"]
    row(
        "network writes per tx, all nodes",
        _num(costs["writes_per_tx"], 3),
        " ".join(f"{k} {v:.3f}" for k, v in kinds.items()),
    )
    row("network bytes per tx, all nodes", _num(costs["bytes_per_tx"], 0, " B"))
    row(
        "consensus messages per block, all nodes",
        _num(costs["messages_per_block"], 1),
        f"{costs['txs_per_block']:.0f} txs per block",
    )
    collector = costs["collector"]
    row(
        "garbage-collector pauses, all nodes",
        _num(sum(collector["pause_ms_by_generation"]), 0, " ms"),
        f"{sum(collector['collections_by_generation'])} collections, "
        f"{collector['pauses_over_100ms']} over 100 ms{at}",
    )
    ratio = s["view_change_ratio"]
    row(
        "proposer killed: view change stall",
        _num(s["view_change_ms"], 0, " ms"),
        "-" if ratio is None else f"{ratio:.2f} x view timeout {s['view_timeout_ms']} ms (goal <= 2)",
    )
    row("proposer killed: kill to next commit", _num(s["kill_to_next_commit_ms"], 0, " ms"))
    if s["catchup_status"] == "ok":
        catchup = report["catchup"]
        row(
            "catch-up",
            _num(s["catchup_tx_per_s"], 0, " tx/s"),
            f"{catchup.get('blocks_per_s', 0):,.0f} blocks/s over {catchup.get('blocks', 0):,.0f} blocks",
        )
    else:
        row("catch-up", s["catchup_status"])
    lines += ["", "steps:", _steps_table(report)]
    return "\n".join(lines)


def _steps_table(report: dict[str, Any]) -> str:
    names: tuple[str, ...] = ("step", "offered", "commit", "ok", "p50ms", "p99ms", "maxms", "cpu us/tx")
    names += ("gen us/tx", "sig/tx", "wr/tx", "B/tx", "msg/blk", "tx/blk")
    rows = [_cells(names)]
    for st in _all_steps(report):
        lat, c = st["latency"], st["costs"]
        rows.append(
            _cells(
                (
                    st["label"],
                    f"{st['rate']:,.0f}",
                    f"{st['committed_per_s']:,.0f}",
                    "yes" if st["sustained"] else "no",
                    _num(lat.get("p50_ms")),
                    _num(lat.get("p99_ms")),
                    _num(lat.get("max_ms")),
                    f"{c['node_cpu_us_per_tx']:,.0f}",
                    f"{c['generator_cpu_us_per_tx']:,.0f}",
                    f"{c['sig_checks_per_tx_per_node']:.2f}",
                    f"{c['writes_per_tx']:.2f}",
                    f"{c['bytes_per_tx']:,.0f}",
                    f"{c['messages_per_block']:.1f}",
                    f"{c['txs_per_block']:.0f}",
                )
            )
        )
    return "\n".join(rows)


def _all_steps(report: dict[str, Any]) -> list[dict[str, Any]]:
    steps = [st for s in report["searches"] for st in s["steps"]] + report["latency_steps"]
    return steps + ([report["goal_latency_step"]] if report["goal_latency_step"] else [])


_WIDTHS = (12, 8, 8, 3, 7, 7, 7, 9, 9, 6, 6, 6, 7, 6)


def _cells(values: tuple[str, ...]) -> str:
    first, *rest = values
    return f"  {first:<{_WIDTHS[0]}} " + " ".join(f"{v:>{w}}" for v, w in zip(rest, _WIDTHS[1:], strict=True))


def write(report: dict[str, Any], directory: Path, plot: bool) -> dict[str, str]:
    """`<UTC time>-n<N>.json` (and `.png` with `plot`) in `directory`; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d-%H%M%S")
    stem = directory / f"{stamp}-n{report['summary']['members']}"
    written = {"json": str(stem.with_suffix(".json"))}
    if plot:
        try:
            written["png"] = str(_plot(report, stem.with_suffix(".png")))
        except ImportError as exc:
            written["png_error"] = f"no plot: {exc}"
    report["files"] = written
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    return written


def _plot(report: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(8, 5))
    groups = [
        ("search", [st for s in report["searches"] for st in s["steps"]], "o"),
        ("latency steps", report["latency_steps"], "s"),
        ("goal's load", [report["goal_latency_step"]] if report["goal_latency_step"] else [], "D"),
    ]
    for name, steps, marker in groups:
        points = sorted((st["committed_per_s"], st["latency"]) for st in steps if "p50_ms" in st["latency"])
        if not points:
            continue
        xs = [x for x, _ in points]
        axis.plot(xs, [lat["p50_ms"] for _, lat in points], marker=marker, label=f"p50 ({name})")
        axis.plot(
            xs, [lat["p99_ms"] for _, lat in points], marker=marker, linestyle="--", label=f"p99 ({name})"
        )
    summary = report["summary"]
    goal = summary["goal_latency"]
    if goal["status"] != "skipped":
        axis.axvline(goal["rate"], color="purple", linewidth=0.8, linestyle=":", label="goal's load")
        for name, bound in (("p50", goal["p50_goal_ms"]), ("p99", goal["p99_goal_ms"])):
            axis.axhline(bound, color="purple", linewidth=0.6, linestyle="--" if name == "p99" else "-")
            where = ("axes fraction", "data")
            axis.annotate(f"goal {name}", (0.005, bound), xycoords=where, fontsize="x-small")
    if summary["max_sustained_tx_per_s"]:
        axis.axvline(summary["max_sustained_tx_per_s"], color="grey", linewidth=0.8, label="max sustained")
    axis.set_xlabel("committed tx/s")
    axis.set_ylabel("commit latency on 2f+1 members (ms)")
    axis.set_yscale("log")
    axis.set_title(f"fedmarket, {summary['members']} members, {summary['cores']} cores")
    axis.grid(True, which="both", linewidth=0.3)
    axis.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
