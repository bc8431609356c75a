"""The suite's command line and its defaults; `--quick` is the short run the smoke test uses."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent.parent / "results"


@dataclass
class Options:
    members: int = 4
    rates: list[float] = field(default_factory=lambda: [500, 1000, 2000, 3000, 4000, 6000, 8000])
    step_seconds: float = 10.0
    runs: int = 3
    latency_shares: list[float] = field(default_factory=lambda: [0.25, 0.5, 0.9])
    latency_seconds: float = 10.0
    latency_sample: int = 2000
    goal_latency: bool = True
    accounts: int = 2048
    senders: int = 16
    batch: int = 100
    view_timeout_ms: int = 4_000
    empty_block_interval_ms: int = 500
    view_change_rate: float = 200.0
    skip_view_change: bool = False
    catchup_blocks: int = 10_000
    catchup_txs_per_block: int = 200
    skip_catchup: bool = False
    verify_count: int = 3_000
    pings: int = 500
    results_dir: Path = RESULTS_DIR
    workdir: Path | None = None
    plot: bool = True
    profile_member: int | None = None
    quick: bool = False


QUICK = {
    "rates": [100.0, 200.0],
    "runs": 1,
    "step_seconds": 3.0,
    "latency_shares": [0.25, 0.5, 0.9],
    "latency_seconds": 2.0,
    "latency_sample": 300,
    "goal_latency": False,
    "accounts": 128,
    "senders": 4,
    "view_timeout_ms": 2_000,
    "view_change_rate": 50.0,
    "skip_catchup": True,
    "verify_count": 1_000,
    "pings": 200,
}


def parse(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="fedmarket benchmark suite: calibration, throughput search, latency, costs, view change, "
        "catch-up, on a devnet on 127.0.0.1 (docs/performance.md)",
    )
    add = parser.add_argument
    add("--members", type=int, default=None, help="devnet members (default 4)")
    add(
        "--rates",
        type=_floats,
        default=None,
        help="offered rates of the search, tx/s, comma-separated (default 500,1000,2000,3000,4000,6000,8000)",
    )
    add("--step-seconds", type=float, default=None, help="duration of each search step (default 10)")
    add(
        "--runs",
        type=int,
        default=None,
        help="repeat the throughput search K times: median, min-max (default 3)",
    )
    add("--latency-seconds", type=float, default=None, help="duration of each latency step (default 10)")
    add("--latency-sample", type=int, default=None, help="transactions timed per step (default 2000)")
    add(
        "--skip-goal-latency",
        action="store_true",
        help="do not time latency at the goal's load (a quarter of the ceiling, cores x V / N / 4)",
    )
    add("--accounts", type=int, default=None, help="funded load accounts (default 2048)")
    add("--senders", type=int, default=None, help="sender threads of the load generator (default 16)")
    add("--batch", type=int, default=None, help="most transactions per tx_submit (default 100)")
    add("--view-timeout-ms", type=int, default=None, help="genesis view timeout of the devnet (default 4000)")
    add("--view-change-rate", type=float, default=None, help="light load during the kill, tx/s (default 200)")
    add("--skip-view-change", action="store_true", help="do not kill the proposer")
    add("--catchup-blocks", type=int, default=None, help="blocks behind for the catch-up run (default 10000)")
    add(
        "--catchup-txs-per-block",
        type=int,
        default=None,
        help="transactions per catch-up block (default 200)",
    )
    add("--skip-catchup", action="store_true", help="do not run the catch-up measurement")
    add("--results-dir", type=Path, default=None, help=f"where JSON and PNG go (default {RESULTS_DIR})")
    add("--workdir", type=Path, default=None, help="keep the devnet here instead of a temporary directory")
    add("--no-plot", action="store_true", help="write no PNG")
    add(
        "--profile-member",
        type=int,
        default=None,
        help="run this member (0-based) under cProfile; its top functions are printed and its stats saved",
    )
    add(
        "--quick",
        action="store_true",
        help="small rates, short steps, no catch-up and no step at the goal's load (about a minute)",
    )
    args = parser.parse_args(argv)
    options = Options(**(QUICK if args.quick else {}))  # type: ignore[arg-type]
    options.quick = args.quick
    for name in (
        "members", "rates", "step_seconds", "runs", "latency_seconds", "latency_sample", "accounts",
        "senders", "batch", "view_timeout_ms", "view_change_rate", "catchup_blocks", "catchup_txs_per_block",
        "results_dir", "workdir", "profile_member",
    ):  # fmt: skip
        value = getattr(args, name)
        if value is not None:
            setattr(options, name, value)
    options.skip_view_change |= args.skip_view_change
    options.goal_latency &= not args.skip_goal_latency
    options.skip_catchup |= args.skip_catchup
    options.plot = not args.no_plot
    if options.runs < 1:
        parser.error("--runs must be at least 1")
    if not 1 <= options.batch <= 100:
        parser.error("--batch must be 1 to 100 (the node's cap per tx_submit)")
    if options.members < 4:
        parser.error("--members must be at least 4")
    if options.profile_member is not None and not 0 <= options.profile_member < options.members:
        parser.error(f"--profile-member must be 0 to {options.members - 1}")
    if options.view_timeout_ms <= options.empty_block_interval_ms:
        parser.error(
            f"--view-timeout-ms must exceed the empty-block interval ({options.empty_block_interval_ms})"
        )
    return options


def _floats(text: str) -> list[float]:
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of numbers: {text!r}") from None
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError("rates must be positive")
    return sorted(values)
