"""Benchmarks that print figures; never timed tests. `python -m bench` is the suite on a devnet (bench/suite/,
docs/performance.md); the component benchmarks run as modules, e.g. `python -m bench.ledger_bench`."""

from __future__ import annotations

import signal
import sys


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so a benchmark stopped by `kill` or `timeout` still runs its `finally`
    blocks and stops every node it started (Python's default SIGTERM ends the process on the spot)."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
