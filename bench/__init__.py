"""Benchmarks that print figures; never timed tests. `python -m bench` is the suite on a devnet (bench/suite/,
docs/performance.md); the component benchmarks run as modules, e.g. `python -m bench.ledger_bench`."""
