#!/usr/bin/env bash
# Create .venv (if missing) and install fedmarket with every extra. Sourced by test.sh and devnet.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if ! command -v gcc >/dev/null 2>&1; then
  echo "setup: gcc is missing; libp2p's dependency fastecdsa builds from source (apt-get install gcc)" >&2
  exit 1
fi
if [ ! -e /usr/include/gmp.h ] && [ ! -e /usr/include/x86_64-linux-gnu/gmp.h ] \
   && [ ! -e /usr/include/aarch64-linux-gnu/gmp.h ]; then
  echo "setup: libgmp-dev is missing; fastecdsa (needed by libp2p) builds against it (apt-get install libgmp-dev)" >&2
  exit 1
fi
stamp=.venv/.installed
if [ ! -x .venv/bin/python ]; then
  python3.11 -m venv .venv 2>/dev/null || python3 -m venv .venv
fi
if [ ! -e "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "== installing fedmarket and its extras into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[test,planner,openstack,bench]'
  touch "$stamp"
fi
