"""Benchmarks that print figures (run as modules, e.g. `python -m bench.ledger_bench`); never timed tests."""
