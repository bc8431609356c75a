#!/usr/bin/env bash
# Set up the project (a .venv with every extra) and run every check: lint, format, types, tests.
# Extra arguments go to pytest, e.g. `scripts/test.sh -k market` or `scripts/test.sh --seeds 20000`.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/setup.sh
source scripts/setup.sh
echo "== ruff check"
.venv/bin/ruff check .
echo "== ruff format --check"
.venv/bin/ruff format --check .
echo "== mypy ledger consensus"
.venv/bin/mypy ledger consensus
echo "== pytest"
.venv/bin/python -m pytest "$@"
