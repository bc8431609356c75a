"""`python -m bench`: the benchmark suite of issue 5 (docs/performance.md). `--help` lists the options."""

from __future__ import annotations

import sys
from typing import Any

from bench import exit_on_sigterm
from bench.suite import options, report, runner


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the suite, print its table, write its results; returns the report (the smoke test reads it)."""
    chosen = options.parse(argv)
    result = runner.run(chosen)
    files = report.write(result, chosen.results_dir, chosen.plot)
    print(report.table(result))
    print("\nresults: " + ", ".join(files.values()))
    return result


if __name__ == "__main__":
    exit_on_sigterm()
    try:
        main(sys.argv[1:])
    except KeyboardInterrupt:
        sys.exit(130)
